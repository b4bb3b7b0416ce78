"""Step 1, the dataset: find the classes, read every photo with the server's decoder, refuse what cannot train, split.

The classes are one sub-folder each, or ``train/`` and ``valid/`` splits that each have them. Every file is
read with ``imaging.images.load_image`` (what the server would do with it); what cannot be read is listed
with its reason. A dataset with one class, too few images or mismatched splits is refused in one line.
"""
from __future__ import annotations

import concurrent.futures
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from snakes_web.config import load_settings
from snakes_web.exceptions import BadRequest, PayloadTooLarge, SnakesError, UnsupportedMediaType
from snakes_web.imaging.sniff import sniff
from snakes_web.model.fastai_data import ReadPhoto
from snakes_web.serving.sizing import available_cores

from .options import TRAIN_FOLDER, VALID_FOLDERS, DatasetError, Options


@dataclass(frozen=True)
class BadFile:
    """A file in a class folder that is not an image we read, and why."""

    path: Path
    reason: str


@dataclass
class Dataset:
    """The checked, split photos: (path, class) pairs, plus what was left out and why."""

    root: Path
    classes: list[str]
    train: list[tuple[Path, str]]
    valid: list[tuple[Path, str]]
    split: str
    class_depth: int  # index of the class folder in each photo's path parts
    bad: list[BadFile] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)

    def counts(self) -> dict[str, tuple[int, int]]:
        """Return {class: (training images, validation images)}."""
        counts = {label: [0, 0] for label in self.classes}
        for index, part in enumerate((self.train, self.valid)):
            for _, label in part:
                counts[label][index] += 1
        return {label: (train, valid) for label, (train, valid) in counts.items()}

    def describe(self) -> str:
        """Say what will be trained on, one line per class."""
        width = max(len(label) for label in self.classes)
        lines = [f"{len(self.classes)} classes, {len(self.train)} training and {len(self.valid)} validation "
                 f"images ({self.split}):"]
        lines += [f"  {label:<{width}}  {train:5d} train  {valid:4d} valid"
                  for label, (train, valid) in self.counts().items()]
        if self.ignored:
            lines.append(f"  ignored, not in a class folder: {len(self.ignored)} "
                         f"(e.g. {relative(self.ignored[0], self.root)})")
        return "\n".join(lines)


def scan_dataset(root: Path, options: Options = Options()) -> Dataset:
    """Find, read and split the photos under ``root``; raise ``DatasetError`` when they cannot train.

    Unreadable files are collected in ``Dataset.bad`` (and refused with ``bad_files="fail"``);
    hidden files (``.DS_Store``, ``._photo.jpg``) are passed over in silence.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{root} does not exist; give the folder that holds one sub-folder of photos per class.")
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder; give the folder that holds one sub-folder of photos per class.")
    root = root.resolve()
    folders = _subfolders(root)
    valid_folder = next((root / name for name in VALID_FOLDERS if root / name in folders), None)
    if root / TRAIN_FOLDER in folders and valid_folder is not None:
        train, ignored = _class_files(root / TRAIN_FOLDER)
        valid, ignored_valid = _class_files(valid_folder)
        ignored += ignored_valid + [p for p in folders if p not in (root / TRAIN_FOLDER, valid_folder)]
        _check_same_classes(train, valid, valid_folder.name)
        split = f"the {TRAIN_FOLDER}/ and {valid_folder.name}/ folders"
        depth = len(root.parts) + 1
    else:
        source = root / TRAIN_FOLDER if root / TRAIN_FOLDER in folders else root
        train, ignored = _class_files(source)
        if source != root:  # train/ alone: the folders beside it are not classes
            ignored += [p for p in folders if p != source] + [p for p in root.iterdir() if p.is_file()
                                                                and not _hidden(p)]
        valid = {}
        split = f"{options.valid_pct:.0%} of each class held out for validation, seed {options.seed}"
        depth = len(source.parts)
    bad = _unreadable([path for files in (*train.values(), *valid.values()) for path in files],
                      photo_reader(options))
    if bad and options.bad_files == "fail":
        raise DatasetError(f"{len(bad)} file(s) are not images we can read (listed above); remove them, or run "
                           f"without --bad-files fail to skip them.",
                           bad_file_lines(bad, root))
    unreadable = {item.path for item in bad}
    train = {label: [p for p in files if p not in unreadable] for label, files in train.items()}
    valid = {label: [p for p in files if p not in unreadable] for label, files in valid.items()}
    _check_classes(train, valid, options.min_per_class, root)
    if not valid:
        train_pairs, valid_pairs = stratified_split(train, options.valid_pct, options.seed)
    else:
        train_pairs = [(p, label) for label, files in train.items() for p in files]
        valid_pairs = [(p, label) for label, files in valid.items() for p in files]
    return Dataset(root, sorted(train), train_pairs, valid_pairs, split, depth, bad, ignored)


def _hidden(path: Path) -> bool:
    """Tell whether a file or folder is hidden (a dot name: .DS_Store, ._x.jpg, .ipynb_checkpoints)."""
    return path.name.startswith(".")


def _subfolders(folder: Path) -> list[Path]:
    """Return the visible sub-folders of ``folder``, sorted."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not _hidden(p))


def visible_files(folder: Path) -> list[Path]:
    """Return the files under ``folder`` at any depth, sorted, leaving out hidden files and folders."""
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not any(_hidden(Path(part)) for part in p.relative_to(folder).parts))


def _class_files(folder: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """Return {class: its files, at any depth} for each sub-folder, and the loose files beside them."""
    classes = {class_folder.name: visible_files(class_folder) for class_folder in _subfolders(folder)}
    loose = sorted(p for p in folder.iterdir() if p.is_file() and not _hidden(p))
    return classes, loose


def _check_same_classes(train: dict[str, list[Path]], valid: dict[str, list[Path]], valid_name: str) -> None:
    """Refuse train/ and valid/ folders whose classes differ."""
    only_train, only_valid = sorted(set(train) - set(valid)), sorted(set(valid) - set(train))
    if only_train or only_valid:
        parts = [f"only in {TRAIN_FOLDER}/: {', '.join(only_train)}" if only_train else "",
                 f"only in {valid_name}/: {', '.join(only_valid)}" if only_valid else ""]
        raise DatasetError(f"{TRAIN_FOLDER}/ and {valid_name}/ must have the same class folders "
                           f"({'; '.join(p for p in parts if p)}).")


def _check_classes(train: dict[str, list[Path]], valid: dict[str, list[Path]], min_per_class: int,
                   root: Path) -> None:
    """Refuse fewer than two classes, or a class with too few readable images."""
    if len(train) < 2:
        found = f"only one ({next(iter(train))})" if train else "none"
        raise DatasetError(f"training needs at least two classes, one sub-folder of photos each "
                           f"({root}/cats/, {root}/dogs/, ...); found {found}.")
    small = {label: len(files) for label, files in train.items() if len(files) < min_per_class}
    if small:
        listed = ", ".join(f"{label} ({count})" for label, count in sorted(small.items()))
        where = "training images" if valid else "readable images"
        raise DatasetError(f"every class needs at least {min_per_class} {where} (--min-per-class); too few: {listed}.")
    empty = sorted(label for label, files in valid.items() if not files)
    if empty:
        raise DatasetError(f"every class needs at least one validation image; none for: {', '.join(empty)}.")


def stratified_split(classes: dict[str, list[Path]], valid_pct: float,
                     seed: int) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """Hold out ``valid_pct`` of each class (at least one image, never all), shuffled with ``seed``.

    Per class rather than over the whole folder, so a small class is never left out of validation.
    """
    rng = random.Random(seed)
    train, valid = [], []
    for label in sorted(classes):
        files = list(classes[label])
        rng.shuffle(files)
        held = min(len(files) - 1, max(1, round(len(files) * valid_pct)))
        valid += [(p, label) for p in files[:held]]
        train += [(p, label) for p in files[held:]]
    return train, valid


def _unreadable(paths: list[Path], reader: ReadPhoto) -> list[BadFile]:
    """Decode every file as the server would (threads: Pillow decodes without the GIL); list the failures."""
    def check(path: Path) -> BadFile | None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            return BadFile(path, f"cannot be read ({exc.strerror or type(exc).__name__})")
        try:
            reader.decode(data)
        except SnakesError as exc:
            return BadFile(path, _reason(exc, data))
        return None

    with concurrent.futures.ThreadPoolExecutor(max_workers=available_cores()) as pool:
        return [bad for bad in pool.map(check, paths) if bad is not None]


def _reason(error: SnakesError, data: bytes) -> str:
    """Say in a few words why a file (its bytes: ``data``) is not an image we read."""
    if isinstance(error, UnsupportedMediaType):
        kind = sniff(data)
        return f"{kind[0]}, not an image we read" if kind else "not an image we read"
    if isinstance(error, PayloadTooLarge):
        return "too many pixels (SNAKES_MAX_IMAGE_PIXELS)"
    if isinstance(error, BadRequest):
        return "an empty file"
    return "truncated or corrupt"


def bad_file_lines(bad: Sequence[BadFile], root: Path) -> list[str]:
    """Return one line per unreadable file, its path relative to the photos folder."""
    return [f"  {relative(item.path, root)}: {item.reason}" for item in bad]


def relative(path: Path, root: Path) -> str:
    """Show ``path`` relative to ``root`` when it is inside it."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def photo_reader(options: Options) -> ReadPhoto:
    """Read photos as the server does: its pixel limit, and its JPEG draft scale when that is on."""
    settings = load_settings()
    return ReadPhoto(settings["MAX_IMAGE_PIXELS"], options.resize if settings["JPEG_DRAFT"] else None)


def shown(path: Path) -> str:
    """Show ``path`` relative to the working directory when it is inside it."""
    return relative(path, Path.cwd().resolve())
