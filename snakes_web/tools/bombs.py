"""Decode bombs: image files small on disk that decode to a lot of memory, each at or under a pixel budget.

Every file is generated (no downloads), deterministically, from a few gently graded bands, so the encoders
find little entropy: most files are tens or hundreds of kilobytes for ~48 megapixels. Used by the bench and
tests to see what one upload can cost the decoder (``snakes_web.imaging.images.load_image``).
"""
from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

#: Largest side each codec can write.
GIF_MAX_SIDE = 65535
WEBP_MAX_SIDE = 16383
#: Frames in the animated GIF, and the share of ``megapixels`` each frame has (1/48: 1 MP at the default).
GIF_FRAMES = 240
GIF_FRAME_SHARE = 1 / 48
#: x265 at its fastest preset encodes 48 MP in ~5 s on 2 cores; the default preset takes ~15 s.
HEIC_PRESET = "ultrafast"
#: libaom at speed 10 (its fastest) encodes 48 MP in ~3 s.
AVIF_SPEED = 10
#: Bands of the generated content; each is a gentle vertical gradient, every row a single value.
BANDS = 6

_SUFFIXES = {"jpeg": "jpg", "tiff": "tif"}
_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Bomb:
    """One decode bomb: its bytes, and what ``Image.open`` reports about them."""

    name: str  # e.g. "rgba-png"; the last word is the format
    data: bytes
    width: int
    height: int
    mode: str  # the Pillow mode Image.open reports
    note: str  # one line: what makes it costly

    @property
    def suffix(self) -> str:
        """Return the file name extension, without the dot (``png``, ``jpg``, ``tif`` …)."""
        kind = self.name.rsplit("-", 1)[-1]
        return _SUFFIXES.get(kind, kind)

    @property
    def pixels(self) -> int:
        """Return width × height."""
        return self.width * self.height


def bombs(megapixels: float = 48.0) -> list[Bomb]:
    """Return every kind of bomb, each at about ``megapixels`` unless its codec cannot go that far."""
    pixels = max(1, int(megapixels * 1_000_000))
    return [make(pixels) for make in _MAKERS]


def write_bombs(folder: Path, megapixels: float = 48.0) -> list[Path]:
    """Write every bomb to ``folder/<name>.<suffix>``; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for bomb in bombs(megapixels):
        path = folder / f"{bomb.name}.{bomb.suffix}"
        path.write_bytes(bomb.data)
        paths.append(path)
    return paths


# --- sizes and content ---------------------------------------------------------------------------------------


def four_by_three(pixels: int) -> tuple[int, int]:
    """Return a 4:3 size of at most ``pixels``, both sides multiples of 16 where there is room."""
    width = int(math.sqrt(pixels * 4 / 3))
    if width >= 32:
        width -= width % 16
    height = max(1, pixels // max(1, width))
    if height >= 32:
        height -= height % 16
    return max(1, width), height


def longest_side(pixels: int, max_side: int) -> tuple[int, int]:
    """Return a size of at most ``pixels`` whose width is as long as the codec allows."""
    width = max(1, min(max_side, pixels))
    return width, max(1, pixels // width)


def band_levels(height: int) -> np.ndarray:
    """Return one 0..239 level per row: ``BANDS`` bands, each a ramp of 40 levels."""
    rows = np.arange(height, dtype=np.int64)
    band_height = max(1, -(-height // BANDS))
    return ((rows // band_height) * 40 + (rows % band_height) * 40 // band_height).astype(np.int64)


def plane(width: int, height: int, levels: np.ndarray, mode: str = "L") -> Image.Image:
    """Return a ``width``×``height`` single-band image whose row y has the value ``levels[y]`` everywhere."""
    dtype = np.uint16 if mode == "I;16" else np.uint8
    column = Image.fromarray(np.ascontiguousarray(levels.astype(dtype).reshape(height, 1)))
    return column.resize((width, height), Image.Resampling.NEAREST)


def banded(mode: str, width: int, height: int) -> Image.Image:
    """Return a low-entropy image in ``mode`` (L, RGB, RGBA or CMYK): graded bands, alpha never opaque."""
    level = band_levels(height)
    channels = {"L": [level], "RGB": [level, 255 - level, level // 2],
                "RGBA": [level, 255 - level, level // 2, 128 + level // 2],
                "CMYK": [level, 239 - level, level // 2, 60 + level // 4]}[mode]
    planes = [plane(width, height, values) for values in channels]
    return planes[0] if mode == "L" else Image.merge(mode, planes)


def palette(levels: int = 256) -> list[int]:
    """Return a flat RGB palette of ``levels`` entries, a colour ramp."""
    return [value for index in range(levels) for value in (index, 255 - index, (index * 7) % 256)]


def indexed(size: tuple[int, int], levels: np.ndarray) -> Image.Image:
    """Return a palette (P) image whose row y has the index ``levels[y]``, with the ``palette()`` ramp."""
    image = Image.frombytes("P", size, plane(*size, levels).tobytes())
    image.putpalette(palette())
    return image


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    """Return ``image`` saved in ``fmt`` with the encoder ``params``."""
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def opened(name: str, data: bytes, note: str, size: tuple[int, int]) -> Bomb:
    """Build the ``Bomb``, with the size and mode its header reports; fail if the size is not ``size``."""
    if name.endswith("-heic"):
        import pillow_heif

        heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
        reported, mode = tuple(heif.size), str(heif.mode)
    else:
        with Image.open(io.BytesIO(data)) as image:
            reported, mode = image.size, image.mode
    if reported != size:
        raise RuntimeError(f"{name}: wrote {size[0]}x{size[1]}, but it opens as {reported[0]}x{reported[1]}")
    return Bomb(name, data, size[0], size[1], mode, note)


# --- the kinds -----------------------------------------------------------------------------------------------


def rgba_png(pixels: int) -> Bomb:
    """Return a plain RGBA PNG: 4 bytes a pixel, and the decoder's RGB conversion composites it on white."""
    size = four_by_three(pixels)
    data = encode(banded("RGBA", *size), "PNG", compress_level=9)
    return opened("rgba-png", data, "RGBA, 4 B/px; flattening onto white makes RGBA copies", size)


def rgba_exif_png(pixels: int) -> Bomb:
    """Return an RGBA PNG with EXIF orientation 6, so the decoder also rotates a full copy."""
    size = four_by_three(pixels)
    exif = Image.Exif()
    exif[_ORIENTATION] = 6
    data = encode(banded("RGBA", *size), "PNG", compress_level=9, exif=exif.tobytes())
    return opened("rgba-exif6-png", data, "RGBA plus EXIF orientation 6: exif_transpose rotates a full copy", size)


def grey16_png(pixels: int) -> Bomb:
    """Return a 16-bit greyscale PNG (mode I;16): the decoder rescales it through float64."""
    size = four_by_three(pixels)
    width, height = size
    levels = band_levels(height) * 273  # 0..65247, every row one value
    data = encode(plane(width, height, levels, "I;16"), "PNG", compress_level=9)
    return opened("grey16-png", data, "16-bit grey, 2 B/px; to_rgb goes through float64 (8 B/px)", size)


def palette_png(pixels: int) -> Bomb:
    """Return a palette PNG with a transparent entry: the decoder expands it to RGBA to flatten it."""
    size = four_by_three(pixels)
    data = encode(indexed(size, band_levels(size[1])), "PNG", compress_level=9, transparency=0)
    return opened("palette-png", data, "1 B/px on disk, but transparency makes the decoder expand it to RGBA", size)


def progressive_jpeg(pixels: int) -> Bomb:
    """Return a progressive 4:4:4 RGB JPEG: libjpeg buffers every DCT coefficient of the whole image."""
    size = four_by_three(pixels)
    data = encode(banded("RGB", *size), "JPEG", quality=75, progressive=True, subsampling=0)
    return opened("progressive-jpeg", data,
                  "progressive 4:4:4: libjpeg keeps the full-size coefficients (6 B/px) even in draft", size)


def cmyk_jpeg(pixels: int) -> Bomb:
    """Return a baseline CMYK JPEG: four components, converted to RGB by the decoder."""
    size = four_by_three(pixels)
    data = encode(banded("CMYK", *size), "JPEG", quality=75, optimize=True)
    return opened("cmyk-jpeg", data, "CMYK, 4 B/px, baseline (so draft can scale it), converted to RGB", size)


def huge_gif(pixels: int) -> Bomb:
    """Return a one-frame GIF as wide as GIF allows (65535), the rest of the pixels in its height."""
    size = longest_side(pixels, GIF_MAX_SIDE)
    data = encode(indexed(size, band_levels(size[1])), "GIF", optimize=False)
    return opened("huge-gif", data, f"one {size[0]}-px-wide frame, P: expanded to RGB; extreme aspect", size)


def animated_gif(pixels: int) -> Bomb:
    """Return a GIF of ``GIF_FRAMES`` full-canvas frames, each ``GIF_FRAME_SHARE`` of the pixels."""
    size = four_by_three(max(1, int(pixels * GIF_FRAME_SHARE)))
    width, height = size
    first = indexed(size, band_levels(height))
    # Each later frame is one flat colour, a new one each time: every frame covers the whole canvas, LZW ~2 KB/MP.
    frames = [indexed(size, np.full(height, (index * 37) % 240 + 1)) for index in range(1, GIF_FRAMES)]
    data = encode(first, "GIF", save_all=True, append_images=frames, duration=40, loop=0, optimize=False)
    return opened("animated-gif", data,
                  f"{GIF_FRAMES} frames of {width}x{height}: {GIF_FRAMES}x the pixels of one frame in the file", size)


def wide_webp(pixels: int) -> Bomb:
    """Return a lossless RGBA WebP as wide as WebP allows (16383)."""
    size = longest_side(pixels, WEBP_MAX_SIDE)
    data = encode(banded("RGBA", *size), "WEBP", lossless=True, method=1, quality=0)
    return opened("wide-webp", data,
                  "lossless RGBA, 16383 px wide (WebP's side limit); libwebp decodes into RGBA canvases of its own",
                  size)


def grey16_tiff(pixels: int) -> Bomb:
    """Return a 16-bit greyscale TIFF (I;16), deflate-compressed in one strip."""
    size = four_by_three(pixels)
    width, height = size
    image = plane(width, height, band_levels(height) * 273, "I;16")
    data = encode(image, "TIFF", compression="tiff_adobe_deflate", strip_size=2 * width * height)
    return opened("grey16-tiff", data, "16-bit grey in one deflate strip: libtiff allocates the whole strip", size)


def rgb16_tiff(pixels: int) -> Bomb:
    """Return a 48-bit RGB TIFF (3 × 16 bits) in one deflate strip, written by hand (Pillow cannot)."""
    size = four_by_three(pixels)
    width, height = size
    data = _rgb16_tiff(width, height)
    return opened("rgb16-tiff", data, "RGB 16-bit in one deflate strip: a 6 B/px strip buffer, then RGB", size)


def _rgb16_tiff(width: int, height: int) -> bytes:
    """Return the bytes of a little-endian, one-strip, Adobe-deflate TIFF of 16-bit RGB graded bands."""
    levels = band_levels(height) * 273
    compressor = zlib.compressobj(6)
    chunks = []
    for value in levels.tolist():
        pixel = np.array([value, 65535 - value, value // 2], dtype="<u2")
        chunks.append(compressor.compress(np.tile(pixel, width).tobytes()))
    chunks.append(compressor.flush())
    strip = b"".join(chunks)
    bits_at = 8
    strip_at = 16
    ifd_at = strip_at + len(strip) + (len(strip) % 2)
    short, long = 3, 4
    entries = [(256, long, 1, width), (257, long, 1, height), (258, short, 3, bits_at), (259, short, 1, 8),
               (262, short, 1, 2), (273, long, 1, strip_at), (277, short, 1, 3), (278, long, 1, height),
               (279, long, 1, len(strip)), (284, short, 1, 1)]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        if kind == short and count == 1:
            ifd += struct.pack("<HHIHH", tag, kind, count, value, 0)
        else:
            ifd += struct.pack("<HHII", tag, kind, count, value)
    ifd += struct.pack("<I", 0)
    header = b"II*\x00" + struct.pack("<I", ifd_at) + struct.pack("<HHH", 16, 16, 16) + b"\x00\x00"
    return header + strip + b"\x00" * (len(strip) % 2) + ifd


def avif(pixels: int) -> Bomb:
    """Return an RGB AVIF through Pillow's AVIF plugin (libaom at its fastest speed)."""
    size = four_by_three(pixels)
    data = encode(banded("RGB", *size), "AVIF", quality=50, speed=AVIF_SPEED)
    return opened("rgb-avif", data, "AV1 4:2:0 decoded by dav1d to YUV, then libavif converts to RGB", size)


def heic(pixels: int) -> Bomb:
    """Return an RGB HEIC through pillow_heif (x265 at its fastest preset)."""
    import pillow_heif

    size = four_by_three(pixels)
    out = io.BytesIO()
    heif = pillow_heif.from_pillow(banded("RGB", *size))
    heif.save(out, quality=50, enc_params={"preset": HEIC_PRESET})
    return opened("rgb-heic", out.getvalue(), "HEVC 4:2:0 decoded by libde265 to YUV, then libheif converts to RGB",
                  size)


_MAKERS: tuple[Callable[[int], Bomb], ...] = (
    rgba_png, rgba_exif_png, grey16_png, palette_png, progressive_jpeg, cmyk_jpeg, huge_gif, animated_gif,
    wide_webp, grey16_tiff, rgb16_tiff, avif, heic)
