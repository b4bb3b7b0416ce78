"""Slow phones: slow uploads and slow URL fetches held open while normal uploads are timed."""
from __future__ import annotations

import argparse
import json
import selectors
import socket
import socketserver
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import zip_longest
from pathlib import Path

from .client import multipart, raw_request
from .scenarios import SYNC, THREADED, Load, SlowPlan, SlowResult

#: The body a slow upload announces (and a slow image), in bytes.
SLOW_UPLOAD_BYTES = 200_000


#: Seconds the bench waits at most for the server to start fetching every slow URL.
HOLD_IN_S = 3.0


def status_of(answer: bytes) -> int:
    """Return the status of an HTTP answer's first bytes, 0 when there is none."""
    code = answer[9:12] if answer.startswith(b"HTTP/1.") else b""
    return int(code) if code.isdigit() else 0


def timed_send(host: str, port: int, request: bytes, timeout: float) -> tuple[int, float]:
    """Send a prepared request on a new connection, within ``timeout`` s in all; return (status, ms).

    Status 0 is no (whole) answer; a request that timed out counts ``timeout`` as its latency.
    """
    began = time.monotonic()
    deadline, chunks = began + timeout, []
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(request)
            while True:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                if not (chunk := sock.recv(65536)):
                    break
                chunks.append(chunk)
    except TimeoutError:
        return 0, timeout * 1000
    except OSError:
        return 0, (time.monotonic() - began) * 1000
    return status_of(b"".join(chunks)), (time.monotonic() - began) * 1000


def slow_upload(port: int) -> tuple[bytes, bytes]:
    """Return a slow upload's head (announcing a multipart body of SLOW_UPLOAD_BYTES) and its body's start."""
    boundary = uuid.uuid4().hex
    head = (f"POST /api/v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {SLOW_UPLOAD_BYTES}\r\n"
            f"Connection: close\r\n\r\n").encode()
    part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode()
    return head, part + b"\xff\xd8\xff\xe0"


class _Drip(socketserver.BaseRequestHandler):
    """Answer one GET with 200 image/jpeg, then send the body a byte a second."""

    server: Dribbler

    def handle(self) -> None:
        """Read the request's head, answer, drip until the client leaves or the time limit."""
        sock, head = self.request, b""
        sock.settimeout(5)
        try:
            while b"\r\n\r\n" not in head and len(head) < 65536:
                if not (chunk := sock.recv(4096)):
                    return
                head += chunk
            sock.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {SLOW_UPLOAD_BYTES}\r\n"
                         f"Connection: close\r\n\r\n".encode() + b"\xff")
        except OSError:
            return
        self.server.count(+1)
        try:
            until = time.monotonic() + self.server.limit
            while time.monotonic() < until and not self.server.stopping.wait(1.0):
                sock.sendall(b"\0")
        except OSError:
            pass
        finally:
            self.server.count(-1)


class Dribbler(socketserver.ThreadingTCPServer):
    """A tiny image server on loopback whose every image arrives at 1 byte/s (``with``: serving)."""

    daemon_threads = True

    def __init__(self, limit: float) -> None:
        super().__init__(("127.0.0.1", 0), _Drip)
        self.limit = limit  # seconds one answer drips at most
        self.stopping = threading.Event()
        self.active = 0  # answers being dripped right now
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)

    @property
    def url(self) -> str:
        """Return the URL of the slow image."""
        return f"http://127.0.0.1:{self.server_address[1]}/slow.jpg"

    def count(self, step: int) -> None:
        """Count an answer starting (+1) or ending (-1)."""
        with self._lock:
            self.active += step

    def __enter__(self) -> Dribbler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


@dataclass
class _Held:
    """One slow socket the bench holds open."""

    kind: str          # "upload" or "url"
    sock: socket.socket
    body: bytes = b""  # what a slow upload drips (then zeros)
    sent: int = 0      # body bytes dripped
    answer: bytes = b""


class SlowClients:
    """Hold slow uploads and slow URL fetches open on a server, re-opening each one the server ends.

    One thread and a selector: every second each slow upload sends one more byte; an answer (or a
    close) ends a socket, counted by how it ended. After ``finish`` nothing is re-opened, and what is
    still open ``plan.give_up`` s after the start (and at least 2 s after ``finish``) ends as "no
    answer". The loop stops by itself at ``deadline`` whatever happens, and opens at most 50 sockets
    per one held.
    """

    def __init__(self, port: int, plan: SlowPlan, image_url: str) -> None:
        self.port, self.plan = port, plan
        self.url_request = raw_request("127.0.0.1", port, json.dumps({"url": image_url}).encode(),
                                       "application/json")
        self.ends: dict[str, Counter[str]] = {"upload": Counter(), "url": Counter()}
        self.reopened: Counter[str] = Counter()
        self.finishing = threading.Event()
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._opens_left = 50 * (plan.uploads + plan.urls)
        self._thread: threading.Thread | None = None
        self._started = self._give_up_at = time.monotonic()

    def start(self, deadline: float) -> None:
        """Open the slow sockets, uploads and URLs in turn, and hold them from a thread until ``deadline``."""
        self._started = time.monotonic()
        for pair in zip_longest(["upload"] * self.plan.uploads, ["url"] * self.plan.urls):
            for kind in filter(None, pair):
                self._open(kind)
        self._thread = threading.Thread(target=self._run, args=(deadline,), daemon=True)
        self._thread.start()

    def held(self, kind: str) -> int:
        """Return how many sockets of ``kind`` are open right now."""
        with self._lock:
            return sum(key.data.kind == kind for key in self._selector.get_map().values())

    def finish(self) -> None:
        """Stop re-opening and wait (bounded) until every slow socket has ended."""
        self._give_up_at = max(self._started + self.plan.give_up, time.monotonic() + 2.0)
        self.finishing.set()
        if self._thread is not None:
            self._thread.join(timeout=self._give_up_at - time.monotonic() + 5)

    def _open(self, kind: str) -> None:
        """Open one slow socket and send what it sends at once (a slow upload: its head)."""
        if self._opens_left <= 0:
            return
        self._opens_left -= 1
        head, body = slow_upload(self.port) if kind == "upload" else (self.url_request, b"")
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            sock.sendall(head)
        except OSError:
            self.ends[kind]["could not connect"] += 1
            return
        sock.setblocking(False)
        with self._lock:
            self._selector.register(sock, selectors.EVENT_READ, _Held(kind, sock, body))

    def _run(self, deadline: float) -> None:
        """Drip, read answers and re-open until finished or ``deadline``; then end what is left."""
        tick = time.monotonic() + 1.0
        while (now := time.monotonic()) < deadline:
            if self.finishing.is_set() and (now > self._give_up_at or not self._selector.get_map()):
                break
            for key, _events in self._selector.select(timeout=max(0.0, min(tick - now, 0.2))):
                self._read(key.data)
            if time.monotonic() >= tick:
                tick += 1.0
                for key in list(self._selector.get_map().values()):
                    if key.data.kind == "upload":
                        self._drip(key.data)
        for key in list(self._selector.get_map().values()):
            self._end(key.data, "no answer")

    def _drip(self, held: _Held) -> None:
        """Send a slow upload's next byte."""
        try:
            held.sent += held.sock.send(held.body[held.sent:held.sent + 1] or b"\0")
        except BlockingIOError:
            pass
        except OSError:
            self._read(held, broken=True)

    def _read(self, held: _Held, broken: bool = False) -> None:
        """Read a slow socket's answer: its status line ends it, as does a close or a reset."""
        try:
            data = held.sock.recv(4096)
        except BlockingIOError:
            if broken:
                self._end(held, str(status_of(held.answer) or "reset"))
            return
        except OSError:
            self._end(held, str(status_of(held.answer) or "reset"))
            return
        held.answer += data
        if data and b"\r\n" not in held.answer and len(held.answer) < 4096:
            return  # the status line is not all in yet
        status = status_of(held.answer)
        self._end(held, str(status) if status else "garbled" if held.answer else "closed")

    def _end(self, held: _Held, outcome: str) -> None:
        """Count how a slow socket ended, close it, and re-open one like it unless finishing."""
        with self._lock:
            self._selector.unregister(held.sock)
        held.sock.close()
        self.ends[held.kind][outcome] += 1
        if not self.finishing.is_set():
            self.reopened[held.kind] += 1
            self._open(held.kind)


def slow_clients(port: int, image: Path, plan: SlowPlan) -> SlowResult:
    """Hold the plan's slow uploads and URLs open on the server and time normal uploads of ``image`` meanwhile."""
    request = raw_request("127.0.0.1", port, *multipart(image.read_bytes(), image.name))
    with Dribbler(limit=plan.give_up + 5) as dribbler:
        held = SlowClients(port, plan, dribbler.url)
        started = time.monotonic()
        held.start(deadline=started + HOLD_IN_S + plan.spread + plan.normal * (plan.timeout + 1) + plan.give_up + 10)
        try:
            while dribbler.active < plan.urls and time.monotonic() - started < HOLD_IN_S:
                time.sleep(0.05)  # until the server fetches every slow URL (a sync server fetches few)
            time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))
            normal, samples = time_uploads(port, request, plan,
                                           lambda: (held.held("upload"), held.held("url"), dribbler.active))
            cuts, url_restarts = held.reopened["upload"], held.reopened["url"]
        finally:
            held.finish()
    uploads, urls, fetching = (min(column) for column in zip(*samples, strict=True))
    return SlowResult(plan, normal, uploads, urls, fetching, cuts, url_restarts,
                      dict(held.ends["upload"]), dict(held.ends["url"]))


def time_uploads(port: int, request: bytes, plan: SlowPlan,
                 sample: Callable[[], tuple[int, int, int]]) -> tuple[Load, list[tuple[int, int, int]]]:
    """Send the plan's normal uploads one after another, spread over ``plan.spread`` s; ``sample`` before each."""
    started, latencies, samples, failed = time.monotonic(), [], [], 0
    for index in range(plan.normal):
        time.sleep(max(0.0, started + index * plan.spread / plan.normal - time.monotonic()))
        samples.append(sample())
        status, ms = timed_send("127.0.0.1", port, request, plan.timeout)
        latencies.append(ms)
        failed += status != 200
    return Load(plan.normal, time.monotonic() - started, latencies, failed, plan.normal), samples


def slow_plans(args: argparse.Namespace) -> dict[str, SlowPlan]:
    """Return the slow-clients plan of the threaded (3) and the sync (3s) server; none with ``--slow 0``."""
    count = args.slow if args.slow is not None else (2 if args.smoke else 32)
    if count <= 0:
        return {}
    from snakes_web.config import load_settings  # imports no torch

    grace = float(load_settings()["UPLOAD_GRACE"])
    fetch = 2.0 if args.smoke else 10.0
    threaded = SlowPlan(uploads=count, urls=count, normal=3 if args.smoke else 20, timeout=30.0,
                        spread=0.0 if args.smoke else 2 * grace, fetch_timeout=fetch,
                        give_up=max(grace, 3 * fetch) + 2)  # a fetch's whole deadline is 3 × its timeout
    # Sync workers are all held by slow clients: every normal upload waits for its timeout; keep that short.
    sync = replace(threaded, normal=3, timeout=2.0 if args.smoke else 10.0, spread=0.0)
    return {THREADED: threaded, SYNC: sync}
