"""Each request's inputs counted against the worker's input budget (``serving.budget``), its body before it is read.

A body with a ``Content-Length`` is reserved whole before its first byte is read. When the budget cannot
hold it, the body is never read: the view's first read of it raises ``MemoryBusy`` (503 ``memory-busy``,
with ``Retry-After``), which the page and the API answer as they answer a full queue, at once. A chunked
body is counted as it arrives. What a request downloads (``inputs``) is taken from the same hold; all of
it is given back when the request ends. A route that never reads its body costs the budget nothing.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from flask import Flask, current_app, g, request

from snakes_web.exceptions import MemoryBusy
from snakes_web.serving.budget import Hold, budget_of


def register_bodies(app: Flask) -> None:
    """Reserve every request's body before any view reads it; give it back when the request ends."""
    app.before_request(_reserve)
    app.teardown_request(_release)


def request_hold() -> Hold:
    """Return the current request's hold on the input budget (downloads take from it too)."""
    hold: Hold | None = g.get("input_hold")
    if hold is None:  # a request that began before the hook ran (or outside one): count it all the same
        hold = g.input_hold = budget_of(current_app).hold()
    return hold


def _reserve() -> None:
    """Take the declared body from the budget, or make its reading refuse (503); count a chunked body."""
    hold = request_hold()
    length = request.content_length
    environ = request.environ
    if length:
        if length > current_app.config["MAX_UPLOAD_BYTES"]:
            return  # Werkzeug refuses it (413) without reading it
        try:
            hold.take(length)
        except MemoryBusy as error:
            environ["wsgi.input"] = RefusedInput(error)
    elif "wsgi.input" in environ and environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        environ["wsgi.input"] = CountedInput(environ["wsgi.input"], hold)


def _release(_error: BaseException | None) -> None:
    """Give the request's inputs back to the budget."""
    hold: Hold | None = g.pop("input_hold", None)
    if hold is not None:
        hold.release()


class CountedInput:
    """A body stream whose every read is taken from a hold (a chunked body, whose size is not known)."""

    def __init__(self, stream: IO[bytes], hold: Hold) -> None:
        self._stream = stream
        self._hold = hold

    def read(self, size: int = -1) -> bytes:
        """Read, and take what was read from the budget (503 when it has no room)."""
        return self._counted(self._stream.read(size))

    def readline(self, size: int = -1) -> bytes:
        """Read a line, taking it from the budget."""
        return self._counted(self._stream.readline(size))

    def readlines(self, hint: int = -1) -> list[bytes]:
        """Read the lines, taking them from the budget."""
        return [self._counted(line) for line in self._stream.readlines(hint)]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def _counted(self, data: bytes) -> bytes:
        """Take ``data`` from the budget and return it."""
        self._hold.take(len(data))
        return data


class RefusedInput:
    """The body of a request the budget could not hold: reading it raises the refusal, so it is never read."""

    def __init__(self, error: MemoryBusy) -> None:
        self._error = error

    def read(self, size: int = -1) -> bytes:
        """Refuse."""
        raise self._error

    def readline(self, size: int = -1) -> bytes:
        """Refuse."""
        raise self._error

    def readlines(self, hint: int = -1) -> list[bytes]:
        """Refuse."""
        raise self._error

    def __iter__(self) -> Iterator[bytes]:
        raise self._error
