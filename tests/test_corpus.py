"""The corpus of odd files: each gets exactly its answer from the decoder and from both blueprints."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from snakes_web.exceptions import SnakesError
from snakes_web.imaging.images import load_image
from tests.corpus import Case, build_corpus, encode, gradient

LIMIT = 50_000_000  # the default SNAKES_MAX_IMAGE_PIXELS
CORPUS = build_corpus()
IDS = [case.name for case in CORPUS]


def decode_status(case: Case) -> int:
    """Return 200 for a clean RGB image of the expected size, else the typed error's status."""
    try:
        image = load_image(case.data, LIMIT)
    except SnakesError as error:
        return error.status
    assert image.mode == "RGB"
    assert case.size is None or image.size == case.size
    return 200


def test_the_corpus_covers_what_the_issue_lists() -> None:
    names = " ".join(IDS)
    for kind in ("jpeg", "png", "gif", "webp", "bmp", "tiff", "heif", "avif", "truncated", "zero-bytes",
                 "random-bytes", "bomb", "huge-header", "named-jpg", "svg", "pdf", "html", "zip"):
        assert kind in names
    assert {case.status for case in CORPUS} == {200, 400, 413, 415, 422}


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_the_decoder_gives_each_file_its_answer(case: Case) -> None:
    assert decode_status(case) == case.status


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_the_api_gives_each_file_its_answer(case: Case, upload: Any, app: Any) -> None:
    app.config["MAX_IMAGE_PIXELS"] = LIMIT
    response = upload(case.data, name=case.filename, content_type=case.content_type)
    assert response.status_code == case.status
    if case.status != 200:
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["status"] == case.status


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_the_page_gives_each_file_its_answer(case: Case, upload: Any, app: Any) -> None:
    app.config["MAX_IMAGE_PIXELS"] = LIMIT
    response = upload(case.data, path="/", name=case.filename, content_type=case.content_type)
    assert response.status_code == case.status and response.mimetype == "text/html"


# --- conversions are right, not just RGB -----------------------------------------------------

def grey_of(data: bytes) -> np.ndarray:
    """Decode ``data`` and return its pixels as signed ints."""
    return np.asarray(load_image(data, LIMIT), dtype=np.int32)


@pytest.mark.parametrize("fmt, mode", [("PNG", "I;16"), ("TIFF", "I;16"), ("TIFF", "I"), ("TIFF", "F"),
                                       ("PNG", "1"), ("BMP", "1"), ("TIFF", "L"), ("BMP", "P")])
def test_deep_and_grey_modes_keep_their_brightness(fmt: str, mode: str) -> None:
    reference = np.asarray(gradient("RGB").convert(mode if mode in {"1", "P"} else "L").convert("RGB"),
                           dtype=np.int32)
    assert np.abs(grey_of(encode(gradient(mode), fmt)) - reference).max() <= 1


@pytest.mark.parametrize("fmt, mode", [("TIFF", "CMYK"), ("JPEG", "CMYK"), ("TIFF", "YCbCr")])
def test_colour_spaces_come_back_as_the_same_colours(fmt: str, mode: str) -> None:
    source = gradient("RGB")
    save = {"compression": "jpeg"} if mode == "YCbCr" else {}
    image = source if mode == "YCbCr" else source.convert(mode)
    tolerance = 0 if fmt == "TIFF" and mode == "CMYK" else 12  # JPEG is lossy
    assert np.abs(grey_of(encode(image, fmt, **save)) - np.asarray(source, dtype=np.int32)).max() <= tolerance


@pytest.mark.parametrize("fmt, mode", [("PNG", "RGBA"), ("PNG", "LA"), ("WEBP", "RGBA"), ("TIFF", "RGBA"),
                                       ("GIF", "P"), ("PNG", "P"), ("AVIF", "RGBA"), ("HEIF", "RGBA")])
def test_see_through_pixels_become_white(fmt: str, mode: str) -> None:
    clear = Image.new("RGBA", (16, 16), (200, 0, 0, 0))
    if mode == "LA":
        clear = Image.new("LA", (16, 16), (30, 0))
    save: dict[str, Any] = {}
    if mode == "P":
        clear = Image.new("P", (16, 16), 0)
        clear.putpalette([200, 0, 0] * 256)
        save = {"transparency": 0}
    if fmt == "WEBP":
        save = {"lossless": True}
    assert (grey_of(encode(clear, fmt, **save)) >= 250).all()


def test_the_first_frame_of_every_animation_is_used() -> None:
    for case in CORPUS:
        if case.name.endswith("animated"):
            red, _, blue = load_image(case.data, LIMIT).getpixel((12, 12))
            assert red > 200 and blue < 60, case.name
