"""Many photos in one request: several ``file`` parts (or several ``url`` fields), one result each, in order.

Each input is read, decoded and predicted on its own, under the same limits as a single one; an input
that fails becomes its own problem and the others still get their answers. The whole request stays under
``MAX_UPLOAD_BYTES`` (the body limit), and carries at most ``MAX_FILES`` inputs.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Request
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from snakes_web.exceptions import BadRequest, PayloadTooLarge, SnakesError, UpstreamTimeout
from snakes_web.imaging.fetch import FetchLimits, fetch_image
from snakes_web.serving.budget import budget_of
from snakes_web.serving.gate import gate_of

from .classify import Classified, classify_data
from .errors import upload_too_large
from .inputs import BOTH_GIVEN, FORMS, fetch_limits, picked, upload_bytes
from .results import ExplainRequest


def is_batch(request: Request) -> bool:
    """Tell whether a form request carries more than one photo (file parts or URL fields)."""
    if request.mimetype not in FORMS:
        return False
    try:
        return len(_files(request)) > 1 or len(_urls(request)) > 1
    except RequestEntityTooLarge:
        raise upload_too_large() from None  # Werkzeug parses a form once: a later read would find it empty


def classify_batch(app: Flask, request: Request, *, preview: bool = False, explain: ExplainRequest | None = None,
                   receipt: bool = False) -> list[Classified | SnakesError]:
    """Classify every photo of a batch request; a failed one is its error, in its place.

    File parts are in the body already. URLs are fetched, decoded, classified and dropped one at a
    time, each download taken from the input budget while it lives; together they may bring at most
    ``MAX_UPLOAD_BYTES`` (what a batch of files may carry) within one fetch's deadline.
    """
    gate_of(app).check_room()
    results: list[Classified | SnakesError] = []
    for item in read_batch(request, app.config):
        if isinstance(item, SnakesError):
            results.append(item)
            continue
        try:
            if isinstance(item, bytes):
                results.append(classify_data(app, item, preview=preview, explain=explain, receipt=receipt))
                continue
            with budget_of(app).hold() as hold:
                data = item.fetch(hold.take)
                results.append(classify_data(app, data, preview=preview, explain=explain, receipt=receipt))
                del data  # dropped before the next download starts
        except SnakesError as error:
            results.append(error)
    return results


def read_batch(request: Request, settings: Mapping[str, Any]) -> list[bytes | Download | SnakesError]:
    """Return each input in the order sent: a file's bytes (or its error), or a URL's download to make.

    Refuses too many inputs at once, and files mixed with URLs.
    """
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
    downloads = Downloads(fetch_limits(settings), int(settings["MAX_UPLOAD_BYTES"]))
    return [Download(url, downloads) for url in urls]


class Downloads:
    """What the URLs of one batch may still bring, and until when."""

    def __init__(self, limits: FetchLimits, max_bytes: int) -> None:
        self.limits = limits
        self.bytes_left = max_bytes
        self.max_bytes = max_bytes
        self.ends = time.monotonic() + limits.deadline

    def fetch(self, url: str, take: Callable[[int], None]) -> bytes:
        """Download ``url`` within what is left of the batch's bytes and time."""
        seconds_left = self.ends - time.monotonic()
        if seconds_left <= 0:
            raise UpstreamTimeout(f"The batch's downloads ran out of their {self.limits.deadline:g} s.")
        if self.bytes_left <= 0:
            raise PayloadTooLarge(self._too_much())
        limits = dataclasses.replace(self.limits, max_bytes=min(self.limits.max_bytes, self.bytes_left),
                                     total=seconds_left)
        try:
            data = fetch_image(url, limits, take=take)
        except PayloadTooLarge:
            if limits.max_bytes < self.limits.max_bytes:
                raise PayloadTooLarge(self._too_much()) from None
            raise
        self.bytes_left -= len(data)
        return data

    def _too_much(self) -> str:
        """Say why a batch's download is refused for the bytes before it."""
        return f"The batch's images together are larger than {self.max_bytes / 2**20:g} MB."


@dataclasses.dataclass(frozen=True)
class Download:
    """One URL of a batch, fetched when its turn comes."""

    url: str
    batch: Downloads

    def fetch(self, take: Callable[[int], None]) -> bytes:
        """Download it now, each piece taken by ``take``."""
        return self.batch.fetch(self.url, take)


def _files(request: Request) -> list[FileStorage]:
    """Return the request's ``file`` parts, without the empty nameless part a browser sends for none."""
    return [upload for upload in request.files.getlist("file") if picked(upload)]


def _urls(request: Request) -> list[str]:
    """Return the request's non-empty ``url`` fields."""
    return [url.strip() for url in request.form.getlist("url") if url.strip()]


def _read_file(upload: FileStorage, settings: Mapping[str, Any]) -> bytes | SnakesError:
    """Read one part, or the error saying it is over the per-file limit."""
    data = upload_bytes(upload)
    if len(data) > settings["MAX_UPLOAD_BYTES"]:
        return PayloadTooLarge(f"The file is too large; the limit is {settings['MAX_UPLOAD_BYTES'] / 2**20:g} MB.")
    return data
