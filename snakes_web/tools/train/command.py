"""`snakes-web train`: a folder of labelled photos in, a fine-tuned classifier the server serves out.

The steps, each usable on its own (``notebooks/train_your_own.py`` calls them one cell at a time):

1. ``scan_dataset``: find the classes (one sub-folder each, or ``train/`` and ``valid/`` splits), read
   every file with the server's own decoder (``images.load_image``), list what cannot be read, refuse
   a dataset that cannot train (one class, too few images, mismatched splits), split it (seeded).
2. ``dataloaders``: the preprocessing the server uses (short side to size·8/7 bicubic, centre crop,
   mean/std 0.5 like the default model), fastai's ``aug_transforms`` for training only.
3. ``make_learner`` and ``fit``: the default model's pretrained EfficientNet-Lite0 (from its PyPI
   package, never a download) with fastai's head, ``fine_tune`` (frozen body first).
4. ``evaluate``, ``plot_confusion``: validation accuracy, the confusion matrix, the mistakes.
5. ``export``: ``export.pkl`` (atomically), and with ``--onnx`` the ``.onnx`` next to it, checked
   against the ``.pkl``'s predictions on the validation photos.

Nothing here imports torch or fastai at module level: exports pickle ``ReadPhoto`` and ``ClassFolder``
by reference, so loading one imports this module, and the CLI builds its parser from it.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from snakes_web.config import load_settings
from snakes_web.exceptions import BadRequest, PayloadTooLarge, SnakesError, UnsupportedMediaType
from snakes_web.imaging.images import load_image
from snakes_web.imaging.sniff import sniff
from snakes_web.model.fastai_data import ClassFolder, ReadPhoto
from snakes_web.model.quiet import quiet
from snakes_web.serving.sizing import available_cores

TRAIN_FOLDER = "train"
VALID_FOLDERS = ("valid", "val")
BAD_FILE_CHOICES = ("list", "skip", "fail")
DEVICE_CHOICES = ("auto", "cpu", "cuda")
#: EfficientNet-Lite0 was trained on inputs scaled to [-1, 1]; the default model normalises the same way.
MEAN = STD = (0.5, 0.5, 0.5)


class DatasetError(ValueError):
    """The photos folder cannot be trained on; the message says why in one line, ``details`` list the files."""

    def __init__(self, message: str, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.details = list(details)


@dataclass(frozen=True)
class Options:
    """Everything ``snakes-web train`` can be told; the defaults suit a 2-core CPU."""

    epochs: int = 3
    frozen_epochs: int = 1
    # fine_tune trains the new top at lr, then the top at lr/2 and the body at lr/200: with 1e-2 that is
    # close to Keras's EfficientNet fine-tuning example (1e-2 for the new top, 1e-5 for the body). fastai's
    # 2e-3 (tuned on GPUs, where epochs are cheap) needed several times the epochs in our CPU runs.
    lr: float = 1e-2
    lr_find: bool = False
    size: int = 224
    batch_size: int = 32
    valid_pct: float = 0.2
    seed: int = 42
    min_per_class: int = 10
    bad_files: str = "list"
    num_workers: int | None = None  # None: chosen by ``default_workers``
    threads: int = 0  # 0: the cores this process may use
    device: str = "auto"  # auto: CUDA when torch sees a GPU, else the CPU
    name: str = ""  # empty: "<photos folder>-efficientnet-lite0"

    @property
    def resize(self) -> int:
        """Return the shorter side images are resized to before the centre crop (256 for 224)."""
        return round(self.size * 8 / 7)


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
                         f"(e.g. {_relative(self.ignored[0], self.root)})")
        return "\n".join(lines)


# --- 1. the dataset ------------------------------------------------------------------------------

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
    return [f"  {_relative(item.path, root)}: {item.reason}" for item in bad]


def _relative(path: Path, root: Path) -> str:
    """Show ``path`` relative to ``root`` when it is inside it."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


# --- 2. the data loaders: the server's preprocessing ----------------------------------------------

def photo_reader(options: Options) -> ReadPhoto:
    """Read photos as the server does: its pixel limit, and its JPEG draft scale when that is on."""
    settings = load_settings()
    return ReadPhoto(settings["MAX_IMAGE_PIXELS"], options.resize if settings["JPEG_DRAFT"] else None)


def default_workers(train_images: int, batch_size: int, size: int, cores: int | None = None,
                    shm_free: int | None = None) -> tuple[int, str]:
    """Choose data-loader worker processes, and say why.

    fastai's default is one per core (up to 16); each worker hands batches to the trainer through
    shared memory (/dev/shm: 64 MB in a plain Docker container) and competes with the forward and
    backward passes, which use every core on a CPU.
    """
    cores = available_cores() if cores is None else cores
    if shm_free is None:
        try:
            shm_free = shutil.disk_usage("/dev/shm").free
        except OSError:
            shm_free = 0
    if cores <= 2:
        return 0, f"{cores} core{'s' if cores > 1 else ''}: the forward and backward passes need them"
    if train_images < 4 * batch_size:
        return 0, "a small dataset: starting workers would cost more than they save"
    workers = min(4, cores // 2)
    # Each worker keeps two uint8 batches in flight; keep 4x that free for safety.
    needed = workers * 2 * batch_size * 3 * size * size * 4
    if shm_free < needed:
        return 0, f"/dev/shm has {shm_free // 2**20} MB free, workers need ~{needed // 2**20} MB (raise shm_size)"
    return workers, f"{cores} cores, {shm_free // 2**20} MB free in /dev/shm"


def dataloaders(dataset: Dataset, options: Options = Options(), num_workers: int = 0) -> Any:
    """Build fastai DataLoaders whose validation preprocessing is the server's (and converts to ONNX)."""
    import torch

    with quiet():
        from fastai.data.block import CategoryBlock, DataBlock
        from fastai.data.transforms import Normalize
        from fastai.vision.augment import CropPad, Resize, aug_transforms
        from fastai.vision.data import ImageBlock

    items = [path for path, _ in dataset.train] + [path for path, _ in dataset.valid]
    n_train = len(dataset.train)
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock(vocab=list(dataset.classes))),
        get_x=photo_reader(options),
        get_y=ClassFolder(dataset.class_depth),
        splitter=lambda _: (list(range(n_train)), list(range(n_train, len(items)))),
        # The default model's preprocessing at any size: short side to size·8/7 (bicubic), centre crop.
        # On the training split Resize crops at a random place; the validation split (and the server) centres.
        item_tfms=[Resize(options.resize, method="crop",
                          resamples=(Image.Resampling.BICUBIC, Image.Resampling.NEAREST)),
                   CropPad(options.size, order=2)],
        batch_tfms=[*training_only(aug_transforms()), Normalize.from_stats(list(MEAN), list(STD), cuda=False)],
    )
    batch_size = batch_size_for(n_train, options.batch_size)
    return block.dataloaders(items, bs=batch_size, num_workers=num_workers, device=torch.device(device_for(options)))


def device_for(options: Options) -> str:
    """Return the torch device to train on: "cuda" or "cpu" (auto: CUDA when torch sees a GPU)."""
    import torch

    if options.device == "cuda" and not torch.cuda.is_available():
        raise DatasetError("--device cuda: torch sees no CUDA GPU here (use --device auto or cpu).")
    if options.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return options.device


def training_only(tfms: list[Any]) -> list[Any]:
    """Mark fastai's augmentations (flips, rotations, zooms, warps; lighting already is) as training-only.

    fastai runs the merged affine transform on the validation split too, as an identity resampling
    (``grid_sample``) that moves probabilities by ~1e-3; skipped, validation and the server's fastai
    backend see exactly the pixels the ONNX model sees.
    """
    for tfm in tfms:
        tfm.split_idx = 0
    return tfms


def batch_size_for(train_images: int, wanted: int) -> int:
    """Cap the batch size so an epoch has at least 8 steps (a CPU costs the same per image in any batch).

    fastai drops the last partial training batch, so a batch larger than the data would leave none;
    at least 8 per batch keeps the gradient steady.
    """
    return max(2, min(wanted, train_images, max(8, train_images // 8)))


# --- 3. the learner and its training ---------------------------------------------------------------

def setup_torch(options: Options = Options()) -> int:
    """Seed everything (split aside, which ``scan_dataset`` seeds) and set torch's threads; return them.

    Threads default to the cores this process may use: torch would otherwise count the host's cores,
    too many inside a container with a CPU quota.
    """
    import torch

    with quiet():
        from fastai.torch_core import set_seed

    threads = options.threads or available_cores()
    torch.set_num_threads(threads)
    set_seed(options.seed, reproducible=True)
    return threads


def make_learner(dls: Any, name: str) -> Any:
    """Return a fastai Learner: pretrained EfficientNet-Lite0 body, a new head, accuracy as metric."""
    with quiet():
        import fastai.callback.progress  # noqa: F401 - adds Learner.no_bar
        import fastai.callback.schedule  # noqa: F401 - adds Learner.fine_tune, fit_one_cycle, lr_find
        from fastai.learner import Learner
        from fastai.losses import CrossEntropyLossFlat
        from fastai.metrics import accuracy

    from snakes_web.model.snakenet import body_and_head, lite0_classifier

    model = lite0_classifier(len(dls.vocab), name)
    return Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy, splitter=body_and_head)


def fit(learner: Any, options: Options = Options(), progress: str = "auto") -> float:
    """Fine-tune (frozen body for ``frozen_epochs``, then everything); return the learning rate used.

    ``progress``: "bars" (fastai's), "lines" (one line per epoch, for logs), "none", or "auto"
    (bars on a terminal or in a notebook, lines otherwise and under CI).
    """
    lr = options.lr
    with progress_display(learner, progress):
        if options.lr_find:
            learner.freeze()  # as fine_tune's first stage trains, and as vision_learner starts
            with learner.no_logging():
                lr = float(learner.lr_find(show_plot=False).valley)
            print(f"lr_find suggests {lr:.2g}")
        if options.frozen_epochs and options.epochs:
            learner.fine_tune(options.epochs, base_lr=lr, freeze_epochs=options.frozen_epochs)
        elif options.frozen_epochs:  # the head alone
            learner.freeze()
            learner.fit_one_cycle(options.frozen_epochs, lr)
        else:  # everything from the start, with fine_tune's discriminative rates
            learner.unfreeze()
            learner.fit_one_cycle(options.epochs, slice(lr / 200, lr / 2))
    return lr


def wants_bars() -> bool:
    """Tell whether fastai's progress bars belong here: a terminal or a notebook, and not CI."""
    if os.environ.get("CI", "").lower() not in {"", "0", "false"}:
        return False
    with quiet():
        from fastprogress.core import IN_NOTEBOOK
    return bool(IN_NOTEBOOK) or sys.stdout.isatty()


@contextlib.contextmanager
def progress_display(learner: Any, progress: str) -> Iterator[None]:
    """Show training progress as asked (fastprogress itself prints bars even into a pipe)."""
    if progress == "auto":
        progress = "bars" if wants_bars() else "lines"
    if progress == "bars":
        yield
        return
    with learner.no_bar():
        if progress == "none":
            with learner.no_logging():
                yield
            return
        old = learner.logger
        learner.logger = EpochLines(learner)
        try:
            yield
        finally:
            learner.logger = old


class EpochLines:
    """fastai logger that prints one plain line per epoch, for logs where bars would be noise."""

    def __init__(self, learner: Any, write: Callable[[str], Any] = print) -> None:
        self.learner = learner
        self.write = write

    def __call__(self, values: Sequence[Any]) -> None:
        """Print one epoch's values beside the Recorder's column names."""
        if not values or isinstance(values[0], str):
            return
        names = list(self.learner.recorder.metric_names)
        stage = "frozen" if self._frozen() else "fine-tune"
        cells = [f"{name} {_cell(value)}" for name, value in zip(names[1:], values[1:], strict=False)]
        self.write(f"{stage} epoch {int(values[0]) + 1}: " + ", ".join(cells))

    def _frozen(self) -> bool:
        """Tell whether the body is frozen (fastai keeps its BatchNorm layers training)."""
        return not all(p.requires_grad for p in self.learner.model[0].parameters())


def _cell(value: Any) -> str:
    """Format a number to four decimals, anything else as it is."""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


# --- 4. the evaluation -----------------------------------------------------------------------------

@dataclass
class Report:
    """Validation results: accuracy, the confusion matrix (rows: actual), and each photo's probabilities."""

    classes: list[str]
    paths: list[Path]
    actual: list[int]
    probabilities: list[list[float]]

    @property
    def predicted(self) -> list[int]:
        """Return the top class index of each validation photo."""
        return [top_index(row) for row in self.probabilities]

    @property
    def accuracy(self) -> float:
        """Return the fraction of validation photos whose top class is right."""
        right = sum(a == p for a, p in zip(self.actual, self.predicted, strict=True))
        return right / len(self.actual) if self.actual else 0.0

    @property
    def confusion(self) -> list[list[int]]:
        """Return counts[actual][predicted]."""
        matrix = [[0] * len(self.classes) for _ in self.classes]
        for actual, predicted in zip(self.actual, self.predicted, strict=True):
            matrix[actual][predicted] += 1
        return matrix

    def mistakes(self) -> list[tuple[Path, str, str, float]]:
        """Return (photo, actual, predicted, its probability) for each wrong one, most confident first."""
        wrong = [(path, self.classes[a], self.classes[p], self.probabilities[i][p])
                 for i, (path, a, p) in enumerate(zip(self.paths, self.actual, self.predicted, strict=True)) if a != p]
        return sorted(wrong, key=lambda item: -item[3])

    def text(self, root: Path | None = None, max_mistakes: int = 10) -> str:
        """Return the accuracy, the confusion matrix and the worst mistakes as plain text."""
        right = round(self.accuracy * len(self.actual))
        lines = [f"Validation accuracy: {self.accuracy:.1%} ({right} of {len(self.actual)})", "",
                 "Confusion matrix (rows: actual class, columns: predicted):"]
        width = max(5, *(len(label) for label in self.classes))
        cell = max(5, min(12, width) + 1, *(len(str(n)) + 1 for row in self.confusion for n in row))
        lines.append(" " * (width + 2) + "".join(f"{label[:cell - 1]:>{cell}}" for label in self.classes))
        for label, row in zip(self.classes, self.confusion, strict=True):
            lines.append(f"  {label:<{width}}" + "".join(f"{n:>{cell}}" for n in row))
        mistakes = self.mistakes()
        if mistakes:
            lines += ["", f"Mistakes ({len(mistakes)}, most confident first; worth a look for wrong labels):"]
            for path, actual, predicted, probability in mistakes[:max_mistakes]:
                shown = _relative(path, root) if root else str(path)
                lines.append(f"  {shown}: {actual}, predicted {predicted} ({probability:.0%})")
            if len(mistakes) > max_mistakes:
                lines.append(f"  ... and {len(mistakes) - max_mistakes} more")
        return "\n".join(lines)


def top_index(probabilities: Sequence[float]) -> int:
    """Return the index of the largest probability (the first, on a tie)."""
    return max(range(len(probabilities)), key=probabilities.__getitem__)


def evaluate(learner: Any, dataset: Dataset) -> Report:
    """Predict every validation photo with the trained learner (the server's preprocessing)."""
    with learner.no_bar(), learner.no_logging(), quiet():
        probabilities, targets = learner.get_preds(ds_idx=1)
    return Report(list(learner.dls.vocab), [path for path, _ in dataset.valid], [int(t) for t in targets],
                  probabilities.tolist())


def plot_confusion(report: Report, destination: Path) -> Path:
    """Draw the confusion matrix as a PNG (matplotlib's Agg canvas: no display, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(report.classes)
    side = min(16.0, 2.5 + 0.6 * n)
    figure = Figure(figsize=(side, side), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    matrix = report.confusion
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(n), report.classes, rotation=45, ha="right")
    axes.set_yticks(range(n), report.classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("actual")
    axes.set_title(f"Validation accuracy {report.accuracy:.1%} ({len(report.actual)} photos)")
    top = max(max(row) for row in matrix) or 1
    for row in range(n):
        for column in range(n):
            value = matrix[row][column]
            axes.text(column, row, str(value), ha="center", va="center",
                      color="white" if value > top / 2 else "black")
    figure.tight_layout()
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(destination)
    return destination


# --- 5. the export --------------------------------------------------------------------------------

def export(learner: Any, destination: Path) -> Path:
    """Write ``learner.export()`` to ``destination`` atomically (a half-written model is never served)."""
    destination = Path(destination).expanduser().resolve()
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent) as scratch, quiet():
        partial = Path(scratch) / destination.name
        learner.export(partial)
        partial.replace(destination)
    return destination


def export_onnx_checked(pkl: Path, report: Report, max_photos: int = 32) -> tuple[Path, int, int, float]:
    """Convert ``pkl`` to the .onnx beside it; compare it with the validation predictions.

    Return (onnx path, photos compared, photos with the same top class, largest probability difference).
    """
    from snakes_web.model.onnx_backend import OnnxPredictor
    from snakes_web.model.onnx_export import export_onnx

    destination = pkl.with_suffix(".onnx")
    export_onnx(pkl, destination)
    predictor = OnnxPredictor(destination)
    max_pixels = load_settings()["MAX_IMAGE_PIXELS"]
    same, largest = 0, 0.0
    photos = list(zip(report.paths, report.probabilities, strict=True))[:max_photos]
    for path, expected in photos:
        image = load_image(path.read_bytes(), max_pixels, min_side=predictor.min_side)
        by_label = {p.label: p.probability for p in predictor.predict(image)}
        got = [by_label[label] for label in report.classes]
        same += top_index(got) == top_index(expected)
        largest = max(largest, *(abs(a - b) for a, b in zip(got, expected, strict=True)))
    return destination, len(photos), same, largest


# --- the command ---------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare `snakes-web train`'s arguments."""
    defaults = Options()
    parser.add_argument("photos", type=Path, help="folder with one sub-folder of photos per class "
                                                  "(or train/ and valid/ folders that each have them)")
    parser.add_argument("-o", "--output", type=Path, default=Path("models/export.pkl"),
                        help="where to write the fastai export (default: models/export.pkl, what `make run` "
                             "serves); the confusion-matrix PNG goes beside it")
    parser.add_argument("--onnx", action="store_true",
                        help="also write the ONNX model beside it (same name, .onnx), checked against the .pkl")
    parser.add_argument("--epochs", type=int, default=defaults.epochs,
                        help=f"epochs with the whole network training (default {defaults.epochs})")
    parser.add_argument("--frozen-epochs", type=int, default=defaults.frozen_epochs,
                        help=f"epochs first with only the new head training (default {defaults.frozen_epochs})")
    parser.add_argument("--lr", type=float, default=defaults.lr,
                        help=f"base learning rate for fine_tune (default {defaults.lr:g})")
    parser.add_argument("--lr-find", action="store_true",
                        help="run fastai's lr_find first and use its suggestion instead of --lr")
    parser.add_argument("--size", type=int, default=defaults.size,
                        help=f"input size in pixels (default {defaults.size}, as the default model)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help=f"images per batch (default {defaults.batch_size}; fewer when an epoch would "
                             f"have under 8 steps)")
    parser.add_argument("--valid-pct", type=float, default=defaults.valid_pct,
                        help=f"share of each class held out for validation when there is no valid/ folder "
                             f"(default {defaults.valid_pct:g})")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help=f"seed for the split, the head's initialisation and the shuffling "
                             f"(default {defaults.seed})")
    parser.add_argument("--min-per-class", type=int, default=defaults.min_per_class,
                        help=f"refuse a class with fewer readable training images (default {defaults.min_per_class})")
    parser.add_argument("--bad-files", choices=BAD_FILE_CHOICES, default=defaults.bad_files,
                        help="files that are not images we read: list them and skip them (default), "
                             "skip them with a count only, or fail")
    parser.add_argument("--num-workers", type=int, default=None,
                        help="data-loader worker processes (default: 0 on 2 cores or less, on small datasets "
                             "or when /dev/shm is small; else up to 4)")
    parser.add_argument("--int8", action="store_true",
                        help="with --onnx, also write an int8 model (<name>-int8.onnx) calibrated and checked on "
                             "the validation photos; refused below SNAKES_INT8_MIN_AGREEMENT top-1 agreement")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default=defaults.device,
                        help="where to train: auto (default: CUDA when torch sees a GPU, else the CPU), cpu or cuda; "
                             "the export always loads on a CPU-only server")
    parser.add_argument("--threads", type=int, default=defaults.threads,
                        help="torch threads (default: the cores this process may use, cgroup quota included)")
    parser.add_argument("--name", default=defaults.name,
                        help="model name the server shows (default: <photos folder>-efficientnet-lite0)")
    parser.add_argument("--check", action="store_true", help="check and describe the dataset, train nothing")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress, only the results")


def options_from(args: argparse.Namespace) -> Options:
    """Turn parsed arguments into ``Options``, refusing values that cannot work."""
    problems = [f"--{name.replace('_', '-')} must be {rule}" for name, ok, rule in (
        ("epochs", args.epochs >= 0, "0 or more"), ("frozen_epochs", args.frozen_epochs >= 0, "0 or more"),
        ("lr", args.lr > 0, "positive"), ("size", args.size >= 32, "32 or more"),
        ("batch_size", args.batch_size >= 2, "2 or more"), ("valid_pct", 0 < args.valid_pct < 1, "between 0 and 1"),
        ("min_per_class", args.min_per_class >= 2, "2 or more"),
        ("num_workers", args.num_workers is None or args.num_workers >= 0, "0 or more"),
        ("threads", args.threads >= 0, "0 or more")) if not ok]
    if Path(args.output).suffix != ".pkl" or Path(args.output).is_dir():
        problems.append(f"--output must name a .pkl file (like models/export.pkl), not {args.output}")
    if getattr(args, "int8", False) and not args.onnx:
        problems.append("--int8 needs --onnx")
    if args.epochs + args.frozen_epochs == 0:
        problems.append("--epochs and --frozen-epochs cannot both be 0")
    if problems:
        raise DatasetError("; ".join(problems) + ".")
    return Options(epochs=args.epochs, frozen_epochs=args.frozen_epochs, lr=args.lr, lr_find=args.lr_find,
                   size=args.size, batch_size=args.batch_size, valid_pct=args.valid_pct, seed=args.seed,
                   min_per_class=args.min_per_class, bad_files=args.bad_files, num_workers=args.num_workers,
                   threads=args.threads, name=args.name, device=args.device)


def run(args: argparse.Namespace) -> int:
    """Run `snakes-web train`: check, train, report, export; one line on stderr when it cannot."""
    try:
        return _train(args)
    except DatasetError as exc:
        if exc.details:
            print("\n".join(exc.details), file=sys.stderr)
        print(f"snakes-web train: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nsnakes-web train: interrupted; {args.output} was not written.", file=sys.stderr)
        return 130


def _train(args: argparse.Namespace) -> int:
    """Do the work of ``run``."""
    from snakes_web.model.transforms import UnsupportedExport

    started = time.perf_counter()
    options = options_from(args)
    dataset = _scan_reporting(args.photos, options)
    print(dataset.describe())
    if args.check:
        return 0
    workers, why = ((options.num_workers, "--num-workers") if options.num_workers is not None
                    else default_workers(len(dataset.train), options.batch_size, options.size))
    threads = setup_torch(options)
    print(f"Fine-tuning EfficientNet-Lite0 at {options.size}×{options.size}: {options.frozen_epochs} frozen + "
          f"{options.epochs} epochs, lr {'from lr_find' if options.lr_find else f'{options.lr:g}'}, "
          f"batches of {batch_size_for(len(dataset.train), options.batch_size)}, "
          f"{threads} torch thread(s), {workers} data-loader worker(s) ({why}), on {device_for(options)}.")
    learner = make_learner(dataloaders(dataset, options, num_workers=workers),
                           options.name or f"{dataset.root.name}-efficientnet-lite0")
    fit(learner, options, progress="none" if args.quiet else "auto")
    trained = time.perf_counter() - started
    report = evaluate(learner, dataset)
    output = export(learner, args.output)
    plot = plot_confusion(report, output.with_name(f"{output.stem}-confusion.png"))
    print()
    print(report.text(dataset.root))
    print()
    print(f"Trained in {_minutes(trained)}. Wrote {_shown(output)} and {plot.name}.")
    served = output
    if args.onnx:
        try:
            onnx, compared, same, largest = export_onnx_checked(output, report)
        except UnsupportedExport as exc:
            print(f"snakes-web train: {output} is written, but cannot be converted to ONNX: {exc}", file=sys.stderr)
            return 1
        print(f"Wrote {_shown(onnx)}: same top class as the .pkl on {same} of {compared} validation photos "
              f"(largest probability difference {largest:.1e}).")
        served = onnx
        if args.int8:
            int8 = _export_int8_checked(output, onnx, dataset)
            if int8 is None:
                return 1
    print(f"Serve it:  SNAKES_MODEL={_shown(served)} make run    Try it:  snakes-web predict {_shown(served)} PHOTO...")
    return 0


def _export_int8_checked(pkl: Path, onnx: Path, dataset: Dataset, max_photos: int = 64) -> Path | None:
    """Write ``<name>-int8.onnx``, calibrated and checked on the validation photos; None when refused."""
    from snakes_web.model.quantize import Int8Refused, export_int8

    max_pixels = load_settings()["MAX_IMAGE_PIXELS"]
    photos = [load_image(path.read_bytes(), max_pixels) for path, _ in dataset.valid[:max_photos]]
    destination = onnx.with_name(f"{onnx.stem}-int8.onnx")
    try:
        result = export_int8(pkl, onnx, destination, photos, photos, load_settings()["INT8_MIN_AGREEMENT"])
    except Int8Refused as exc:
        print("\n".join(f"  {a.line()}" for a in exc.agreements), file=sys.stderr)
        print(f"snakes-web train: {exc} ({_shown(onnx)} is written and serves fp32).", file=sys.stderr)
        return None
    print("\n".join(result.lines()))
    print(f"Wrote {_shown(destination)} (int8; serve it with SNAKES_MODEL={_shown(destination)}).")
    return destination


def _scan_reporting(photos: Path, options: Options) -> Dataset:
    """Scan the dataset, listing unreadable files on stderr as ``--bad-files`` asks."""
    print(f"Reading the photos in {photos} ...")
    dataset = scan_dataset(photos, options)
    if dataset.bad and options.bad_files == "list":
        print(f"Skipping {len(dataset.bad)} file(s) that are not images we read:", file=sys.stderr)
        print("\n".join(bad_file_lines(dataset.bad, dataset.root)), file=sys.stderr)
    elif dataset.bad:
        print(f"Skipping {len(dataset.bad)} file(s) that are not images we read.", file=sys.stderr)
    return dataset


def _minutes(seconds: float) -> str:
    """Say a duration as "42 s" or "3.5 min"."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _shown(path: Path) -> str:
    """Show ``path`` relative to the working directory when it is inside it."""
    return _relative(path, Path.cwd().resolve())

