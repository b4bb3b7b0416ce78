"""The default model: real pretrained weights, the reference preprocessing, sensible answers."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from snakes_web.imaging.images import load_image
from snakes_web.model.snakenet import NOT_A_SNAKE, SNAKE_SPECIES, SnakeNet, pretrained_backbone
from tests.conftest import DATA

PHOTOS = ["chelsea.jpg", "coffee.jpg"]


def reference_input(image: Image.Image) -> torch.Tensor:
    """EfficientNet-Lite's reference preprocessing: short side 256 bicubic, centre 224, [-1, 1]."""
    width, height = image.size
    scale = 256 / min(width, height)
    resized = image.resize((round(width * scale), round(height * scale)), Image.BICUBIC)
    left, top = (resized.width - 224) // 2, (resized.height - 224) // 2
    cropped = resized.crop((left, top, left + 224, top + 224))
    pixels = np.asarray(cropped, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)


@pytest.fixture(scope="module")
def backbone() -> torch.nn.Module:
    return pretrained_backbone()


def photo(name: str) -> Image.Image:
    return load_image((DATA / name).read_bytes(), 50_000_000)


def test_the_vocab_is_seventeen_species_then_not_a_snake_in_imagenet_order(default_predictor: Any) -> None:
    assert default_predictor.labels == [*SNAKE_SPECIES, NOT_A_SNAKE] and len(SNAKE_SPECIES) == 17
    assert default_predictor.describe()["name"] == "snakes-efficientnet-lite0"
    assert default_predictor.describe()["input_size"] == [224, 224]


@pytest.mark.parametrize("name, imagenet_classes", [
    ("chelsea.jpg", range(281, 286)),   # tabby, tiger cat, Persian, Siamese, Egyptian cat
    ("coffee.jpg", (504, 967, 968)),    # coffee mug, espresso, cup
])
def test_the_backbone_has_real_imagenet_weights(backbone: torch.nn.Module, name: str,
                                                imagenet_classes: Any) -> None:
    with torch.inference_mode():
        top1 = int(backbone(reference_input(photo(name))).argmax())
    assert top1 in imagenet_classes


@pytest.mark.parametrize("name", PHOTOS)
def test_a_photo_without_a_snake_is_not_a_snake(default_predictor: Any, name: str) -> None:
    best = default_predictor.predict(photo(name))[0]
    assert best.label == NOT_A_SNAKE and best.probability > 0.9


def test_the_folding_keeps_the_imagenet_probabilities(backbone: torch.nn.Module) -> None:
    x = reference_input(photo("chelsea.jpg"))
    with torch.inference_mode():
        full = torch.softmax(backbone(x), dim=1)[0]
        folded = torch.softmax(SnakeNet(backbone)(x), dim=1)[0]
    assert torch.allclose(folded[:17], full[52:69], atol=1e-6)
    assert float(folded[17]) == pytest.approx(1 - float(full[52:69].sum()), abs=1e-5)


def _generated_images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    gradient = np.linspace(0, 255, 300 * 420 * 3).reshape(300, 420, 3).astype(np.uint8)
    return [Image.fromarray(gradient), Image.fromarray(rng.integers(0, 255, (500, 333, 3), dtype=np.uint8))]


@pytest.mark.parametrize("index", range(len(PHOTOS) + 2))
def test_fastai_transforms_reproduce_the_reference_preprocessing(default_predictor: Any,
                                                                 backbone: torch.nn.Module,
                                                                 index: int) -> None:
    image = [*(photo(n) for n in PHOTOS), *_generated_images()][index]
    with torch.inference_mode():
        reference = torch.softmax(SnakeNet(backbone)(reference_input(image)), dim=1)[0].tolist()
    served = {p.label: p.probability for p in default_predictor.predict(image)}
    ours = [served[label] for label in default_predictor.labels]
    assert int(np.argmax(ours)) == int(np.argmax(reference))
    assert max(abs(a - b) for a, b in zip(ours, reference, strict=True)) < 0.05


def test_the_build_command_skips_an_existing_model(default_model_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from snakes_web.tools.cli import main

    before = default_model_path.stat().st_mtime_ns
    assert main(["build-default-model", "-o", str(default_model_path)]) == 0
    assert "exists" in capsys.readouterr().out and default_model_path.stat().st_mtime_ns == before


@pytest.mark.parametrize("name", PHOTOS)
def test_on_photos_the_likeliest_snake_species_agrees_with_the_reference(default_predictor: Any,
                                                                         backbone: torch.nn.Module,
                                                                         name: str) -> None:
    # The photos hold no snake, so this compares the ranking inside the 17 species, not just top-1.
    with torch.inference_mode():
        reference = torch.softmax(SnakeNet(backbone)(reference_input(photo(name))), dim=1)[0, :17]
    served = [p.label for p in default_predictor.predict(photo(name)) if p.label != NOT_A_SNAKE]
    assert served[0] == SNAKE_SPECIES[int(reference.argmax())]
