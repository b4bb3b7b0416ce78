"""The gunicorn worker snakes-web runs: gunicorn's threaded worker, with every request paced.

gunicorn's ``gthread`` worker serves each connection on a thread of its own, so a phone that
uploads slowly holds a thread, not the model (the model is behind ``gate``). What it does not do is
cut a client that sends its request slower and slower: once the first byte is in, a thread waits
for the rest as long as the client likes. ``PacedSocket`` wraps each connection's socket so that
every receive of a request waits only until the request would fall behind

* ``UPLOAD_MIN_RATE`` bytes/s, averaged from its first byte, after ``UPLOAD_GRACE`` seconds; or
* ``UPLOAD_TIMEOUT`` seconds in all;

then the request is cut: its read side is shut (the buffered body is dropped with the request) and
it is answered 408 — by the app, as problem+json or the page, when the body was being read; here,
as problem+json, when even the headers were not in. Writing an answer has its own time limit.

Used as ``worker_class = "snakes_web.serving.worker.ThreadWorker"`` in gunicorn.conf.py.
"""
from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gunicorn import util
from gunicorn.workers import gthread

from snakes_web.config import load_settings
from snakes_web.exceptions import RequestTimeout, problem_document

from .gate import InferenceGate, gate_of
from .shutdown import server_flag

#: The gunicorn releases this worker was tested with (it extends gthread's internals: enqueue_req, handle,
#: accept, set_accept_enabled, max_keepalived, util.close_graceful). setup.cfg allows only these, the lock
#: file pins one, and tests/test_pins.py fails when the installed one is outside.
TESTED_GUNICORN = ">=27,<28"

#: glibc gives each thread that allocates its own malloc arena (up to 8 per core), and the memory
#: freed in one is not reused by another: measured with 64 threads under load, an ONNX worker's RSS
#: settled at ~186 MB with the default and ~150 MB with 2 arenas, at the same throughput.
MALLOC_ARENAS = 2
#: Allocations from this size up get pages of their own, handed back to the kernel when freed. glibc's
#: default threshold starts at 128 KB but rises to the largest block freed (up to 32 MB): after one big
#: photo, Pillow's 16 MB pixel blocks, libjpeg's buffers and the upload itself come from the heap,
#: whose freed memory a worker keeps (measured, docs/benchmarks.md: a worker held 1.1-1.5 GB after five
#: decode bombs). Setting it fixes it where it is.
MMAP_THRESHOLD = 1 << 20
#: Setting the mmap threshold also freezes glibc's trim threshold at 128 KB: the heap's top was then
#: given back after every request and faulted in again on the next (4-7% more CPU per ordinary photo,
#: docs/performance.md). Up to 8 MB of free heap top is kept per arena instead.
TRIM_THRESHOLD = 1 << 23
#: Seconds a computing worker waits before it accepts a new connection an idle sibling could take
#: (measured on 2 cores, 1 MP JPEGs: 100 → 109 images/s at 2 in flight, 104 → 107 at 4).
ACCEPT_DEFER = 0.001
#: Seconds one answer may take to write before the connection is dropped (the answer is a few KB).
SEND_TIMEOUT = 60.0
TOO_SLOW = "The request arrived too slowly; the server stopped waiting for it."


@dataclass(frozen=True)
class Pace:
    """How slowly, and for how long in all, a request may arrive."""

    min_rate: float   # bytes/s averaged from the first byte; 0: no minimum
    grace: float      # seconds before the minimum applies
    total: float      # seconds for the whole request; 0: no limit

    def deadline(self, started: float, received: int) -> float:
        """Return when a request that began at ``started`` and has ``received`` bytes falls behind."""
        limits = []
        if self.min_rate > 0:
            limits.append(started + self.grace + received / self.min_rate)
        if self.total > 0:
            limits.append(started + self.total)
        return min(limits) if limits else float("inf")


def pace_from_settings(settings: dict[str, Any]) -> Pace:
    """Read the pace from the app's settings."""
    return Pace(float(settings["UPLOAD_MIN_RATE"]), float(settings["UPLOAD_GRACE"]),
                float(settings["UPLOAD_TIMEOUT"]))


class PacedSocket:
    """A connection's socket whose receives, while a request is read, keep to a ``Pace``."""

    def __init__(self, sock: socket.socket, pace: Pace) -> None:
        self._sock = sock
        self._pace = pace
        self._outer: float | None = None  # the timeout gunicorn itself asked for
        self._started: float | None = None
        self._received = 0
        self._reading = False
        self.cut = False
        self.closed = False

    def begin_request(self) -> None:
        """Start pacing a new request; its clock starts with its first receive."""
        self._reading, self._started, self._received = True, None, 0

    def end_request(self) -> None:
        """Stop pacing (between requests the socket belongs to gunicorn's keep-alive poller)."""
        self._reading = False

    def recv(self, size: int, *flags: int) -> bytes:
        """Receive, waiting no longer than the request's pace allows."""
        if not self._reading:
            return self._sock.recv(size, *flags)
        if self.cut:
            return b""  # the request was cut: what is left of it is not read
        now = time.monotonic()
        if self._started is None:
            self._started = now
        ours = self._pace.deadline(self._started, self._received) - now
        wait = ours if self._outer is None else min(ours, self._outer)
        if ours <= 0:
            self._cut()
        self._sock.settimeout(max(wait, 0.001))
        try:
            data = self._sock.recv(size, *flags)
        except TimeoutError:
            if self._outer is not None and self._outer < ours:
                raise  # gunicorn's own timeout (draining a body): gunicorn handles it
            self._cut()
        finally:
            self._sock.settimeout(self._outer)
        self._received += len(data)
        return data

    def _cut(self) -> None:
        """Stop reading this request and raise the 408."""
        self.cut = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RD)
        raise RequestTimeout(TOO_SLOW)

    def send(self, data: bytes, *flags: int) -> int:
        """Send, within the answer's time limit."""
        with self._sending():
            return self._sock.send(data, *flags)

    def sendall(self, data: bytes, *flags: int) -> None:
        """Send all of ``data``, within the answer's time limit."""
        with self._sending():
            self._sock.sendall(data, *flags)

    @contextlib.contextmanager
    def _sending(self) -> Iterator[None]:
        """Hold the answer's time limit (or gunicorn's, if shorter) for one send."""
        self._sock.settimeout(SEND_TIMEOUT if self._outer is None else min(SEND_TIMEOUT, self._outer))
        try:
            yield
        finally:
            self._sock.settimeout(self._outer)

    def settimeout(self, value: float | None) -> None:
        """Remember gunicorn's timeout (it applies on top of the pace) and set it."""
        self._outer = value
        if not self.closed:
            self._sock.settimeout(value)

    def close_here(self) -> None:
        """Close as gunicorn would (FIN, then drain what the client still sends, 2 s at most), in this thread.

        gthread does this on its main loop, where a client that never closes its side blocks the
        worker's accepting for 2 s each: 60 such clients held a two-worker server for over 30 s.
        """
        self._reading = False
        util.close_graceful(self._sock)
        self.closed = True

    def setblocking(self, flag: bool) -> None:
        """Blocking is no timeout; non-blocking is a zero timeout (as for a plain socket)."""
        self.settimeout(None if flag else 0.0)

    def gettimeout(self) -> float | None:
        """Return gunicorn's timeout."""
        return self._outer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)  # fileno, close, shutdown, getpeername …


def tune_malloc(arenas: int = MALLOC_ARENAS, mmap_threshold: int = MMAP_THRESHOLD,
                trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Cap glibc's malloc arenas and fix its mmap and trim thresholds (as ``MALLOC_ARENA_MAX``,
    ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` would at start-up); False without glibc."""
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or None).mallopt
    except (OSError, AttributeError):  # another C library (musl): nothing to set
        return False
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8  # <malloc.h>
    return (bool(mallopt(m_arena_max, arenas)) and bool(mallopt(m_mmap_threshold, mmap_threshold))
            and bool(mallopt(m_trim_threshold, trim_threshold)))


class ThreadWorker(gthread.ThreadWorker):  # type: ignore[misc]  # gunicorn ships no types: its classes are Any
    """gunicorn's threaded worker, with paced requests and keep-alive within its thread count."""

    alive: bool  # gunicorn's: False ends the main loop (then what the worker holds is finished)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # gunicorn.conf.py sets worker_connections = threads, so that every connection a worker
        # accepts has a thread of its own (never a queue behind busy threads while another worker
        # is idle). gthread would then keep no connection alive; half the threads' worth may be.
        self.max_keepalived = max(1, self.cfg.threads // 2)
        settings = load_settings()
        self.pace = pace_from_settings(settings)
        self.drain_seconds = max(0, int(settings["DRAIN_SECONDS"]))
        self.draining = False

    def init_process(self) -> None:
        """Tune glibc's malloc before this worker starts any thread, then start as gthread does."""
        tune_malloc()
        super().init_process()

    def notify(self) -> None:
        """Tell the master this worker lives; once the gate's semaphores are gone, leave (finishing what it holds).

        Its replacement is forked with a new set (``gunicorn_config.pre_fork``). Called about once a
        second by gthread's main loop, so even a worker that gets no request leaves within a second.
        """
        super().notify()
        gate = self._gate() if self.alive else None
        if gate is not None and gate.gone():
            self.log.warning("snakes-web: worker %d leaves: its inference gate is gone; the master starts one "
                             "with a new semaphore set", self.pid)
            self.alive = False

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """Nothing to warn about: keep-alive is sized in ``__init__``, not from worker_connections."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM: when the whole server is stopping, serve on for the drain, then stop as gthread does.

        The master raised the stop flag before it told the workers (``shutdown``), so every
        ``/readyz`` already says 503. Until the drain ends this worker still accepts and answers
        (each answer with ``Connection: close``, so clients and balancers reconnect elsewhere); then
        gthread stops accepting and waits for the connections it holds. A SIGTERM for this worker
        alone (a reload's old workers) stops it at once: the new workers take the listener.
        """
        if self.draining or not self.alive:
            return
        if not server_flag().is_set() or self.drain_seconds <= 0:
            super().handle_exit(sig, frame)
            return
        self.draining = True
        self.max_keepalived = 0  # gthread answers "Connection: close" once its keep-alive slots are full
        self.log.info("snakes-web: stopping: /readyz answers 503; worker %d serves %d s more, then finishes "
                      "what it holds", self.pid, self.drain_seconds)
        timer = threading.Timer(self.drain_seconds, super().handle_exit, args=(sig, frame))
        timer.daemon = True
        timer.start()

    def set_accept_enabled(self, enabled: bool) -> None:
        """Stop or start accepting; once stopping, also close this worker's listeners at once.

        gthread keeps them open until its last connection is done, so a connection that reached the
        kernel's backlog meanwhile was accepted by no one and reset at the end. Closed (the master
        closed its own on SIGTERM), the port refuses at once, which a balancer retries elsewhere.
        """
        super().set_accept_enabled(enabled)
        if not enabled and not self.alive:
            for listener in self.sockets:
                listener.close()

    def accept(self, listener: Any) -> None:
        """Accept a connection; when this worker is computing, first leave it a moment to an idle sibling.

        Every worker's main loop wakes for each new connection and the first to take it serves it,
        so a worker that is busy with a prediction often took the next one too while its sibling sat
        idle: on the bench, 9% of the cores idle at 2 requests in flight. ``ACCEPT_DEFER`` s of
        precedence for an idle worker halve that; if none takes it, this worker accepts after all.
        """
        gate = self._gate()
        if gate is not None and gate.busy_here > 0:
            time.sleep(ACCEPT_DEFER)
        super().accept(listener)

    def _gate(self) -> InferenceGate | None:
        """Return the app's inference gate (None for an app that is not ``create_app``'s, e.g. wrapped)."""
        try:
            return gate_of(self.wsgi)
        except (AttributeError, KeyError, TypeError):
            return None

    def enqueue_req(self, conn: Any) -> None:
        """Wrap a new connection's socket before its first request (TLS sockets are left as they are)."""
        if not isinstance(conn.sock, PacedSocket) and not self.cfg.is_ssl:
            conn.sock = PacedSocket(conn.sock, self.pace)
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        """Serve one request on ``conn`` with its receives paced."""
        paced = conn.sock if isinstance(conn.sock, PacedSocket) else None
        if paced is not None:
            paced.begin_request()
        try:
            result = super().handle(conn)
        finally:
            if paced is not None:
                paced.end_request()
        if result is False and paced is not None:
            paced.close_here()  # the main loop's close that follows finds it closed and returns at once
        return result

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Answer a request cut before its headers were in with a 408 problem document."""
        if not isinstance(exc, RequestTimeout):
            super().handle_error(req, client, addr, exc)
            return
        self.log.info("408: a request from %s arrived too slowly", (addr or ("?",))[0])
        body = json.dumps(problem_document(exc)).encode()  # no request id yet: the headers were not in
        head = (f"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/problem+json"
                f"\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        with contextlib.suppress(OSError):
            client.sendall(head + body)
