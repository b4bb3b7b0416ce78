"""A corpus of odd files, made in code: every accepted format and mode, and everything that must fail.

Each case says what a server must answer for it (200 or the typed error's status). Used by the
decoder tests, the HTTP tests and the gunicorn worker-survival test.
"""
from __future__ import annotations

import gzip
import io
import os
import random
import struct
import zipfile
import zlib
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from PIL import Image, ImageCms


@dataclass(frozen=True)
class Case:
    """One file of the corpus and the status it must get."""

    name: str
    data: bytes
    status: int
    filename: str = "upload.bin"
    content_type: str = "application/octet-stream"
    size: tuple[int, int] | None = None  # the decoded size, when it must be checked


def encode(image: Image.Image, fmt: str, **save: Any) -> bytes:
    """Return ``image`` encoded as ``fmt``."""
    if fmt == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
    out = io.BytesIO()
    image.save(out, format=fmt, **save)
    return out.getvalue()


def gradient(mode: str, size: tuple[int, int] = (48, 32)) -> Image.Image:
    """Return a small image in ``mode`` with varied pixels (so encoders cannot cheat)."""
    rgb = Image.merge("RGB", [Image.linear_gradient("L").resize(size),
                              Image.linear_gradient("L").rotate(90).resize(size),
                              Image.new("L", size, 90)])
    if mode in {"I;16", "I", "F"}:
        values = np.asarray(rgb.convert("L"), dtype=np.float64)
        scale = {"I;16": 257.0, "I": 257.0, "F": 1 / 255.0}[mode]
        dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
        return Image.fromarray((values * scale).astype(dtype))
    if mode == "LA":
        return Image.merge("LA", (rgb.convert("L"), Image.linear_gradient("L").resize(size)))
    if mode == "RGBA":
        return Image.merge("RGBA", (*rgb.split(), Image.linear_gradient("L").resize(size)))
    if mode == "PA":
        return Image.merge("RGBA", (*rgb.split(), Image.new("L", size, 128))).convert("PA")
    return rgb.convert(mode)


def png_with_header(width: int, height: int, body: bytes, colour_type: int = 2) -> bytes:
    """Build a PNG whose IHDR declares ``width`` × ``height`` and whose IDAT holds ``body``, compressed."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(body, 9))
            + chunk(b"IEND", b""))


def with_dimensions(fmt: str, width: int, height: int) -> bytes:
    """Return a small valid file of ``fmt`` whose header is rewritten to claim width × height."""
    data = bytearray(encode(gradient("RGB"), fmt))
    if fmt == "GIF":  # logical screen and the first image descriptor
        data[6:10] = struct.pack("<HH", width, height)
        at = data.index(b"\x2c", 13)
        data[at + 5:at + 9] = struct.pack("<HH", width, height)
    elif fmt == "BMP":
        data[18:26] = struct.pack("<ii", width, height)
    elif fmt == "JPEG":  # SOF0: FFC0, length, precision, height, width
        at = data.index(b"\xff\xc0")
        data[at + 5:at + 9] = struct.pack(">HH", height, width)
    else:
        raise ValueError(fmt)
    return bytes(data)


def cmyk_with_profile() -> bytes:
    """Return a CMYK JPEG carrying an ICC profile (a print workflow's file)."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    # An sRGB profile does not describe CMYK, so the converter falls back to the plain conversion:
    # the point is that a profile that does not fit never breaks the request.
    return encode(gradient("CMYK"), "JPEG", icc_profile=profile)


def exif_rotated() -> bytes:
    """Return a 60 × 20 JPEG whose EXIF says: rotate 90° to display (so 20 × 60)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(Image.new("RGB", (60, 20), (0, 200, 0)), "JPEG", exif=exif)


def broken_exif() -> bytes:
    """Return a JPEG whose EXIF block is garbage after its header."""
    jpeg = encode(gradient("RGB"), "JPEG")
    app1 = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08" + os.urandom(40)
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def animated(fmt: str) -> bytes:
    """Return a two-frame animation whose first frame is red."""
    frames = [Image.new("RGB", (24, 24), colour) for colour in ((250, 0, 0), (0, 0, 250))]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:])


def multipage_tiff() -> bytes:
    """Return a two-page TIFF."""
    pages = [gradient("RGB"), gradient("L")]
    return encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])


def palette_with_transparency(fmt: str) -> bytes:
    """Return a palette image whose index 0 is transparent."""
    image = gradient("P")
    return encode(image, fmt, transparency=0)


def a_zip() -> bytes:
    """Return a zip that holds a PNG (an archive is not an image)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photo.png", encode(gradient("RGB"), "PNG"))
    return out.getvalue()


@cache
def build_corpus() -> tuple[Case, ...]:
    """Return every case of the corpus (the same bytes every time, for one process)."""
    rng = random.Random(4)
    size = (48, 32)
    ok: list[Case] = []
    for fmt, modes in {
        "JPEG": ["L", "RGB", "CMYK"],
        "PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"],
        "GIF": ["L", "P", "RGB"],
        "WEBP": ["RGB", "RGBA"],
        "BMP": ["1", "L", "P", "RGB"],
        "TIFF": ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "I;16", "I", "F"],
        "AVIF": ["RGB", "RGBA"],
        "HEIF": ["L", "RGB", "RGBA"],
    }.items():
        for mode in modes:
            image = gradient(mode, size)
            save: dict[str, Any] = {}
            if fmt == "TIFF" and mode == "YCbCr":
                image, save = gradient("RGB", size), {"compression": "jpeg"}  # stored as YCbCr
            ok.append(Case(f"{fmt.lower()}-{mode}", encode(image, fmt, **save), 200,
                           f"image.{fmt.lower()}", "image/*", size))
    ok += [
        Case("webp-lossless", encode(gradient("RGBA"), "WEBP", lossless=True), 200, size=size),
        Case("png-P-transparency", palette_with_transparency("PNG"), 200, size=size),
        Case("gif-P-transparency", palette_with_transparency("GIF"), 200, size=size),
        Case("jpeg-progressive", encode(gradient("RGB"), "JPEG", progressive=True), 200, size=size),
        Case("jpeg-cmyk-icc", cmyk_with_profile(), 200, size=size),
        Case("jpeg-exif-rotated", exif_rotated(), 200, size=(20, 60)),
        Case("jpeg-broken-exif", broken_exif(), 200, size=size),
        Case("gif-animated", animated("GIF"), 200, size=(24, 24)),
        Case("webp-animated", animated("WEBP"), 200, size=(24, 24)),
        Case("png-animated", animated("PNG"), 200, size=(24, 24)),
        Case("tiff-multipage", multipage_tiff(), 200, size=size),
        Case("png-named-jpg", encode(gradient("RGB"), "PNG"), 200, "photo.jpg", "image/jpeg", size),
        Case("jpeg-named-pdf", encode(gradient("RGB"), "JPEG"), 200, "scan.pdf", "application/pdf", size),
        Case("png-1x1", encode(Image.new("RGB", (1, 1)), "PNG"), 200, size=(1, 1)),
        Case("png-trailing-junk", encode(gradient("RGB"), "PNG") + os.urandom(500), 200, size=size),
    ]

    bad = [
        Case("zero-bytes", b"", 400),
        Case("random-bytes", rng.randbytes(4096), 415),
        Case("one-byte", b"\xff", 415),
        Case("text", b"just some text, not a picture\n", 415, "snake.jpg", "image/jpeg"),
        Case("svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
                    b'<rect width="10" height="10"/></svg>', 415, "snake.svg", "image/svg+xml"),
        Case("svg-with-xml-prolog", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', 415),
        Case("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<</Type/Catalog>>endobj\ntrailer<<>>\n%%EOF",
             415, "snake.png", "image/png"),
        Case("html", b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>", 415,
             "index.png", "image/png"),
        Case("zip", a_zip(), 415, "photos.zip", "application/zip"),
        Case("gzip-of-png", gzip.compress(encode(gradient("RGB"), "PNG")), 415),
        Case("elf", b"\x7fELF\x02\x01\x01" + bytes(57), 415),
        Case("json", b'{"url": "http://127.0.0.1/"}', 415),
        Case("ico", encode(gradient("RGB"), "ICO"), 415, "favicon.ico", "image/x-icon"),
        Case("ppm", encode(gradient("RGB"), "PPM"), 415, "image.ppm", "image/x-portable-pixmap"),
        Case("tga", encode(gradient("RGB"), "TGA"), 415),
        Case("pcx", encode(gradient("RGB"), "PCX"), 415),
        Case("png-signature-only", b"\x89PNG\r\n\x1a\n", 422),
        Case("gif-signature-only", b"GIF89a", 422),
        Case("jpeg-soi-only", b"\xff\xd8\xff", 422),
        Case("heic-ftyp-only", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", 422),
        Case("avif-ftyp-only", b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", 422),
        Case("webp-riff-only", b"RIFF\x10\x00\x00\x00WEBPVP8 ", 422),
        Case("png-garbage-after-signature", b"\x89PNG\r\n\x1a\n" + rng.randbytes(300), 422),
        Case("png-bad-crc", encode(gradient("RGB"), "PNG")[:29] + b"\0\0\0\0" + encode(gradient("RGB"), "PNG")[33:],
             422),
        # Bombs: far more pixels than the limit (50 MP by default), in a few bytes.
        Case("png-bomb-400MP", png_with_header(20000, 20000, bytes(20000 * 3 + 1) * 50), 413),
        Case("png-60MP-over-the-limit", png_with_header(10000, 6000, bytes(10000 * 3 + 1) * 20), 413),
        Case("png-huge-header-tiny-data", png_with_header(100000, 100000, b""), 413),
        Case("gif-huge-header", with_dimensions("GIF", 65535, 65535), 413),
        Case("bmp-huge-header", with_dimensions("BMP", 60000, 60000), 413),
        Case("jpeg-huge-header", with_dimensions("JPEG", 65000, 65000), 413),
    ]
    for fmt in ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF", "HEIF"]:
        noise = Image.frombytes("RGB", (96, 96), rng.randbytes(96 * 96 * 3))
        whole = encode(noise, fmt)
        bad.append(Case(f"{fmt.lower()}-truncated-half", whole[: len(whole) // 2], 422))
        bad.append(Case(f"{fmt.lower()}-truncated-header", whole[:20], 422))
    return tuple(ok + bad)
