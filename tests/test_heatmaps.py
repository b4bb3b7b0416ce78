"""Where the model looked: CAM and occlusion light the region that holds the evidence, in both backends;
the default model's CAM is the reference formula; heatmaps are placed on the photo and drawn as a PNG."""
from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from snakes_web.model.heatmaps import Heatmap, footprint, normalised, occlusion_grid, render_png
from tests.tiny_learner import export_tiny_learner

RED_CORNER = (32, 32, 64, 64)  # the evidence: a red square in the bottom-right quarter of a 64×64 photo


def red_corner_photo() -> Image.Image:
    """A grey photo with a red square in its bottom-right quarter."""
    image = Image.new("RGB", (64, 64), (128, 128, 128))
    image.paste((230, 20, 20), RED_CORNER)
    return image


def evidence_net(*pool: nn.Module) -> nn.Sequential:
    """A fixed network: "circle" is how red a place is, "square" how blue; ``pool`` then a linear head."""
    features = nn.Sequential(nn.AvgPool2d(4), nn.Conv2d(3, 2, 1, bias=False))
    with torch.no_grad():
        features[1].weight.copy_(torch.tensor([[1.0, -0.5, -0.5], [-0.5, -0.5, 1.0]]).reshape(2, 3, 1, 1))
        linear = nn.Linear(2, 2)
        linear.weight.copy_(torch.eye(2) * 8)
        linear.bias.zero_()
    return nn.Sequential(features, nn.Sequential(*pool, linear))


@pytest.fixture(scope="module")
def evidence_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The evidence network with a pool → linear head (CAM) and a head with a ReLU (occlusion), both backends."""
    from snakes_web.model.fastai_backend import FastaiPredictor
    from snakes_web.model.onnx_backend import OnnxPredictor
    from snakes_web.model.onnx_export import export_onnx

    models: dict[str, dict[str, Any]] = {}
    for name, pool in (("avg", (nn.AdaptiveAvgPool2d(1), nn.Flatten())),
                       ("relu", (nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.ReLU()))):
        folder = tmp_path_factory.mktemp(f"evidence-{name}")
        pkl = export_tiny_learner(folder, model=evidence_net(*pool))
        export_onnx(pkl, folder / "export.onnx")
        models[name] = {"fastai": FastaiPredictor(pkl), "onnx": OnnxPredictor(folder / "export.onnx")}
    return models


def lit_quarter(grid: np.ndarray) -> tuple[float, float]:
    """Return the mean of the cells inside the bottom-right quarter, and of those wholly outside it."""
    rows, cols = grid.shape
    y = (np.arange(rows) + 0.5)[:, None] / rows  # cell centres, as fractions of the side
    x = (np.arange(cols) + 0.5)[None, :] / cols
    inside = (y > 0.5) & (x > 0.5)
    outside = ((y + 0.5 / rows) <= 0.5) | ((x + 0.5 / cols) <= 0.5)
    return float(grid[inside].mean()), float(grid[outside].mean())


@pytest.mark.parametrize("backend", ["fastai", "onnx"])
@pytest.mark.parametrize("head, method", [("avg", "cam"), ("relu", "occlusion")])
def test_the_region_holding_the_evidence_lights_up(evidence_models: Any, backend: str, head: str,
                                                   method: str) -> None:
    predictor = evidence_models[head][backend]
    assert predictor.explains_with == method
    predictions, heatmap = predictor.explain(red_corner_photo(), "circle")
    assert predictions[0].label == "circle" and heatmap.label == "circle" and heatmap.method == method
    inside, outside = lit_quarter(heatmap.grid)
    assert inside > 0.6 and outside < 0.25, heatmap.grid.round(2)
    row, col = np.unravel_index(int(np.argmax(heatmap.grid)), heatmap.grid.shape)
    assert row >= heatmap.grid.shape[0] // 2 and col >= heatmap.grid.shape[1] // 2


@pytest.mark.parametrize("backend", ["fastai", "onnx"])
def test_the_class_asked_for_is_the_one_mapped(evidence_models: Any, backend: str) -> None:
    """"square" (blue) has no evidence in the red corner: its map is not the red corner's."""
    _, red = evidence_models["avg"][backend].explain(red_corner_photo(), "circle")
    _, blue = evidence_models["avg"][backend].explain(red_corner_photo(), "square")
    assert blue.label == "square"
    assert lit_quarter(blue.grid)[0] < 0.1 < lit_quarter(red.grid)[0]


def test_both_backends_draw_the_same_cam(evidence_models: Any) -> None:
    _, fastai = evidence_models["avg"]["fastai"].explain(red_corner_photo(), None)
    _, onnx = evidence_models["avg"]["onnx"].explain(red_corner_photo(), None)
    np.testing.assert_allclose(fastai.grid, onnx.grid, atol=1e-4)


def test_the_onnx_export_carries_the_maps_only_where_they_are_exact(evidence_models: Any) -> None:
    outputs = {head: [o.name for o in evidence_models[head]["onnx"]._session.get_outputs()] for head in ("avg", "relu")}
    assert outputs == {"avg": ["output", "cam"], "relu": ["output"]}


def test_the_onnx_path_imports_no_torch_for_heatmaps(default_onnx: Path) -> None:
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from PIL import Image;"
            "from snakes_web.model.onnx_backend import OnnxPredictor;"
            f"p = OnnxPredictor(Path({str(default_onnx)!r}));"
            "preds, heat = p.explain(Image.new('RGB', (300, 200), (90, 120, 60)));"
            "assert heat.method == 'cam', heat.method; heat.as_dict((300, 200));"
            "assert 'torch' not in sys.modules and 'fastai' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- the default model: CAM is the reference formula --------------------------------------------

def reference_cams(predictor: Any, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Zhou et al.'s M_c(x, y) = Σ_k w_k^c f_k(x, y) for the ImageNet classes, and their softmax share."""
    learner = predictor._learner
    backbone = learner.model.backbone
    with torch.inference_mode():
        from fastai.vision.core import PILImage

        batch = learner.dls.test_dl([PILImage.create(image)]).one_batch()[0].as_subclass(torch.Tensor)
        features = backbone.extract_features(batch)[0]                      # 1280 × 7 × 7
        weight = backbone._fc.weight                                         # 1000 × 1280
        cams = torch.einsum("kc,chw->khw", weight, features).numpy()
        logits = backbone._fc(features.mean(dim=(1, 2))[None])[0].numpy()
    return cams, logits


@pytest.mark.parametrize("species", ["horned viper", "king snake", "sidewinder"])
def test_the_default_models_cam_is_the_reference_formula(default_predictor: Any, default_onnx: Path,
                                                         photo: Any, species: str) -> None:
    from snakes_web.model.onnx_backend import OnnxPredictor
    from snakes_web.model.snakenet import FIRST_SNAKE, VOCAB

    image = Image.open(io.BytesIO(photo("chelsea.jpg"))).convert("RGB")
    cams, _ = reference_cams(default_predictor, image)
    expected = normalised(cams[FIRST_SNAKE + VOCAB.index(species)])
    _, fastai = default_predictor.explain(image, species)
    _, onnx = OnnxPredictor(default_onnx).explain(image, species)
    assert fastai.method == onnx.method == "cam"
    np.testing.assert_allclose(fastai.grid, expected, atol=1e-5)
    np.testing.assert_allclose(onnx.grid, expected, atol=2e-3)  # ONNX Runtime's float32 kernels differ slightly


def test_not_a_snake_is_the_softmax_weighted_map_of_the_other_classes(default_predictor: Any, photo: Any) -> None:
    from snakes_web.model.snakenet import FIRST_SNAKE, LAST_SNAKE

    image = Image.open(io.BytesIO(photo("coffee.jpg"))).convert("RGB")
    cams, logits = reference_cams(default_predictor, image)
    rest = np.r_[0:FIRST_SNAKE, LAST_SNAKE + 1:1000]
    share = np.exp(logits[rest] - logits[rest].max())
    share /= share.sum()
    expected = normalised(np.tensordot(share, cams[rest], axes=1))
    predictions, heatmap = default_predictor.explain(image, None)
    assert predictions[0].label == heatmap.label == "not a snake"
    np.testing.assert_allclose(heatmap.grid, expected, atol=1e-5)


def test_explaining_predicts_what_predict_predicts(default_predictor: Any, photo: Any) -> None:
    image = Image.open(io.BytesIO(photo("chelsea.jpg"))).convert("RGB")
    explained, _ = default_predictor.explain(image, None)
    assert [(p.label, round(p.probability, 6)) for p in explained] == \
           [(p.label, round(p.probability, 6)) for p in default_predictor.predict(image)]


# --- occlusion, placing and drawing ------------------------------------------------------------

def test_occlusion_finds_the_one_region_a_model_reads() -> None:
    """A model that reads only the top-left quarter's red: covering any other region changes nothing."""
    batch = np.zeros((1, 3, 56, 56), dtype=np.float32)
    batch[0, 0, :28, :28] = 1.0

    def run(inputs: np.ndarray) -> np.ndarray:
        evidence = inputs[:, 0, :20, :20].mean(axis=(1, 2))
        p = 1 / (1 + np.exp(-(8 * evidence - 4)))
        return np.stack([p, 1 - p], axis=1)

    grid = occlusion_grid(run, batch, 0)
    assert grid.shape == (7, 7) and grid.max() == 1.0
    assert grid[:3, :3].min() > 0 and grid[4:, :].max() == 0 and grid[:, 4:].max() == 0


def test_the_default_preprocessing_sees_the_centre_square_of_the_photo() -> None:
    steps = [{"op": "resize", "size": [256, 256], "method": "crop", "pad_mode": "reflection", "resample": "bicubic"},
             {"op": "crop_pad", "size": [224, 224], "pad_mode": "reflection"}]
    left, top, right, bottom = footprint(steps, (451, 300))
    # 451×300: the centre 300×300 (from x = 75) scaled to 256, then its centre 224 (16 px in): 262.5 px of photo.
    assert (left, top, right, bottom) == pytest.approx((93.75 / 451, 0.0625, 356.25 / 451, 0.9375))
    assert footprint([{"op": "resize", "size": [32, 32], "method": "squish", "pad_mode": "zeros",
                       "resample": "bilinear"}], (80, 20)) == (0.0, 0.0, 1.0, 1.0)


def test_the_png_has_the_photos_shape_and_is_clear_outside_what_the_model_saw() -> None:
    grid = np.zeros((7, 7))
    grid[3, 3] = 1.0
    heatmap = Heatmap("x", "cam", grid, (0.25, 0.0, 0.75, 1.0))
    png = Image.open(io.BytesIO(render_png(heatmap, (400, 200))))
    assert png.mode == "RGBA" and png.size == (112, 56)
    alpha = np.asarray(png)[..., 3]
    assert alpha[:, :20].max() == 0 and alpha[:, -20:].max() == 0  # outside the box: clear
    assert alpha[28, 56] > alpha[5, 40] > 0  # the hot centre is more opaque than the cold corner
    url = heatmap.as_dict((400, 200))["png"]
    assert url.startswith("data:image/png;base64,") and base64.b64decode(url.split(",", 1)[1])[:4] == b"\x89PNG"


def test_a_flat_map_is_all_zeros_not_a_division_by_zero() -> None:
    assert normalised(np.full((7, 7), 3.0)).max() == 0.0
