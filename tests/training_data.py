"""Generated photo folders for the training tests: colours a network tells apart in a few epochs."""
from __future__ import annotations

import contextlib
import io
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from snakes_web.tools.bench.recipes import COLOURS, colour_photo, make_colour_dataset


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
