"""The fastai recipes users train with, each trained for one epoch on generated photos (no downloads).

The tests (``tests/test_recipes.py``) check that each converts and gives fastai's answers; the bench
(``recipes_section``) measures each served on ONNX against the fastai backend.

Every recipe is built the way the fastai book and docs build it (``ImageDataLoaders.from_folder`` or a
``DataBlock``, ``vision_learner(dls, arch, pretrained=False)``), scaled down to small photos so one
epoch on the CPU takes seconds. The photos are coloured shapes (``colour_photo``):
the colour is the class, so one epoch already separates them.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from snakes_web.model.quiet import quiet

#: Each class is a shape in its colour on a grey background of random brightness.
COLOURS = {"blue": (40, 70, 210), "green": (40, 180, 60), "red": (210, 40, 40)}


def colour_photo(colour: tuple[int, int, int], rng: random.Random) -> Image.Image:
    """Draw one photo: a disc or a square of ``colour`` (give or take) near the middle, random size and grey."""
    width, height = rng.randint(90, 130), rng.randint(90, 130)
    grey = rng.randint(120, 220)
    image = Image.new("RGB", (width, height), (grey, grey, grey))
    draw = ImageDraw.Draw(image)
    x, y, r = width // 2 + rng.randint(-10, 10), height // 2 + rng.randint(-10, 10), rng.randint(30, 40)
    shade = tuple(max(0, min(255, v + rng.randint(-25, 25))) for v in colour)
    (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x - r, y - r, x + r, y + r), fill=shade)
    return image


def make_colour_dataset(root: Path, per_class: int = 30, seed: int = 0,
                        classes: tuple[str, ...] = tuple(COLOURS)) -> Path:
    """Write ``per_class`` JPEGs per class in the one-folder-per-class layout; return ``root``."""
    rng = random.Random(seed)
    for label in classes:
        (root / label).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            colour_photo(COLOURS[label], rng).save(root / label / f"{index}.jpg", quality=90)
    return root


BATCH, LR = 8, 1e-3  # one epoch of 144 photos learns the colours at these
SIZE = 64  # what the network sees, in most recipes (the book: 224 after Resize(460))


@dataclass(frozen=True)
class Recipe:
    """One way to build a learner: item and batch transforms, the architecture, the labels."""

    item_tfms: Callable[[], Any]
    batch_tfms: Callable[[], Any] = lambda: None
    arch: str = "resnet18"
    multi_label: bool = False


def _augment(name: str, *args: Any, **kwargs: Any) -> Callable[[], Any]:
    """A deferred call of a ``fastai.vision.augment`` function (fastai is imported only when a test runs)."""
    def build() -> Any:
        from fastai.vision import augment

        return getattr(augment, name)(*args, **kwargs)
    return build


def _with_stats(stats: str, *before: Callable[[], Any]) -> Callable[[], list[Any]]:
    """Batch transforms ``before`` followed by ``Normalize.from_stats``: ImageNet's, or a data set's own."""
    def build() -> list[Any]:
        from fastai.data.transforms import Normalize
        from fastai.vision.core import imagenet_stats

        mean_std = imagenet_stats if stats == "imagenet" else ([0.55, 0.5, 0.45], [0.2, 0.25, 0.3])
        tfms: list[Any] = []
        for make in before:
            made = make()
            tfms.extend(made if isinstance(made, list) else [made])
        return [*tfms, Normalize.from_stats(*mean_std, cuda=False)]
    return build


#: name -> recipe. Presizing is the book's chapter 5 (pets), the bears recipe its chapter 2.
RECIPES: dict[str, Recipe] = {
    "presizing": Recipe(_augment("Resize", 96), _with_stats("imagenet", _augment("aug_transforms", size=SIZE))),
    "presizing-area": Recipe(_augment("Resize", 160),  # shrinks by more than 2x: fastai's area pre-shrink
                             _with_stats("imagenet", _augment("aug_transforms", size=(56, 72)))),
    "presizing-min-scale": Recipe(_augment("Resize", 96), _with_stats(
        "imagenet", _augment("aug_transforms", size=SIZE, min_scale=0.75))),
    "presizing-mult-zeros-nearest": Recipe(_augment("Resize", 80), _with_stats(
        "imagenet", _augment("aug_transforms", size=SIZE, mult=2.0, pad_mode="zeros", mode="nearest"))),
    "presizing-border-bicubic": Recipe(_augment("Resize", (90, 120)), _with_stats(
        "data", _augment("aug_transforms", size=SIZE, pad_mode="border", mode="bicubic"))),
    "bears": Recipe(_augment("RandomResizedCrop", SIZE, min_scale=0.5),
                    _with_stats("imagenet", _augment("aug_transforms"))),
    "resize-squish": Recipe(_augment("Resize", SIZE, method="squish"), _with_stats("imagenet")),
    "resize-pad": Recipe(_augment("Resize", SIZE, method="pad", pad_mode="zeros"), _with_stats("data")),
    "resize-crop": Recipe(_augment("Resize", (SIZE, 80), method="crop"), _with_stats("imagenet")),
    "multi-label": Recipe(_augment("Resize", 96), _with_stats("imagenet", _augment("aug_transforms", size=SIZE)),
                          multi_label=True),
    "timm-convnext": Recipe(_augment("Resize", SIZE), _with_stats("imagenet"), arch="convnext_tiny"),
}


def colours_in(path: Path) -> Any:  # not list[str]: fastai casts to the annotation, and cannot to a generic
    """The labels of a multi-label photo: the colours in its file name (``red-blue_3.jpg``)."""
    return path.stem.split("_")[0].split("-")


def multi_label_photo(colours: tuple[str, ...], rng: random.Random) -> Image.Image:
    """Draw a photo with one shape per colour, side by side, on grey."""
    width, height = rng.randint(110, 140), rng.randint(90, 120)
    grey = rng.randint(120, 220)
    image = Image.new("RGB", (width, height), (grey, grey, grey))
    draw = ImageDraw.Draw(image)
    slot = width // max(1, len(colours))
    for n, colour in enumerate(colours):
        x, y, r = slot * n + slot // 2, height // 2 + rng.randint(-8, 8), min(slot // 2 - 4, rng.randint(22, 30))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=COLOURS[colour])
    return image


def make_multi_label_dataset(root: Path, per_set: int = 10, seed: int = 0) -> Path:
    """Write photos of every one- and two-colour set, named by their colours; return ``root``."""
    rng = random.Random(seed)
    names = list(COLOURS)
    sets = [(a,) for a in names] + [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    root.mkdir(parents=True, exist_ok=True)
    for colours in sets:
        for index in range(per_set):
            multi_label_photo(colours, rng).save(root / f"{'-'.join(colours)}_{index}.jpg", quality=90)
    return root


def train(recipe: Recipe, folder: Path) -> Any:
    """Build the recipe's learner on generated photos and train it for one epoch on the CPU."""
    import torch

    with quiet():
        import fastai.callback.progress  # noqa: F401 - adds Learner.no_bar
        import fastai.callback.schedule  # noqa: F401 - adds Learner.fit_one_cycle
        from fastai.data.block import DataBlock, MultiCategoryBlock
        from fastai.data.transforms import RandomSplitter, get_image_files
        from fastai.vision.data import ImageBlock, ImageDataLoaders
        from fastai.vision.learner import vision_learner

    torch.manual_seed(0)
    cpu = torch.device("cpu")
    if recipe.multi_label:
        block = DataBlock(blocks=(ImageBlock, MultiCategoryBlock), get_items=get_image_files, get_y=colours_in,
                          splitter=RandomSplitter(0.2, seed=0), item_tfms=recipe.item_tfms(),
                          batch_tfms=recipe.batch_tfms())
        dls = block.dataloaders(make_multi_label_dataset(folder / "photos"), bs=BATCH, num_workers=0, device=cpu)
    else:
        dls = ImageDataLoaders.from_folder(make_colour_dataset(folder / "photos", per_class=60), valid_pct=0.2,
                                           seed=0, item_tfms=recipe.item_tfms(), batch_tfms=recipe.batch_tfms(),
                                           bs=BATCH, num_workers=0, device=cpu)
    arch: Any = recipe.arch
    if arch.startswith("resnet"):
        import torchvision.models

        arch = getattr(torchvision.models, arch)
    with quiet():
        learner = vision_learner(dls, arch, pretrained=False)
        with learner.no_bar(), learner.no_logging():
            learner.fit_one_cycle(1, LR)
    return learner


def export(learner: Any, folder: Path) -> Path:
    """``learn.export()`` into ``folder``; return the .pkl."""
    path = folder / "export.pkl"
    with quiet():
        learner.export(path)
    return path




# --- the bench's section: each recipe served on ONNX against the fastai backend -------------------

RECIPES_HEADING = "## Your own model: each recipe on ONNX against the fastai backend"
#: The book's presizing at the book's sizes (chapter 5): what the resample costs a real model's request.
BOOK_SIZES = (460, 224)


def prepare(name: str, folder: Path) -> dict[str, Any]:
    """Train ``name`` for an epoch, export and convert it in ``folder``; return the files and timings."""
    import subprocess
    import sys
    import time

    started = time.perf_counter()
    learner = train(RECIPES[name], folder)
    trained = time.perf_counter()
    pkl = export(learner, folder)
    onnx = folder / "export.onnx"
    subprocess.run([sys.executable, "-m", "snakes_web", "export-onnx", str(pkl), str(onnx)], check=True,
                   stdout=subprocess.DEVNULL)
    return {"pkl": str(pkl), "onnx": str(onnx), "train_s": trained - started,
            "convert_s": time.perf_counter() - trained}


def resample_cost(repeats: int = 200) -> dict[str, float]:
    """Time ``to_input`` on a ``Resize(460)`` image with and without the ``aug_transforms(size=224)`` map (ms)."""
    import time

    import numpy as np

    from snakes_web.model.resampling import extract
    from snakes_web.model.transforms import Resample, to_input

    with quiet():
        from fastai.data.transforms import Normalize
        from fastai.vision.augment import aug_transforms
        from fastai.vision.core import imagenet_stats

    source, size = BOOK_SIZES
    resizes = [tfm for tfm in aug_transforms(size=size) if getattr(tfm, "size", None) is not None]
    started = time.perf_counter()
    resample = Resample(extract(resizes, source, source))
    extracted = time.perf_counter() - started
    pixels = np.random.default_rng(0).integers(0, 255, (source, source, 3), dtype=np.uint8)
    image, small = Image.fromarray(pixels), Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR)
    normalize = Normalize.from_stats(*imagenet_stats, cuda=False)
    mean, std = normalize.mean.flatten().tolist(), normalize.std.flatten().tolist()

    def ms(call: Callable[[], Any]) -> float:
        call()
        begun = time.perf_counter()
        for _ in range(repeats):
            call()
        return (time.perf_counter() - begun) * 1000 / repeats

    return {"extract_s": extracted,
            "with_ms": ms(lambda: to_input(image, 255.0, mean, std, resample)),
            "without_ms": ms(lambda: to_input(image, 255.0, mean, std)),
            "item_only_ms": ms(lambda: to_input(small, 255.0, mean, std))}


def recipes_section(image: Path, args: Any, work: Path) -> str:
    """Train, convert and serve each recipe on both backends; return the Markdown section."""
    import argparse
    import json
    import subprocess
    import sys

    from .servers import serve

    # Half the bench's time per server; in smoke mode at least 1 s counted, so a fastai server that is
    # still warming up on a busy machine answers something (the smoke test checks both rates are > 0).
    duration, warmup = (max(1.0, args.duration), max(0.5, args.warmup)) if args.smoke else \
        (args.duration / 2, args.warmup / 2)
    short = argparse.Namespace(**{**vars(args), "duration": duration, "warmup": warmup})
    names = list(RECIPES)[:1] if args.smoke else list(RECIPES)
    label = "1 MP JPEG"
    rows = []
    for name in names:
        print(f"  {name}: one epoch, export, export-onnx; then served on ONNX and on fastai ...", flush=True)
        folder = work / "recipes" / name
        folder.mkdir(parents=True, exist_ok=True)
        out = subprocess.run([sys.executable, "-m", "snakes_web.tools.bench.recipes", "prepare", name, str(folder)],
                             capture_output=True, text=True, check=True)
        made = json.loads(out.stdout.strip().splitlines()[-1])
        served = {backend: serve(f"{name} ({backend})", Path(made[key]), {label: image}, short,
                                 work / f"recipe-{name}-{backend}.log", settings={"SNAKES_FEEDBACK": "false"})
                  for backend, key in (("onnx", "onnx"), ("fastai", "pkl"))}
        onnx, fastai = (served[b].loads[label] for b in ("onnx", "fastai"))
        rows.append(f"| {name} | {RECIPES[name].arch} | {onnx.rate:.1f} | {fastai.rate:.1f} | "
                    f"{onnx.rate / fastai.rate if fastai.rate else float('nan'):.2f}× | "
                    f"{onnx.cpu_ms_per_image:.1f} / {fastai.cpu_ms_per_image:.1f} | "
                    f"{_mb(served['onnx'].rss_mb)} / {_mb(served['fastai'].rss_mb)} | "
                    f"{onnx.errors + fastai.errors} |")
    cost_out = subprocess.run([sys.executable, "-m", "snakes_web.tools.bench.recipes", "resample-cost"],
                              capture_output=True, text=True, check=True)
    cost = json.loads(cost_out.stdout.strip().splitlines()[-1])
    source, size = BOOK_SIZES
    return "\n".join([
        "", RECIPES_HEADING, "",
        f"Each recipe of `snakes_web/tools/bench/recipes.py` (the ones `tests/test_recipes.py` checks against "
        f"`learn.predict`), trained for one epoch on generated photos at 64 px, exported and converted with "
        f"`snakes-web export-onnx` (fp32), then served by our gunicorn (feedback off) with each backend in "
        f"turn: {args.concurrency} uploads of the {label} in flight, {short.warmup:g} s warm-up, "
        f"{short.duration:g} s counted. RSS per worker after the load.", "",
        "| recipe | network | ONNX img/s | fastai img/s | ONNX ÷ fastai | CPU ms/image ONNX / fastai "
        "| RSS per worker MB ONNX / fastai | errors |",
        "|---|---|---:|---:|---:|---|---|---:|", *rows, "",
        f"**What the batch resize costs.** `aug_transforms(size=…)`'s validation resize is applied in NumPy "
        f"from the taps `export-onnx` measured. At the book's sizes (`Resize({source})`, then "
        f"`aug_transforms(size={size})`), in process, one thread: scaling and normalising the {source}-px "
        f"image into the model's input takes {cost['with_ms']:.2f} ms with the resample and "
        f"{cost['without_ms']:.2f} ms for the {source}-px image without it (it normalises fewer pixels "
        f"after it); an export whose item transform is already `Resize({size})` takes "
        f"{cost['item_only_ms']:.2f} ms. Measuring the map at export took {cost['extract_s']:.1f} s.", ""])


def _mb(values: list[float]) -> str:
    """Say the workers' RSS in MB."""
    return ", ".join(f"{v:.0f}" for v in values) or "?"


if __name__ == "__main__":  # the bench's helper processes: torch and fastai stay out of the bench itself
    import json
    import sys

    if sys.argv[1] == "prepare":
        print(json.dumps(prepare(sys.argv[2], Path(sys.argv[3]))))
    else:
        print(json.dumps(resample_cost()))
