"""Make the exports in tests/data/exports/: tiny models exported by release 0.1.0's own code.

fastai pickles every class of an export by its dotted path, so a model exported before the package was
laid out in layers names ``snakes_web.snakenet.SnakeNet``, ``snakes_web.training.ReadPhoto``, … . These
files were written once, by the code of the commit recorded in ``expected.json``, and are never
rewritten: ``tests/test_release_exports.py`` proves that what users exported then still loads and
predicts the same now. Each is real output of a real code path, with only the pretrained network swapped
for a tiny random one (so the files stay small):

* ``train-0.1.0.pkl``: ``snakes-web train`` on generated photos (pickles ReadPhoto, ClassFolder,
  Lite0Classifier, Lite0Body) around a tiny EfficientNet-Lite (width and depth 0.1, ~330 KB);
* ``default-0.1.0.pkl``: ``snakes-web build-default-model`` (pickles SnakeNet) around a tiny
  1000-logit network.

Run (only to make the files, never in the tests): ``python -m tests.release_exports tests/data/exports``.
Run today it would pickle today's paths: the committed files are the ones commit c2c8c66 made, before the move.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image
from torch import nn

PHOTO_COLOURS = {"blue": (30, 60, 200), "orange": (230, 120, 20)}


def probe_image() -> Image.Image:
    """Return the image every fixture's recorded prediction is made on (generated, no file)."""
    image = Image.new("RGB", (48, 40), (30, 60, 200))
    image.paste((230, 120, 20), (0, 0, 20, 40))
    return image


def tiny_lite0() -> nn.Module:
    """Return a random EfficientNet-Lite0 shrunk to width and depth 0.1 (its 1280-map head stays)."""
    from efficientnet_lite_pytorch import EfficientNet

    torch.manual_seed(0)
    return EfficientNet.from_name("efficientnet-lite0", width_coefficient=0.1, depth_coefficient=0.1,
                                  num_classes=10).eval()


def tiny_imagenet() -> nn.Module:
    """Return a random network with ImageNet's 1000 logits, small enough to commit."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 1000)).eval()


def write_photos(root: Path, per_class: int = 4) -> Path:
    """Write a few small photos per class, one folder per class."""
    for label, colour in PHOTO_COLOURS.items():
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (44 + i, 40), tuple(c + 3 * i for c in colour)).save(root / label / f"{i}.png")
    return root


def make_train_export(destination: Path) -> None:
    """Run `snakes-web train` exactly as a user does, with the tiny body instead of the pretrained one."""
    from snakes_web.model import snakenet
    from snakes_web.tools import cli

    snakenet.pretrained_backbone = tiny_lite0
    with tempfile.TemporaryDirectory() as scratch:
        photos = write_photos(Path(scratch) / "photos")
        status = cli.main(["train", str(photos), "--output", str(destination), "--size", "32",
                           "--epochs", "1", "--frozen-epochs", "0", "--min-per-class", "2",
                           "--name", "release-0.1.0-train", "-q"])
    assert status == 0, status
    destination.with_name(destination.stem + "-confusion.png").unlink(missing_ok=True)


def make_default_export(destination: Path) -> None:
    """Run `snakes-web build-default-model`'s export with the tiny network instead of the pretrained one."""
    from snakes_web.model import snakenet

    snakenet.pretrained_backbone = tiny_imagenet
    snakenet.export_default_model(destination)


def recorded_predictions(path: Path) -> dict[str, float]:
    """Return the fixture's probability for each class on the probe image, as the server computes it."""
    from snakes_web.model.loader import load_predictor

    return {p.label: p.probability for p in load_predictor(path).predict(probe_image())}


def main(folder: Path) -> None:
    """Write both exports and what they predict into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
    expected: dict[str, object] = {"made_by_commit": commit.strip(), "torch": torch.__version__}
    for name, make in (("train-0.1.0.pkl", make_train_export), ("default-0.1.0.pkl", make_default_export)):
        make(folder / name)
        expected[name] = recorded_predictions(folder / name)
    (folder / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
