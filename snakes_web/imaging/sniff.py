"""Name what a file that is not an image we read actually is, so the error can say so in words.

Only used to explain a refusal: decoding is images.py's job, by signature, never by name.
"""
from __future__ import annotations

import codecs

from snakes_web.exceptions import UnsupportedMediaType

from .images import ACCEPTED_WORDS

#: (signature at offset 0, what it is in words, its media type)
_SIGNATURES: tuple[tuple[bytes, str, str], ...] = (
    (b"%PDF-", "a PDF", "application/pdf"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)", "application/zip"),
    (b"\x1f\x8b", "a gzip archive", "application/gzip"),
    (b"Rar!\x1a\x07", "a RAR archive", "application/vnd.rar"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "application/x-7z-compressed"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office document", "application/x-ole-storage"),
    (b"%!PS", "a PostScript file", "application/postscript"),
    (b"8BPS", "a Photoshop file", "image/vnd.adobe.photoshop"),
    (b"ID3", "an MP3 audio file", "audio/mpeg"),
    (b"OggS", "an Ogg audio or video file", "application/ogg"),
    (b"fLaC", "a FLAC audio file", "audio/flac"),
    (b"\x1aE\xdf\xa3", "a WebM or Matroska video", "video/webm"),
    (b"\x7fELF", "a program, not a picture", "application/x-executable"),
    (b"MZ", "a Windows program, not a picture", "application/x-msdownload"),
)
_ISO_BRANDS = {  # the brand after "ftyp" at offset 4 of ISO media files
    b"heic": ("an HEIC photo", "image/heic"), b"heix": ("an HEIC photo", "image/heic"),
    b"hevc": ("an HEIC photo", "image/heic"), b"mif1": ("an HEIF photo", "image/heif"),
    b"msf1": ("an HEIF photo", "image/heif"), b"jxl ": ("a JPEG XL image", "image/jxl"),
    b"qt  ": ("a QuickTime video", "video/quicktime"),
}


def sniff(data: bytes) -> tuple[str, str] | None:
    """Return (words, media type) for a kind of file we recognise but do not read, else None."""
    head = data[:512]
    for signature, words, media_type in _SIGNATURES:
        if head.startswith(signature):
            return words, media_type
    if head[4:8] == b"ftyp":
        return _ISO_BRANDS.get(head[8:12], ("a video", "video/mp4"))
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL "):
        return "a JPEG XL image", "image/jxl"
    if head[:4] == b"RIFF" and head[8:12] in {b"WAVE", b"AVI "}:
        return ("a WAV audio file", "audio/wav") if head[8:12] == b"WAVE" else ("an AVI video", "video/x-msvideo")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<svg", b"<?xml")) and b"<svg" in head.lower():
        return "an SVG drawing", "image/svg+xml"
    if text.startswith((b"<!doctype html", b"<html")):
        return "a web page (HTML)", "text/html"
    if text[:1] in {b"{", b"["}:
        return "a JSON document", "application/json"
    if head and _printable(head):
        return "a text file", "text/plain"
    return None


def explain(error: UnsupportedMediaType, data: bytes) -> UnsupportedMediaType:
    """Say what a refused file is when we recognise it ("That file is a PDF, not an image. Try a ...")."""
    kind = sniff(data)
    if kind is None:
        return error
    words, media_type = kind
    what = "which we cannot read" if media_type.startswith("image/") else "not an image"
    return UnsupportedMediaType(f"That file is {words}, {what}. Try a {ACCEPTED_WORDS} photo.", detected=media_type)


def _printable(head: bytes) -> bool:
    """Tell whether ``head`` reads as UTF-8 text."""
    try:  # incremental: a character cut at the end of ``head`` is not an error
        decoded = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t\r\n" for ch in decoded)
