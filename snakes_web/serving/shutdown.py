"""Stopping without losing a request: the server's "stopping" flag, raised by SIGTERM, seen by every worker.

A load balancer (a Kubernetes Service, HAProxy, a cloud balancer) stops sending to a replica once
its readiness check fails. So when gunicorn's master gets SIGTERM it first raises this flag — from
then on every worker's ``/readyz`` answers 503 — and the workers go on accepting and answering for
``DRAIN_SECONDS`` (``worker.ThreadWorker``), long enough for the balancer to notice; then they stop
listening, finish what they have admitted and exit, all within gunicorn's ``graceful_timeout``.

The flag is one byte of anonymous shared memory mapped in the master before it forks the workers,
so every worker, the ones a reload forks later included, reads the byte the master writes. A SIGTERM
that only a worker gets (the old workers of a ``kill -HUP`` reload, ``kill -TTOU``) leaves it down:
the server as a whole is not stopping, and its ``/readyz`` stays 200. No Flask here.
"""
from __future__ import annotations

import mmap
import signal
from types import FrameType

from snakes_web.extensions import Slot


class StopFlag:
    """One byte shared with every process forked after it was made: set means "the server is stopping"."""

    def __init__(self) -> None:
        self._byte = mmap.mmap(-1, 1)  # anonymous and MAP_SHARED (the default): forked children share it

    def set(self) -> None:
        """Say the server is stopping (seen at once by every process that shares the flag)."""
        self._byte[0] = 1

    def is_set(self) -> bool:
        """Tell whether the server is stopping."""
        return self._byte[0] == 1


_FLAG: StopFlag | None = None


def server_flag() -> StopFlag:
    """Return this process's stop flag, made on first use (under gunicorn: in the master, before the fork)."""
    global _FLAG
    if _FLAG is None:
        _FLAG = StopFlag()
    return _FLAG


def raise_on_sigterm(flag: StopFlag) -> None:
    """Set ``flag`` when this process gets SIGTERM, then run the handler that was there before (gunicorn's)."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        flag.set()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:  # no handler before: end as SIGTERM's default would
            raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)


#: Where ``create_app`` keeps the StopFlag: ``attach(app.extensions, ...)``, then ``stop_flag_of(app)``.
SLOT: Slot[StopFlag] = Slot("snakes_web.shutdown")
attach = SLOT.attach
stop_flag_of = SLOT.of
