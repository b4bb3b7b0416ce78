"""Request in, decoded image out: the one reader both blueprints use for an upload or a URL."""
from __future__ import annotations

import io
from collections.abc import Mapping
from typing import IO, Any

from flask import Request
from PIL import Image
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from snakes_web.exceptions import BadRequest, UnsupportedMediaType
from snakes_web.imaging.fetch import FetchLimits, fetch_image
from snakes_web.imaging.images import load_image
from snakes_web.imaging.sniff import explain

from .bodies import request_hold
from .errors import upload_too_large

#: The form types a photo may come in (a JSON body is read apart).
FORMS = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})
BOTH_GIVEN = "Send either a file or a URL, not both."
NEITHER_GIVEN = "Send an image file (field `file`) or an image URL (field `url`)."


class InMemoryRequest(Request):
    """A request whose uploads stay in memory: uploaded images are never written to disk.

    Werkzeug spools uploads over 500 KB to a temporary file; the body limit
    (``MAX_CONTENT_LENGTH``) bounds what memory holds instead.
    """

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> IO[bytes]:
        return io.BytesIO()


def read_image_data(request: Request, settings: Mapping[str, Any], *, allow_json: bool) -> bytes:
    """Return the bytes of the request's image, uploaded as ``file`` or fetched from ``url``.

    This is the waiting part of a request (the body arriving, the remote server answering): it
    runs outside the inference gate.
    """
    upload, url = _file_and_url(request, allow_json)
    if upload is not None and url:
        raise BadRequest(BOTH_GIVEN)
    if upload is not None:
        return upload_bytes(upload)
    if url:
        return fetch_image(url, fetch_limits(settings), take=request_hold().take)
    raise BadRequest(NEITHER_GIVEN)


def upload_bytes(upload: FileStorage) -> bytes:
    """Return a file part's bytes; from our in-memory part, the buffer itself (no second copy of the upload)."""
    stream = upload.stream
    if isinstance(stream, io.BytesIO):
        return stream.getvalue()
    data: bytes = upload.read()  # Werkzeug types a part's stream loosely
    return data


def fetch_limits(settings: Mapping[str, Any]) -> FetchLimits:
    """Return the limits every image URL is fetched under."""
    return FetchLimits(max_bytes=settings["FETCH_MAX_BYTES"], timeout=settings["FETCH_TIMEOUT"],
                       allow_private=settings["ALLOW_PRIVATE_URLS"])


def picked(upload: FileStorage) -> bool:
    """Tell whether a ``file`` part holds a file: a browser sends an empty, nameless part when none was picked."""
    if not upload.filename and not upload.stream.read(1):
        return False
    upload.stream.seek(0)
    return True


def decode_image(data: bytes, settings: Mapping[str, Any], min_side: int | None = None) -> Image.Image:
    """Decode image bytes to RGB, or raise the error that says what the file is instead.

    ``min_side`` is the shorter side the model needs: a large image is made small as soon as it is decoded
    (a JPEG while it is), and one that would take more than ``MAX_DECODE_BYTES`` to decode is refused (413).
    """
    try:
        return load_image(data, settings["MAX_IMAGE_PIXELS"], min_side=min_side,
                          max_bytes=settings["MAX_DECODE_BYTES"], draft=settings.get("JPEG_DRAFT", True))
    except UnsupportedMediaType as exc:
        raise explain(exc, data) from None


def _file_and_url(request: Request, allow_json: bool) -> tuple[FileStorage | None, str]:
    """Pick the upload and the URL out of a multipart/urlencoded form or a JSON body."""
    if request.is_json:
        if not allow_json:
            raise UnsupportedMediaType("Post the form as multipart/form-data.")
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            raise BadRequest('The JSON body must be an object with a string "url".')
        return None, body["url"].strip()
    if request.mimetype not in FORMS:
        raise UnsupportedMediaType(
            "Send multipart/form-data with a `file` field, or JSON like {\"url\": \"https://…\"}.")
    try:
        upload = request.files.get("file")
        url = request.form.get("url", "").strip()
    except RequestEntityTooLarge:
        raise upload_too_large() from None
    return (upload if upload is not None and picked(upload) else None), url
