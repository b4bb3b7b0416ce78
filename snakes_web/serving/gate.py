"""The inference gate: only as many predictions run at once as the server has inference slots.

Everything a request does that waits — receiving its body, fetching its URL, writing its answer —
happens outside the gate, on the worker's I/O threads. Decoding and the model run inside it. The
gate's counters are shared by every worker (``semaphores``), so a request never waits while a slot
is free in another worker, and a worker that dies gives its slots back.

Two semaphores: ``ADMITTED`` (slots + queue length) is taken without waiting — when it is gone, the
queue is full and the request is answered 503 at once; ``RUNNING`` (slots) is waited for, at most the
queue timeout — past it, 503 as well. A backend that cannot run two predictions at once in one
process (fastai's ``Learner.predict``) also takes a per-process lock first. No Flask here.

When the shared set is removed under the server (systemd RemoveIPC, ``ipcrm``) the gate cannot count
any more: it says so once in the log, every request it meets is answered 503 ``gate-lost`` (never
"busy"), and ``gone()`` lets ``/readyz`` and the worker see it. The worker then leaves, and the master
makes a new set for the workers it starts next (``tools.gunicorn_config.pre_fork``): no worker ever
makes a set of its own, which the others could not know of.
"""
from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from snakes_web.exceptions import GateLost, Overloaded
from snakes_web.extensions import Slot

from .semaphores import Semaphores, SetRemoved, SharedSemaphores, ThreadSemaphores

log = logging.getLogger(__name__)

ADMITTED, RUNNING = 0, 1
#: The environment variable through which the gunicorn master hands the workers its semaphore set,
#: as "semid,slots,queue" (``handed``); not a setting: gunicorn.conf.py writes it, the workers read it.
GATE_ENV = "SNAKES_WEB_GATE"
#: Seconds without a refusal after which an overload burst counts as over (and is logged as such).
BURST_QUIET_SECONDS = 10.0
#: What a request is told when the gate's semaphores are gone (the log line names the set).
LOST = ("The server lost the semaphores that count its inference slots (removed by systemd's RemoveIPC or an "
        "ipcrm?), so it cannot run the model safely; its workers are restarting with new ones. Try again in "
        "a few seconds.")


@dataclass(frozen=True)
class GateSize:
    """How many predictions run at once, and how many may wait for one."""

    slots: int
    queue: int
    timeout: float

    @property
    def values(self) -> list[int]:
        """Return the initial semaphore values: [admitted, running]."""
        return [self.slots + self.queue, self.slots]


#: Seconds a request waits for its worker's preferred number of predictions to have room before it runs
#: beside them anyway. Longer than an ordinary prediction (10-60 ms on 2 cores), so under steady load a
#: worker's predictions take turns (their Python parts then never fight over one interpreter lock: at 4
#: in flight 5-6% of the cores were idle with two at once, about 1% taking turns); short enough that a
#: held or slow prediction costs the next request of its worker no more than this.
PREFER_PATIENCE = 0.1


def size_of(slots: int, queue_length: int, timeout: float) -> GateSize:
    """Return the gate size; a queue length of 0 means four waiting requests per slot."""
    slots = max(1, slots)
    return GateSize(slots, queue_length if queue_length > 0 else 4 * slots, timeout)


class InferenceGate:
    """Admit a request to decode and predict, or refuse it at once with ``Overloaded``."""

    def __init__(self, semaphores: Semaphores, size: GateSize) -> None:
        self.semaphores = semaphores
        self.size = size
        self.on_refused: list[Callable[[str], None]] = []  # each told why ("queue-full", "timeout"): metrics
        self._locks: dict[int, threading.Semaphore] = {}
        self._locks_guard = threading.Lock()
        self._burst = _Burst()
        self._here = 0  # requests of this process inside ``admitted``
        self._here_lock = threading.Lock()
        self._lost = ""  # why the semaphores are gone, once seen ("" while they are there)
        self._lost_lock = threading.Lock()

    @property
    def busy_here(self) -> int:
        """Return how many requests of this process wait for or hold a slot (the worker's accept asks)."""
        return self._here

    @contextlib.contextmanager
    def admitted(self, concurrency: int | None = None, preferred: int = 0) -> Iterator[None]:
        """Hold an inference slot for the ``with`` block; ``concurrency``: the backend's per-process limit;
        ``preferred``: how many this process would rather run at once (``PREDICTIONS_PER_WORKER``).

        Takes, in order, a place in the queue (not waiting), the process lock if the backend has one,
        a turn among the preferred number (waiting at most ``PREFER_PATIENCE`` s: then it runs beside the
        others after all, so a long prediction never keeps a request from a slot that is free), then a slot
        (waiting until the queue timeout); gives them back in reverse.
        """
        started = time.monotonic()
        with contextlib.ExitStack() as held:
            with self._here_lock:
                self._here += 1
            held.callback(self._leave_here)
            if not self._take(ADMITTED, 0):
                self._refuse("queue-full", f"more than {self.size.queue} requests are waiting for the model")
            held.callback(self.semaphores.release, ADMITTED)
            local = self._local(concurrency)
            if local is not None:
                if not local.acquire(timeout=self.size.timeout):
                    self._refuse("timeout", f"a request waited {self.size.timeout:g} s for the model")
                held.callback(local.release)
            if preferred > 0 and not (concurrency and concurrency <= preferred):
                turn = self._local(-preferred)  # its own semaphore: never the backend's hard limit
                if turn is not None and turn.acquire(timeout=PREFER_PATIENCE):
                    held.callback(turn.release)
            left = self.size.timeout - (time.monotonic() - started)
            if not self._take(RUNNING, max(left, 0.001)):
                self._refuse("timeout", f"a request waited {self.size.timeout:g} s for the model")
            held.callback(self.semaphores.release, RUNNING)
            yield

    def _leave_here(self) -> None:
        """Count one request of this process out of the gate."""
        with self._here_lock:
            self._here -= 1

    def check_room(self) -> None:
        """Refuse at once, before its body is read, a request that would find the queue full now.

        A hint, not the admission: ``admitted`` still counts strictly. It spares a busy server
        reading uploads it would refuse, and a phone uploading a photo only to be told to retry.
        """
        try:
            free = self.semaphores.value(ADMITTED)
        except SetRemoved as exc:
            raise self._lost_to(exc) from None
        if free <= 0:
            self._refuse("queue-full", f"more than {self.size.queue} requests are waiting for the model")

    def gone(self) -> str:
        """Return why this gate's semaphores are gone, looking now ("" while they are there)."""
        if not self._lost:
            try:
                self.semaphores.value(ADMITTED)
            except SetRemoved as exc:
                self._lost_to(exc)
        return self._lost

    def _take(self, index: int, timeout: float) -> bool:
        """Take one unit of semaphore ``index`` (False: not within ``timeout``); ``GateLost`` once the set is gone."""
        try:
            return self.semaphores.acquire(index, timeout)
        except SetRemoved as exc:
            raise self._lost_to(exc) from None

    def _lost_to(self, exc: SetRemoved) -> GateLost:
        """Note (and log, the first time) that the semaphores are gone; return the error requests get."""
        with self._lost_lock:
            if not self._lost:
                self._lost = exc.reason
                log.error("inference gate lost: %s; predictions answer 503 until this worker is replaced", exc)
        return GateLost(LOST)

    def retry_after(self) -> int:
        """Return the seconds a refused client should wait: a quarter of the queue timeout, at least 1."""
        return max(1, math.ceil(self.size.timeout / 4))

    def _local(self, concurrency: int | None) -> threading.Semaphore | None:
        """Return the per-process limit for a backend that has one (a negative key: the preferred number's)."""
        if not concurrency:
            return None
        with self._locks_guard:
            return self._locks.setdefault(concurrency, threading.Semaphore(abs(concurrency)))

    def _refuse(self, reason: str, why: str) -> None:
        """Count and (once per burst) log a refusal, then raise ``Overloaded``."""
        for listener in self.on_refused:
            listener(reason)
        self._burst.refused(why)
        raise Overloaded("The server is busy right now. Try again in a moment.", retry_after=self.retry_after())


class _Burst:
    """Log the first refusal of a burst, and its size once it is over: one line each, not one per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._last = 0.0
        self._timer: threading.Timer | None = None

    def refused(self, why: str) -> None:
        """Note one refusal."""
        with self._lock:
            self._count += 1
            self._last = time.monotonic()
            if self._timer is None:
                log.warning("overloaded: answering 503 (%s); one line per burst", why)
                self._schedule(BURST_QUIET_SECONDS)

    def _schedule(self, seconds: float) -> None:
        self._timer = threading.Timer(seconds, self._check)
        self._timer.daemon = True
        self._timer.start()

    def _check(self) -> None:
        with self._lock:
            quiet_for = time.monotonic() - self._last
            if quiet_for < BURST_QUIET_SECONDS:
                self._schedule(BURST_QUIET_SECONDS - quiet_for)
                return
            log.warning("overload over: %d request(s) answered 503 in that burst", self._count)
            self._count, self._timer = 0, None


def handed(semid: int, size: GateSize) -> str:
    """Return the ``GATE_ENV`` value that tells the workers which semaphore set is the gate."""
    return f"{semid},{size.slots},{size.queue}"


def gate_from_environment(environ: Mapping[str, str], size: GateSize) -> InferenceGate:
    """Open the master's shared gate when gunicorn made one, else a gate for this process alone.

    ``size`` is this process's own (one slot, the configured queue); the master's replaces its slots
    and queue when there is one.
    """
    given = environ.get(GATE_ENV, "")
    if given:
        semid, shared = read_handed(given, size.timeout)
        return InferenceGate(SharedSemaphores(semid), shared)
    return InferenceGate(ThreadSemaphores(size.values), size)


def read_handed(given: str, timeout: float) -> tuple[int, GateSize]:
    """Return the semaphore set id and the gate size that a ``GATE_ENV`` value (``handed``) names."""
    semid, slots, queue = (int(part) for part in given.split(","))
    return semid, GateSize(slots, queue, timeout)


#: Where ``create_app`` keeps the InferenceGate: ``attach(app.extensions, ...)``, then ``gate_of(app)``.
SLOT: Slot[InferenceGate] = Slot("snakes_web.gate")
attach = SLOT.attach
gate_of = SLOT.of
