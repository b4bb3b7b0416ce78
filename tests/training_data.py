"""Generated photo folders for the training tests: colours a network tells apart in a few epochs."""
from __future__ import annotations

import contextlib
import io
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

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


def held_out_photos(seed: int = 1000, per_class: int = 4) -> list[tuple[str, Image.Image]]:
    """Return (class, photo) pairs the model never saw (another seed)."""
    rng = random.Random(seed)
    return [(label, colour_photo(colour, rng)) for label, colour in COLOURS.items() for _ in range(per_class)]


@dataclass(frozen=True)
class Trained:
    """What one run of `snakes-web train` left behind: its files, its output and its exit status."""

    photos: Path
    pkl: Path
    status: int
    stdout: str
    stderr: str

    @property
    def onnx(self) -> Path:
        """Return the ONNX model written beside the .pkl (--onnx)."""
        return self.pkl.with_suffix(".onnx")


#: Small and short, to keep the suite fast: 64 pixels, 1 frozen + 3 epochs (~20 s on 2 idle cores).
TEST_TRAINING_ARGS = ("--size", "64", "--epochs", "3", "--frozen-epochs", "1", "--seed", "0", "--int8")


def train_once(folder: Path) -> Trained:
    """Run the real command on a generated dataset, capturing what it prints."""
    from snakes_web.tools.cli import main

    photos = make_colour_dataset(folder / "photos")
    pkl = folder / "model" / "export.pkl"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["train", str(photos), "-o", str(pkl), "--onnx", *TEST_TRAINING_ARGS])
    return Trained(photos, pkl, status, out.getvalue(), err.getvalue())
