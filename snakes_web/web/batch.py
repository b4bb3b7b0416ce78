"""Many photos in one request: several ``file`` parts (or several ``url`` fields), one result each, in order.

Each input is read, decoded and predicted on its own, under the same limits as a single one; an input
that fails becomes its own problem and the others still get their answers. The whole request stays under
``MAX_UPLOAD_BYTES`` (the body limit), and carries at most ``MAX_FILES`` inputs.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, Request
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from snakes_web.exceptions import BadRequest, PayloadTooLarge, SnakesError
from snakes_web.imaging.fetch import fetch_image
from snakes_web.serving.gate import gate_of

from .classify import Classified, classify_data
from .errors import upload_too_large
from .inputs import BOTH_GIVEN, FORMS, fetch_limits, picked
from .results import ExplainRequest


def is_batch(request: Request) -> bool:
    """Tell whether a form request carries more than one photo (file parts or URL fields)."""
    if request.mimetype not in FORMS:
        return False
    try:
        return len(_files(request)) > 1 or len(_urls(request)) > 1
    except RequestEntityTooLarge:
        raise upload_too_large() from None  # Werkzeug parses a form once: a later read would find it empty


def classify_batch(app: Flask, request: Request, *, preview: bool = False,
                   explain: ExplainRequest | None = None) -> list[Classified | SnakesError]:
    """Classify every photo of a batch request; a failed one is its error, in its place."""
    gate_of(app).check_room()
    inputs = read_batch(request, app.config)
    results: list[Classified | SnakesError] = []
    for item in inputs:
        if isinstance(item, SnakesError):
            results.append(item)
            continue
        try:
            results.append(classify_data(app, item, preview=preview, explain=explain))
        except SnakesError as error:
            results.append(error)
    return results


def read_batch(request: Request, settings: Mapping[str, Any]) -> list[bytes | SnakesError]:
    """Return each input's bytes (or the error reading it), in the order sent; refuse too many at once."""
    try:
        files, urls = _files(request), _urls(request)
    except RequestEntityTooLarge:
        raise upload_too_large() from None
    if files and urls:
        raise BadRequest(BOTH_GIVEN)
    limit = int(settings["MAX_FILES"])
    if len(files) + len(urls) > limit:
        raise PayloadTooLarge(f"Send at most {limit} photos in one request (this one has {len(files) + len(urls)}).")
    if files:
        return [_read_file(upload, settings) for upload in files]
    return [_fetch(url, settings) for url in urls]


def _files(request: Request) -> list[FileStorage]:
    """Return the request's ``file`` parts, without the empty nameless part a browser sends for none."""
    return [upload for upload in request.files.getlist("file") if picked(upload)]


def _urls(request: Request) -> list[str]:
    """Return the request's non-empty ``url`` fields."""
    return [url.strip() for url in request.form.getlist("url") if url.strip()]


def _read_file(upload: FileStorage, settings: Mapping[str, Any]) -> bytes | SnakesError:
    """Read one part, or the error saying it is over the per-file limit."""
    data: bytes = upload.read(settings["MAX_UPLOAD_BYTES"] + 1)  # Werkzeug types a part's stream loosely
    if len(data) > settings["MAX_UPLOAD_BYTES"]:
        return PayloadTooLarge(f"The file is too large; the limit is {settings['MAX_UPLOAD_BYTES'] / 2**20:g} MB.")
    return data


def _fetch(url: str, settings: Mapping[str, Any]) -> bytes | SnakesError:
    """Download one URL's image, or return the error that stopped it."""
    try:
        return fetch_image(url, fetch_limits(settings))
    except SnakesError as error:
        return error
