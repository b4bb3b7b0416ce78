"""The input budget: the bytes one worker holds for request bodies and downloaded images, counted and bounded.

Every request's body (its ``Content-Length``, reserved before a byte of it is read; a chunked body as it
arrives) and every image it downloads (as the bytes come in) is taken from this worker's budget, and
given back when the request ends. A request that would take the budget past its size is refused at once
(``MemoryBusy``: 503 with ``Retry-After``) instead of being held. Large inputs may fill only
``LARGE_SHARE`` of it, so that ordinary photos still get in while a few huge uploads trickle in.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from snakes_web.config import ConfigError
from snakes_web.exceptions import MemoryBusy
from snakes_web.extensions import Slot

#: An input larger than this is large: all of them together get at most ``LARGE_SHARE`` of the budget.
LARGE_ABOVE = 4 * 2**20
LARGE_SHARE = 0.75
#: Seconds a refused client is asked to wait: held uploads take seconds to end, not minutes.
RETRY_AFTER = 2
#: The most budget a worker gets, in MB, however much memory is left over; also the budget when
#: ``INPUT_BUDGET_MB`` is 0 and nothing sized it (gunicorn.conf.py does, from the memory it finds).
CAP_MB = 192
BUSY = "The server is holding as many uploads and downloads as its memory allows. Try again in a moment."


class InputBudget:
    """The bytes this worker may hold for inputs, and how many it holds now."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self.refused = 0  # requests turned away since start (for the log and the tests)
        self._lock = threading.Lock()

    def hold(self) -> Hold:
        """Start counting one request's (or one download's) inputs; give them back with ``release``."""
        return Hold(self)

    def largest(self) -> int:
        """Return the largest single input this budget can ever admit (a large one, alone)."""
        return int(self.size * LARGE_SHARE)

    def _take(self, amount: int, total: int) -> None:
        """Take ``amount`` bytes for a hold that will then hold ``total``, or raise ``MemoryBusy``."""
        limit = self.size * LARGE_SHARE if total > LARGE_ABOVE else self.size
        with self._lock:
            if self.used + amount > limit:
                self.refused += 1
                raise MemoryBusy(BUSY, retry_after=RETRY_AFTER)
            self.used += amount

    def _give(self, amount: int) -> None:
        """Give ``amount`` bytes back."""
        with self._lock:
            self.used -= amount


class Hold:
    """What one request, or one download, has taken from the budget."""

    def __init__(self, budget: InputBudget) -> None:
        self._budget = budget
        self.bytes = 0

    def take(self, amount: int) -> None:
        """Take ``amount`` more bytes, or raise ``MemoryBusy`` (then nothing more is taken)."""
        if amount > 0:
            self._budget._take(amount, self.bytes + amount)
            self.bytes += amount

    def release(self) -> None:
        """Give back everything this hold took (again: nothing)."""
        taken, self.bytes = self.bytes, 0
        if taken:
            self._budget._give(taken)

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()


def least_mb(max_upload_bytes: int) -> int:
    """Return the smallest budget, in MB, that still admits one upload of ``max_upload_bytes`` (a large one)."""
    return math.ceil(max_upload_bytes / LARGE_SHARE / 2**20)


def budget_size(settings: Mapping[str, Any]) -> int:
    """Return the budget in bytes from the settings; refuse one too small for a single largest upload."""
    megabytes = int(settings.get("INPUT_BUDGET_MB") or 0) or CAP_MB
    least = least_mb(int(settings["MAX_UPLOAD_BYTES"]))
    if megabytes < least:
        raise ConfigError(f"SNAKES_INPUT_BUDGET_MB={megabytes} cannot hold one upload of SNAKES_MAX_UPLOAD_BYTES="
                          f"{settings['MAX_UPLOAD_BYTES']} (large inputs get {LARGE_SHARE:.0%} of it): "
                          f"give it at least {least}.")
    return megabytes * 2**20


_SLOT: Slot[InputBudget] = Slot("snakes_web.input_budget")
attach = _SLOT.attach
budget_of = _SLOT.of
