"""Decoding within a memory bound: what a decode would take is known before it starts, and it is made small early.

docs/security.md promises: a file whose decode would take more than `SNAKES_MAX_DECODE_BYTES` is refused with 413
before a pixel is decoded; every other image is reduced right after its decode, a strip at a time, so no
full-size copy is made after the decode itself; ordinary photos get the answers they always had.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from snakes_web.exceptions import PayloadTooLarge
from snakes_web.imaging import images
from snakes_web.imaging.images import MAX_DECODE_BYTES, decode_cost, load_image, reduced_rgb, to_rgb
from snakes_web.tools.bombs import Bomb, bombs
from tests.conftest import DATA

MB = 2**20


@pytest.fixture(scope="module")
def all_bombs() -> dict[str, Bomb]:
    return {bomb.name: bomb for bomb in bombs()}


#: At 48 MP and the default 100 MiB: refused before decoding, or decoded (name: what it costs, MB).
REFUSED = {"rgba-png": 183, "rgba-exif6-png": 183, "progressive-jpeg": 278, "wide-webp": 732,
           "grey16-tiff": 183, "rgb16-tiff": 458, "rgb-avif": 412, "rgb-heic": 366}
ACCEPTED = {"grey16-png", "palette-png", "cmyk-jpeg", "huge-gif", "animated-gif"}


def test_every_bomb_kind_is_either_refused_before_decoding_or_fits_the_bound(all_bombs: dict[str, Bomb]) -> None:
    assert set(all_bombs) == set(REFUSED) | ACCEPTED
    for name, megabytes in REFUSED.items():
        with pytest.raises(PayloadTooLarge) as refused:
            load_image(all_bombs[name].data, 50_000_000, min_side=256)
        assert f"would take {megabytes} MB of memory to decode; the limit is 100 MB" in refused.value.detail, name
    for name in ACCEPTED:
        image = load_image(all_bombs[name].data, 50_000_000, min_side=256)
        assert image.mode == "RGB" and image.width * image.height <= images.WORKING_PIXELS, name


def test_the_cost_counts_what_each_codec_holds_besides_the_pixels(all_bombs: dict[str, Bomb]) -> None:
    images._register_plugins()  # HEIF

    def cost(name: str) -> int:
        image = Image.open(io.BytesIO(all_bombs[name].data))
        full = image.size
        image.draft(None, (256, 256))  # as the server asks: a progressive JPEG keeps full-size coefficients
        return decode_cost(image, full)

    pixels = 8000 * 6000
    assert cost("palette-png") == pixels            # 1 byte a pixel
    assert cost("grey16-png") == 2 * pixels         # I;16
    assert cost("rgba-png") == 4 * pixels           # RGB and RGBA: 4 bytes each in Pillow
    assert cost("progressive-jpeg") > 6 * pixels    # 3 components × 2 bytes of coefficients, at full size
    assert cost("cmyk-jpeg") == pixels // 16        # baseline: its 1/8 draft (1000 × 750 × 4) is all it decodes
    assert cost("grey16-tiff") == 4 * pixels        # the image and libtiff's one 16-bit strip
    assert cost("rgb-heic") == 8 * pixels and cost("rgb-avif") == 9 * pixels


def test_the_bound_is_a_setting_and_zero_turns_it_off(all_bombs: dict[str, Bomb]) -> None:
    with pytest.raises(PayloadTooLarge):
        load_image(all_bombs["palette-png"].data, 50_000_000, min_side=256, max_bytes=40 * MB)
    assert load_image(all_bombs["rgba-png"].data, 50_000_000, min_side=256, max_bytes=0).mode == "RGB"


MEASURE = """
import json, re, sys
from pathlib import Path
from snakes_web.imaging.images import load_image
from snakes_web.serving.worker import tune_malloc

assert tune_malloc()  # as a worker runs

def kb(field):
    return int(re.search(field + r":\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))

files = sorted(Path(sys.argv[1]).iterdir())
for path in files:  # every codec and cache warm first, on a small file of each kind
    if path.name.startswith("small-"):
        load_image(path.read_bytes(), 50_000_000, min_side=256)
out = {}
for path in files:
    if path.name.startswith("small-"):
        continue
    data = path.read_bytes()
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark
    before = kb("VmRSS")
    try:
        load_image(data, 50_000_000, min_side=256)
        name = path.stem
    except Exception:
        name = path.stem + " (refused)"
    out[name] = (kb("VmHWM") - before) / 1024
print(json.dumps(out))
"""


@pytest.mark.slow
def test_decoding_a_bomb_takes_no_more_than_its_cost_says(all_bombs: dict[str, Bomb], tmp_path: Path) -> None:
    """Measured, not computed: the files decoded one by one in a process tuned as a worker, its peak
    resident memory read from /proc after each (the mark reset before it)."""
    for bomb in all_bombs.values():
        (tmp_path / f"{bomb.name}.{bomb.suffix}").write_bytes(bomb.data)
    for bomb in bombs(0.05):
        (tmp_path / f"small-{bomb.name}.{bomb.suffix}").write_bytes(bomb.data)
    peaks: dict[str, float] = json.loads(subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path)],
                                                        capture_output=True, text=True, check=True,
                                                        timeout=300).stdout)
    assert len(peaks) == len(all_bombs)
    for name, bomb in all_bombs.items():
        if name in REFUSED:
            assert peaks[f"{name} (refused)"] < 8, (name, peaks)  # refused from its header: nothing decoded
            continue
        images._register_plugins()
        image = Image.open(io.BytesIO(bomb.data))
        full = image.size
        image.draft(None, (256, 256))
        bound = decode_cost(image, full) / MB
        # The decode's own pixels and codec buffers, then strips and the small result, never a second
        # full-size copy (the smallest, a palette image's, would be 46 MB more).
        assert peaks[name] <= bound + 32, (name, peaks[name], bound)
    assert peaks["grey16-png"] > 80  # the measurement sees a decode: 8000 × 6000 × 2 bytes were touched
    assert max(peaks.values()) < MAX_DECODE_BYTES / MB + 32


def previous_pipeline(data: bytes, min_side: int | None) -> Image.Image:
    """What load_image did before it reduced images: draft, load, exif_transpose, to_rgb, at full size."""
    image = Image.open(io.BytesIO(data))
    if min_side:
        image.draft(None, (min_side, min_side))
    image.load()
    return to_rgb(ImageOps.exif_transpose(image) or image)


def jpeg_of(image: Image.Image, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, **options)
    return out.getvalue()


def ordinary_photos() -> dict[str, bytes]:
    """The CC0 photos as sent, and as a 12 MP phone photo (upscaled), a portrait one with EXIF 6."""
    chelsea = Image.open(DATA / "chelsea.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6
    return {"chelsea": (DATA / "chelsea.jpg").read_bytes(), "coffee": (DATA / "coffee.jpg").read_bytes(),
            "12 MP": jpeg_of(chelsea.resize((4000, 2660))),
            "12 MP, EXIF 6": jpeg_of(chelsea.resize((4000, 2660)), exif=exif)}


@pytest.mark.parametrize("name", list(ordinary_photos()))
def test_an_ordinary_jpeg_decodes_to_exactly_the_pixels_it_did_before(name: str) -> None:
    data = ordinary_photos()[name]
    for min_side in (224, 256, None):
        now, before = load_image(data, 50_000_000, min_side=min_side), previous_pipeline(data, min_side)
        assert now.size == before.size and np.array_equal(np.asarray(now), np.asarray(before)), (name, min_side)


@pytest.mark.parametrize("mode, make", [
    ("RGBA", lambda a: Image.fromarray(a[..., :4], "RGBA")),
    ("LA", lambda a: Image.fromarray(a[..., :2], "LA")),
    ("La", lambda a: Image.fromarray(a[..., :2], "LA").convert("La")),
    ("P", lambda a: Image.fromarray(a[..., :3], "RGB").quantize(64)),
    ("I;16", lambda a: Image.fromarray(a[..., 0].astype(np.uint16) * 200)),
    ("I", lambda a: Image.fromarray(a[..., 0].astype(np.int32) * 1000 - 9000, "I")),
    ("F", lambda a: Image.fromarray(np.where(a[..., 0] > 250, np.nan, a[..., 0] * 3.5).astype(np.float32), "F")),
    ("CMYK", lambda a: Image.fromarray(a[..., :4], "CMYK")),
])
def test_reducing_a_strip_at_a_time_gives_what_converting_the_whole_image_then_reducing_gives(
        mode: str, make: Callable[[np.ndarray], Image.Image], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "STRIP_PIXELS", 3000)  # many strips, the last one short
    pixels = np.random.default_rng(7).integers(0, 256, (211, 157, 4), dtype=np.uint8)
    image = make(pixels)
    if mode == "P":
        image.info["transparency"] = 3
    assert image.mode == mode
    for factor in (1, 2, 3, 5):
        expected = to_rgb(image).reduce(factor)
        got = reduced_rgb(image, factor)
        assert got.size == expected.size and np.array_equal(np.asarray(got), np.asarray(expected)), (mode, factor)


def test_a_reduced_image_is_still_turned_upright_by_its_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    out = io.BytesIO()
    picture = Image.new("RGBA", (4000, 2000), (200, 30, 30, 255))
    picture.paste((30, 30, 200, 255), (0, 0, 400, 2000))  # blue on the left: at the top once upright
    picture.save(out, "PNG", exif=exif)
    image = load_image(out.getvalue(), 50_000_000, min_side=256)
    assert image.size == (667, 1334)  # reduced by 3 (2000 // 512), then rotated
    assert image.getpixel((333, 10)) == (30, 30, 200) and image.getpixel((333, 1320)) == (200, 30, 30)


@pytest.mark.slow
def test_a_large_png_photo_keeps_its_answer_when_reduced(default_predictor: object) -> None:
    """The same 12 MP photo as a PNG: reduced by 5 before the model's resize, against decoded whole."""
    out = io.BytesIO()
    Image.open(DATA / "chelsea.jpg").resize((4000, 2660), Image.Resampling.BICUBIC).save(out, "PNG")
    side = default_predictor.min_side  # type: ignore[attr-defined]
    reduced = load_image(out.getvalue(), 50_000_000, min_side=side)
    whole = load_image(out.getvalue(), 50_000_000, min_side=None)
    assert reduced.size == (800, 532) and whole.size == (4000, 2660)
    now = {p.label: p.probability for p in default_predictor.predict(reduced)}  # type: ignore[attr-defined]
    before = {p.label: p.probability for p in default_predictor.predict(whole)}  # type: ignore[attr-defined]
    assert max(now, key=now.__getitem__) == max(before, key=before.__getitem__) == "not a snake"
    assert max(abs(now[label] - before[label]) for label in now) < 0.01
