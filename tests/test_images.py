"""Decoding: every accepted format and mode becomes upright RGB; everything else is a typed error."""
from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from snakes_web.exceptions import BadRequest, PayloadTooLarge, UndecodableImage, UnsupportedMediaType
from snakes_web.imaging.images import load_image, thumbnail_jpeg, to_rgb
from tests.conftest import image_bytes

LIMIT = 10_000_000


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF", "HEIF"])
def test_every_accepted_format_decodes_to_rgb(fmt: str) -> None:
    from tests.corpus import encode

    image = load_image(encode(Image.new("RGB", (40, 30), (200, 20, 20)), fmt), LIMIT)
    assert image.mode == "RGB" and image.size == (40, 30)
    red, green, _ = image.getpixel((20, 15))
    assert red > 150 and green < 80


@pytest.mark.parametrize("mode, colour, rgb", [
    ("L", 128, (128, 128, 128)), ("1", 1, (255, 255, 255)), ("1", 0, (0, 0, 0)),
    ("CMYK", (0, 0, 0, 0), (255, 255, 255)), ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
    ("LA", (10, 255), (10, 10, 10)), ("LA", (10, 0), (255, 255, 255)), ("La", (0, 0), (255, 255, 255)),
    ("PA", (3, 0), (255, 255, 255)), ("RGBA", (0, 0, 255, 255), (0, 0, 255)),
    ("RGBA", (0, 0, 255, 0), (255, 255, 255)), ("RGBa", (0, 0, 0, 0), (255, 255, 255)),
    ("RGBX", (1, 2, 3, 0), (1, 2, 3)), ("YCbCr", (255, 128, 128), (255, 255, 255)),
    ("LAB", (255, 128, 128), (254, 255, 254)), ("HSV", (0, 0, 255), (255, 255, 255)),
    ("I;16", 65535, (255, 255, 255)), ("I;16", 32896, (128, 128, 128)), ("I;16B", 32896, (128, 128, 128)),
    ("I", 32896, (128, 128, 128)), ("I", 70000, (0, 0, 0)), ("F", 0.5, (128, 128, 128)),
    ("F", 1.0, (255, 255, 255)),
])
def test_every_mode_converts_to_the_right_rgb(mode: str, colour: object, rgb: tuple[int, int, int]) -> None:
    converted = to_rgb(Image.new(mode, (8, 8), colour))  # type: ignore[arg-type]
    assert converted.mode == "RGB" and converted.getpixel((0, 0)) == rgb


def test_a_palette_image_with_a_transparent_index_is_white_there() -> None:
    palette = Image.new("P", (4, 4), 5)
    palette.putpalette([200, 0, 0] * 256)
    palette.info["transparency"] = 5
    assert to_rgb(palette).getpixel((0, 0)) == (255, 255, 255)


def test_a_float_image_with_nan_and_infinity_still_converts() -> None:
    import numpy as np

    pixels = np.array([[np.nan, np.inf], [-np.inf, 2.0]], dtype=np.float32)
    assert to_rgb(Image.fromarray(pixels)).mode == "RGB"


def test_sixteen_bit_grey_keeps_its_brightness() -> None:
    assert to_rgb(Image.new("I;16", (4, 4), 32896)).getpixel((0, 0)) == (128, 128, 128)


def test_transparency_is_flattened_onto_white() -> None:
    clear = image_bytes("PNG", colour=(255, 0, 0, 0), mode="RGBA")
    assert load_image(clear, LIMIT).getpixel((0, 0)) == (255, 255, 255)


def test_palette_transparency_is_flattened_onto_white() -> None:
    palette = Image.new("P", (4, 4), 0)
    palette.info["transparency"] = 0
    out = io.BytesIO()
    palette.save(out, format="PNG", transparency=0)
    assert load_image(out.getvalue(), LIMIT).getpixel((0, 0)) == (255, 255, 255)


def test_the_exif_orientation_is_applied() -> None:
    tall_stored_wide = Image.new("RGB", (60, 20), (0, 200, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    out = io.BytesIO()
    tall_stored_wide.save(out, format="JPEG", exif=exif)
    assert load_image(out.getvalue(), LIMIT).size == (20, 60)


def test_an_animated_gif_uses_its_first_frame() -> None:
    frames = [Image.new("RGB", (10, 10), c) for c in ((250, 0, 0), (0, 0, 250))]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    red, _, blue = load_image(out.getvalue(), LIMIT).getpixel((5, 5))
    assert red > 200 and blue < 50


@pytest.mark.parametrize("data, error", [
    (b"", BadRequest),
    (os.urandom(2048), UnsupportedMediaType),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj", UnsupportedMediaType),
    (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', UnsupportedMediaType),
    (b"GIF89a", UndecodableImage),
])
def test_bad_bytes_are_typed_errors(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        load_image(data, LIMIT)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_a_truncated_file_is_undecodable(fmt: str) -> None:
    noise = Image.frombytes("RGB", (120, 120), os.urandom(120 * 120 * 3))
    out = io.BytesIO()
    noise.save(out, format=fmt)
    with pytest.raises(UndecodableImage, match="truncated or corrupt"):
        load_image(out.getvalue()[: len(out.getvalue()) // 2], LIMIT)


def test_too_many_pixels_is_refused_before_decoding() -> None:
    with pytest.raises(PayloadTooLarge, match="megapixels"):
        load_image(image_bytes("PNG", size=(400, 300)), max_pixels=100_000)


def test_a_decompression_bomb_is_refused() -> None:
    # A PNG header claiming 30000 × 30000 pixels with almost no data behind it.
    bomb = image_bytes("PNG", size=(30000, 30000), mode="1", colour=0)
    assert len(bomb) < 200_000
    with pytest.raises(PayloadTooLarge):
        load_image(bomb, LIMIT)


def test_the_extension_and_declared_type_do_not_matter() -> None:
    # The decoder sees only bytes; a PNG is a PNG whatever it is called.
    assert load_image(image_bytes("PNG"), LIMIT).mode == "RGB"


def test_the_unsupported_message_lists_every_accepted_format() -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        load_image(b"%PDF-1.7 not an image", LIMIT)
    for word in ("JPEG", "PNG", "GIF", "WebP", "BMP", "TIFF", "HEIC", "AVIF"):
        assert word in caught.value.detail


@pytest.mark.parametrize("brand", [b"heic", b"heix", b"mif1", b"msf1", b"hevc", b"avif", b"avis"])
def test_heif_and_avif_brands_are_recognised_by_their_signature(brand: bytes) -> None:
    with pytest.raises(UndecodableImage):  # the right signature, but nothing behind it
        load_image(b"\x00\x00\x00\x18ftyp" + brand + b"\x00" * 12, LIMIT)


def test_an_iso_media_file_that_is_not_an_image_is_unsupported() -> None:
    with pytest.raises(UnsupportedMediaType):  # an MP4 video
        load_image(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2mp41" + bytes(64), LIMIT)


def test_the_preview_is_a_small_jpeg() -> None:
    preview = Image.open(io.BytesIO(thumbnail_jpeg(Image.new("RGB", (1000, 500)))))
    assert preview.format == "JPEG" and max(preview.size) == 320


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_a_file_cut_inside_its_header_is_undecodable_not_unsupported(fmt: str) -> None:
    with pytest.raises(UndecodableImage):
        load_image(image_bytes(fmt, size=(50, 50))[:14], LIMIT)
