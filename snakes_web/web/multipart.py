"""Werkzeug's multipart decoder, finding the closing boundary with ``bytes.find`` before its regular expression runs.

Once a part's closing boundary is in the buffer, Werkzeug's ``MultipartDecoder`` searches the whole buffer
(up to 64 KB: the last chunk of every upload) with a pattern that starts with a line break. Python's
regular expressions cannot skip ahead to a pattern that starts with an alternation, so they try every
byte: 0.44 ms of CPU, holding the interpreter lock, for a 46 KB buffer, against 11 µs for
``bytearray.find`` (docs/performance.md). ``BoundaryFirstDecoder`` starts the same search two bytes
before the boundary's first occurrence (every match holds ``--boundary`` after a line break of one or
two bytes, so no match can start earlier): the same matches, found without the scan.

``install`` puts it where Werkzeug's form parser looks it up (``werkzeug.formparser.MultipartDecoder``);
``create_app`` calls it. Werkzeug is held to the locked version (constraints.txt), and
``tests/test_multipart.py`` checks the decoder against Werkzeug's own on generated bodies.
"""
from __future__ import annotations

import re
from typing import Any

from werkzeug import formparser
from werkzeug.sansio.multipart import MultipartDecoder


class FindFirst:
    """A compiled boundary pattern whose ``search`` starts where the boundary's bytes first occur."""

    __slots__ = ("needle", "pattern")

    def __init__(self, pattern: re.Pattern[bytes], needle: bytes) -> None:
        self.pattern = pattern
        self.needle = needle

    def search(self, data: bytes | bytearray, pos: int = 0) -> re.Match[bytes] | None:
        """Return the pattern's first match in ``data`` from ``pos``, as ``pattern.search`` would."""
        at = data.find(self.needle, pos)
        if at < 0:
            return None
        return self.pattern.search(data, max(pos, at - 2))  # a line break is at most 2 bytes: \r\n


class BoundaryFirstDecoder(MultipartDecoder):
    """Werkzeug's decoder with its boundary search started at the boundary (``FindFirst``)."""

    def __init__(self, boundary: bytes, max_form_memory_size: int | None = None, *,
                 max_parts: int | None = None) -> None:
        super().__init__(boundary, max_form_memory_size, max_parts=max_parts)
        found: Any = FindFirst(self.boundary_re, b"--" + boundary)
        self.boundary_re = found


def install() -> None:
    """Make Werkzeug's form parser decode multipart bodies with ``BoundaryFirstDecoder`` (idempotent)."""
    formparser.MultipartDecoder = BoundaryFirstDecoder  # type: ignore[attr-defined]
