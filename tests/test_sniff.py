"""A file we refuse is named in words when we recognise it: "That file is a PDF, not an image."."""
from __future__ import annotations

from typing import Any

import pytest

from snakes_web.imaging.sniff import sniff


@pytest.mark.parametrize("data, words, media_type", [
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF", "application/pdf"),
    (b"PK\x03\x04\x14\x00\x06\x00", "a ZIP archive (or an Office document)", "application/zip"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "an HEIC photo", "image/heic"),
    (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", "a video", "video/mp4"),
    (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "an SVG drawing", "image/svg+xml"),
    (b"<!DOCTYPE html><html><body>hi</body></html>", "a web page (HTML)", "text/html"),
    (b"just some notes\nabout snakes\n", "a text file", "text/plain"),
])
def test_known_kinds_are_named(data: bytes, words: str, media_type: str) -> None:
    assert sniff(data) == (words, media_type)


def test_text_cut_inside_a_character_is_still_text() -> None:
    assert sniff(("é" * 300).encode("utf-8")[:511]) == ("a text file", "text/plain")


@pytest.mark.parametrize("data", [b"", b"\x00\x01\x02\xfe\xff" * 10])
def test_unknown_bytes_are_not_named(data: bytes) -> None:
    assert sniff(data) is None


def test_the_api_says_what_a_pdf_is_and_names_its_type(upload: Any) -> None:
    response = upload(b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", name="scan.jpg", content_type="image/jpeg")
    body = response.get_json()
    assert response.status_code == 415 and body["detected"] == "application/pdf"
    assert body["detail"].startswith("That file is a PDF, not an image.") and "JPEG" in body["detail"]


def test_an_unrecognised_non_image_has_no_detected_field(upload: Any) -> None:
    response = upload(b"\x00\x01\x02\xfe\xff" * 10)
    assert response.status_code == 415 and "detected" not in response.get_json()


def test_the_page_says_what_a_pdf_is(upload: Any) -> None:
    response = upload(b"%PDF-1.4 not an image", path="/", name="scan.pdf", content_type="application/pdf")
    assert response.status_code == 415 and "That file is a PDF, not an image." in response.get_data(as_text=True)
