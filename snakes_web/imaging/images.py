"""Bytes in, a clean RGB image out, or a typed error: the only place uploads are decoded."""
from __future__ import annotations

import contextlib
import functools
import io
import math
import struct
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageCms, UnidentifiedImageError

from snakes_web.config import default
from snakes_web.exceptions import BadRequest, PayloadTooLarge, UndecodableImage, UnsupportedMediaType

#: Pillow format names we decode; the format is read from the bytes, never from a name or header.
#: JPEG covers MPO; AVIF comes before HEIF so a `mif1` file goes to the AVIF decoder first.
ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF", "HEIF")
ACCEPTED_WORDS = "JPEG, PNG, GIF, WebP, BMP, TIFF, HEIC/HEIF or AVIF"

_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
#: ISO-BMFF brands (bytes 8..12, after `ftyp`) of the HEIF and AVIF files we read.
_BMFF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs",
                          b"mif1", b"msf1", b"avif", b"avis"})

#: Bytes one decode may allocate unless told otherwise: the setting's default.
MAX_DECODE_BYTES: int = default("MAX_DECODE_BYTES")
#: A reduced image keeps its shorter side at least this many times the model's (Pillow's ``reducing_gap``).
REDUCING_GAP = 2
#: Most pixels the reduced image may keep (a long, thin image is reduced by its area instead).
WORKING_PIXELS = 8_000_000
#: Pixels converted and reduced at a time: the full-size copies a conversion makes are this big at most.
STRIP_PIXELS = 1 << 18
#: Bytes a pixel the codec itself holds while decoding, besides the image Pillow keeps, measured on the
#: 48 MP files of ``tools/bombs.py``: libwebp's decoder keeps RGBA canvases of its own and hands Pillow a
#: copy (~12); libavif and libheif decode to YUV planes, then convert to RGB (~5 and ~3.3).
CODEC_BYTES_PER_PIXEL: dict[str, int] = {"WEBP": 12, "AVIF": 5, "HEIF": 4}

# Errors Pillow and its plugins raise on a broken header or body (pillow-heif: RuntimeError).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error,
                  RuntimeError, KeyError, ZeroDivisionError)


def load_image(data: bytes, max_pixels: int, min_side: int | None = None,
               max_bytes: int = MAX_DECODE_BYTES, draft: bool = True) -> Image.Image:
    """Decode ``data`` into an upright RGB image, first frame only, or raise a ``SnakesError``.

    With ``min_side``, the image is made small as early as its format allows: a JPEG is decoded at 1/2,
    1/4 or 1/8 scale, never below ``min_side`` pixels; then any image is box-reduced by the whole factor
    ``reduce_factor`` gives, a strip at a time, before its orientation, mode and transparency are dealt
    with on the small image (``draft=False``: no JPEG draft, the reduction only). ``max_bytes`` bounds
    what the decode may allocate (``decode_cost``): more is refused with 413 before a pixel is decoded.
    """
    if not data:
        raise BadRequest("The file is empty.")
    with _pillow_warnings():
        image = _open(data, max_pixels)
        try:
            full_size = image.size
            if draft:
                _draft(image, min_side)
            _check_cost(image, full_size, max_bytes)
            image.seek(0)
            image.load()
            orientation = _orientation(image)
            small = reduced_rgb(image, reduce_factor(image.size, min_side))
            if small is not image:
                image.close()  # the full-size pixels go now, not when the caller lets go of the result
            return _oriented(small, orientation)
        except Image.DecompressionBombError:
            raise _too_many_pixels(max_pixels) from None
        except _DECODE_ERRORS:
            raise _undecodable(image.format) from None


def reduce_factor(size: tuple[int, int], min_side: int | None) -> int:
    """Return the whole factor to box-reduce an image of ``size`` by, for a model that needs ``min_side``.

    The shorter side stays at least ``REDUCING_GAP`` × ``min_side`` (Pillow's own ``reducing_gap``: the
    model's resize that follows gives what it would give from the full image), and the result has at most
    ``WORKING_PIXELS`` pixels (a very long, thin image is reduced further). No ``min_side``: no reduction.
    """
    if not min_side or min_side <= 0:
        return 1
    width, height = size
    by_side = min(width, height) // (REDUCING_GAP * min_side)
    by_pixels = math.ceil(math.sqrt(width * height / WORKING_PIXELS))
    return max(1, by_side, by_pixels)


def reduced_rgb(image: Image.Image, factor: int) -> Image.Image:
    """Convert ``image`` to RGB and box-reduce it by ``factor``, a strip at a time (never a full-size copy)."""
    convert = rgb_converter(image)
    if factor <= 1:
        return convert(image)
    width, height = image.size
    out = Image.new("RGB", (-(-width // factor), -(-height // factor)))
    rows = factor * max(1, STRIP_PIXELS // (width * factor))  # whole output rows in every strip
    for top in range(0, height, rows):
        strip = convert(image.crop((0, top, width, min(top + rows, height))))
        out.paste(strip.reduce(factor), (0, top // factor))
    return out


def _orientation(image: Image.Image) -> int:
    """Return the image's EXIF orientation (1 when it has none, or its EXIF block is broken)."""
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation, 1))
    except (*_DECODE_ERRORS, AttributeError):
        return 1


#: What ``ImageOps.exif_transpose`` does for each EXIF orientation; done here on the reduced image.
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def _oriented(image: Image.Image, orientation: int) -> Image.Image:
    """Turn ``image`` upright for its EXIF ``orientation``."""
    method = _TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def decode_cost(image: Image.Image, full_size: tuple[int, int] | None = None) -> int:
    """Return the bytes decoding ``image`` (opened, not loaded) allocates at most: its pixels and the codec's.

    Pixels: width × height × the bytes Pillow stores a pixel of the mode in (RGB takes 4, like RGBA).
    The codec's own: a progressive JPEG keeps every DCT coefficient of the full-size image (2 bytes each,
    per component, whatever the draft scale); the other codecs decode into a buffer of their own first,
    ``CODEC_BYTES_PER_PIXEL`` bytes a pixel, before Pillow copies it. ``full_size``: the size before a draft.
    """
    width, height = image.size
    cost = width * height * _stored_bytes(image.mode)
    if image.format == "JPEG" and image.info.get("progressive"):
        cost += _coefficient_bytes(full_size or image.size, getattr(image, "layer", []))
    elif image.format == "TIFF":
        cost += _tiff_buffer_bytes(image)
    cost += width * height * CODEC_BYTES_PER_PIXEL.get(str(image.format), 0)
    return cost


def _tiff_buffer_bytes(image: Image.Image) -> int:
    """Return libtiff's buffer for one decoded strip or tile of ``image`` (a file may make it the whole image)."""
    tags = getattr(image, "tag_v2", {})
    width, height = image.size
    try:
        pixel = sum(int(bits) for bits in tags.get(258, (8,))) / 8  # BitsPerSample, every sample
        if 322 in tags and 323 in tags:  # TileWidth, TileLength
            return int(int(tags[322]) * int(tags[323]) * pixel)
        return int(width * min(int(tags.get(278, height)), height) * pixel)  # RowsPerStrip
    except (TypeError, ValueError):
        return width * height * 8  # tags we cannot read: assume the worst a strip of 16-bit RGBA can be


def _stored_bytes(mode: str) -> int:
    """Return the bytes Pillow keeps for one pixel of ``mode``."""
    if mode in {"1", "L", "P"}:
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def _coefficient_bytes(size: tuple[int, int], layers: list[tuple[str, int, int, int]]) -> int:
    """Return what libjpeg holds for a progressive JPEG: 64 coefficients of 2 bytes a block, each component."""
    width, height = size
    sampling = [(h, v) for _, h, v, _ in layers] or [(1, 1)] * 3
    h_max, v_max = max(h for h, _ in sampling), max(v for _, v in sampling)
    blocks = sum(math.ceil(math.ceil(width * h / h_max) / 8) * math.ceil(math.ceil(height * v / v_max) / 8)
                 for h, v in sampling)
    return blocks * 64 * 2


def _check_cost(image: Image.Image, full_size: tuple[int, int], max_bytes: int) -> None:
    """Refuse, with 413, an image whose decode would allocate more than ``max_bytes``."""
    cost = decode_cost(image, full_size)
    if max_bytes > 0 and cost > max_bytes:
        raise PayloadTooLarge(
            f"The image would take {cost / 2**20:.0f} MB of memory to decode; the limit is "
            f"{max_bytes / 2**20:.0f} MB. Send a smaller image (fewer pixels), or a JPEG.")


@functools.cache
def _register_plugins() -> None:
    """Register every Pillow plugin, and HEIC/HEIF through pillow-heif, once per process."""
    from pillow_heif import register_heif_opener

    Image.init()
    register_heif_opener(thumbnails=False, depth_images=False)  # only the primary image


def _draft(image: Image.Image, min_side: int | None) -> None:
    """Have a JPEG decode at the smallest DCT scale whose shorter side is still >= ``min_side``.

    A 12-megapixel photo for a 256-pixel model decodes at 1/8 scale, ~3.5× faster (the entropy
    decoding of every byte remains). Pillow picks the largest of 1/8, 1/4, 1/2 that keeps both sides
    >= the requested size; other formats ignore the request.
    """
    if min_side and min_side > 0:
        image.draft(None, (min_side, min_side))


@contextlib.contextmanager
def _pillow_warnings() -> Iterator[None]:
    """Make Pillow's bomb warning an error; silence its other warnings (corrupt EXIF and such)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Read only the header: identify the format and check the pixel count before decoding."""
    _register_plugins()  # so `formats=` knows every name
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        if looks_like_accepted_image(data):
            raise _undecodable(None) from None  # the magic bytes are right; the header is broken
        raise UnsupportedMediaType(
            f"That file is not an image we can read. Send a {ACCEPTED_WORDS} image.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels(max_pixels) from None
    except _DECODE_ERRORS:
        raise _undecodable(None) from None
    if image.width * image.height > max_pixels:
        raise _too_many_pixels(max_pixels)
    return image


def looks_like_accepted_image(data: bytes) -> bool:
    """Tell whether ``data`` starts with the signature of a format we accept."""
    return data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP") \
        or (data[4:8] == b"ftyp" and data[8:12] in _BMFF_BRANDS)


def _undecodable(kind: str | None) -> UndecodableImage:
    """Build the error for a file whose format we know but whose data is broken."""
    return UndecodableImage(f"The {kind or 'image'} file could not be decoded: it looks truncated or corrupt.")


def _too_many_pixels(max_pixels: int) -> PayloadTooLarge:
    """Build the error for an image with too many pixels."""
    return PayloadTooLarge(
        f"The image has too many pixels; the limit is {max_pixels / 1e6:g} megapixels.")


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB: transparency flattened onto white, deep modes rescaled."""
    return rgb_converter(image)(image)


def rgb_converter(image: Image.Image) -> Callable[[Image.Image], Image.Image]:
    """Return what converts ``image``, or any strip cropped from it, to RGB as a whole conversion would.

    Whatever depends on the whole image is read once here: the brightness range of a deep image, the
    colour transform of a CMYK image's ICC profile.
    """
    if image.mode == "RGB":
        return lambda part: part
    if image.mode in _DEEP_MODES:
        levels = _levels(image)
        return lambda part: Image.fromarray(_to_uint8(np.asarray(part), levels)).convert("RGB")
    if image.mode == "CMYK" and image.info.get("icc_profile"):
        transform = _cmyk_transform(image)
        if transform is not None:
            return lambda part: _cmyk_through(part, transform)
    return _flattened_rgb


_DEEP_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


def _flattened_rgb(image: Image.Image) -> Image.Image:
    """Convert an 8-bit mode to RGB, transparency flattened onto white."""
    if image.mode == "La":  # premultiplied grey + alpha: Pillow converts it only by way of RGBa
        grey, alpha = image.split()
        image = Image.merge("RGBa", (grey, grey, grey, alpha))
    has_alpha = image.mode in {"RGBA", "LA", "PA", "RGBa"} or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _cmyk_transform(image: Image.Image) -> ImageCms.ImageCmsTransform | None:
    """Build the CMYK → sRGB transform of the image's embedded ICC profile (print profiles differ a lot)."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
        return ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), "CMYK", "RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None  # a broken profile: Pillow's plain conversion instead


def _cmyk_through(image: Image.Image, transform: ImageCms.ImageCmsTransform) -> Image.Image:
    """Convert CMYK to sRGB through ``transform``; a part it cannot take gets Pillow's plain conversion."""
    try:
        converted = ImageCms.applyTransform(image, transform)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        converted = None
    return converted if converted is not None else image.convert("RGB")


@dataclass(frozen=True)
class _Levels:
    """How a deep image's values map to 0..255: ``(value - offset) * scale``; ``flat``: all black."""

    offset: float
    scale: float
    flat: bool = False


def _levels(image: Image.Image) -> _Levels:
    """Read the whole deep image's range, a strip at a time, and choose how its values become 0..255."""
    kind = np.asarray(image.crop((0, 0, 1, 1))).dtype
    if kind.kind == "u" and kind.itemsize == 2:
        return _Levels(0.0, 1 / 257.0)
    low, high, finite = np.inf, -np.inf, True
    width, height = image.size
    rows = max(1, STRIP_PIXELS // max(width, 1))
    for top in range(0, height, rows):
        values = np.asarray(image.crop((0, top, width, min(top + rows, height)))).astype(np.float64)
        finite = finite and bool(np.isfinite(values).all())
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        low, high = min(low, float(values.min())), max(high, float(values.max()))
    if kind.kind == "i" and low >= 0 and high <= 65535:  # "I" is how most 16-bit files arrive
        return _Levels(0.0, 1.0 if high <= 255 else 1 / 257.0)
    if kind.kind == "f" and finite and low >= 0 and high <= 1:  # float images in 0..1
        return _Levels(0.0, 255.0)
    if high <= low:
        return _Levels(0.0, 0.0, flat=True)
    return _Levels(low, 255.0 / (high - low))


def _to_uint8(pixels: np.ndarray, levels: _Levels) -> np.ndarray:
    """Scale 16-bit, 32-bit or float greyscale pixels to 0..255 by ``levels``."""
    if levels.flat or pixels.size == 0:
        return np.zeros(pixels.shape, dtype=np.uint8)
    values = np.nan_to_num(pixels.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return ((values - levels.offset) * levels.scale).round().astype(np.uint8)


def thumbnail_jpeg(image: Image.Image, size: int = 320, quality: int = 80) -> bytes:
    """Return a small JPEG of ``image`` for the result page's preview."""
    small = image.convert("RGB") if image.mode != "RGB" else image.copy()
    small.thumbnail((size, size))
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=quality)
    return out.getvalue()
