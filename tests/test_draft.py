"""Draft decoding: a large JPEG is decoded at a reduced scale that still covers what the model needs."""
from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from snakes_web import create_app
from snakes_web.imaging.images import load_image
from snakes_web.model.predictor import Prediction
from tests.conftest import FakePredictor, image_bytes


def jpeg(size: tuple[int, int]) -> bytes:
    """A noisy JPEG: real DCT content at every scale."""
    rng = np.random.default_rng(1)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(out, "JPEG", quality=85)
    return out.getvalue()


@pytest.mark.parametrize("size, min_side, decoded", [
    ((4000, 3000), 256, (500, 375)),      # 12 MP: 1/8 scale
    ((1155, 866), 256, (578, 433)),       # 1 MP: 1/2 scale; 1/4 would be 217 < 256
    ((3000, 4000), 224, (375, 500)),      # portrait
    ((600, 400), 256, (600, 400)),        # already small: full size
    ((4000, 3000), None, (4000, 3000)),   # no min_side: full size
])
def test_a_jpeg_decodes_at_the_smallest_scale_that_keeps_min_side(size: tuple[int, int], min_side: int | None,
                                                                  decoded: tuple[int, int]) -> None:
    image = load_image(jpeg(size), 50_000_000, min_side=min_side)
    assert image.size == decoded and image.mode == "RGB"
    assert min(image.size) >= min(min_side or 0, *size)


@pytest.mark.parametrize("size, min_side, reduced", [
    ((2000, 1600), 256, (667, 534)),      # 1600 // 512 = 3: the shorter side stays >= 2 × 256
    ((1100, 1000), 256, (1100, 1000)),    # 1000 // 512 = 1: as it is
    ((6000, 4000), 224, (750, 500)),      # 24 MP: 4000 // 448 = 8
    ((400, 30000), 128, (200, 15000)),    # 12 MP, long and thin: reduced by area to <= 8 MP (factor 2)
    ((2000, 1600), None, (2000, 1600)),   # no min_side: full size
])
def test_other_formats_are_box_reduced_right_after_decoding(size: tuple[int, int], min_side: int | None,
                                                           reduced: tuple[int, int]) -> None:
    assert load_image(image_bytes("PNG", size=size), 50_000_000, min_side=min_side).size == reduced


def test_the_draft_still_honours_exif_orientation() -> None:
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.new("RGB", (2400, 1200), (200, 30, 30)).save(out, "JPEG", exif=exif)
    assert load_image(out.getvalue(), 50_000_000, min_side=256).size == (300, 600)


class SizeRecorder(FakePredictor):
    """A fake model that needs a 256-pixel shorter side and remembers the size it was given."""

    min_side = 256

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    def predict(self, image: Image.Image) -> list[Prediction]:
        self.sizes.append(image.size)
        return super().predict(image)


@pytest.mark.parametrize("draft, size", [(True, (500, 375)), (False, (800, 600))])  # no draft: box-reduced by 5
def test_the_api_decodes_to_the_side_the_model_needs_without_the_draft_too(settings: dict[str, Any], draft: bool,
                                                                       size: tuple[int, int]) -> None:
    recorder = SizeRecorder()
    client = create_app({**settings, "PREDICTOR": recorder, "JPEG_DRAFT": draft}).test_client()
    photo = image_bytes("JPEG", size=(4000, 3000))  # one colour: a small file, 12 megapixels
    boundary, body = encode_multipart({"file": FileStorage(io.BytesIO(photo), "big.jpg")})
    response = client.post("/api/v1/predict", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 200 and recorder.sizes == [size]
