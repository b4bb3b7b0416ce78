"""What one visitor can make a server hold: decode bombs and held uploads against a running server, its RSS sampled.

Used by the bench's memory scenario, by the tests on a real gunicorn and by the container tests, so all
three attack the same way:

* **bombs** (``tools/bombs.py``): small files that decode to ~48 MP, sent ``concurrency`` at a time;
* **held uploads**: clients that send a large multipart upload at full speed except its last 4 KB, hold
  it open for a while, then finish it;
* **normal uploads**: an ordinary photo sent one after another meanwhile, each timed.

The server's processes are sampled from /proc every 20 ms (the master and its workers, found by PID, so
a container's processes are sampled from the host too): peak and settled resident memory.
"""
from __future__ import annotations

import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ..bombs import Bomb
from .client import multipart, raw_request
from .processes import children, rss_mb
from .slow_clients import status_of

#: Bytes of a held upload left unsent while it is held.
HELD_TAIL = 4096


@dataclass
class Sampled:
    """Resident memory of a server's processes over a measurement, in MB."""

    master: int
    workers: list[int]
    before: dict[int, float]
    peak_total: float = 0.0
    peak: dict[int, float] = field(default_factory=dict)

    @property
    def before_total(self) -> float:
        """Return the RSS of master and workers when sampling began."""
        return sum(self.before.values())

    @property
    def growth(self) -> float:
        """Return how far the whole server's RSS rose above where it began."""
        return self.peak_total - self.before_total

    def now(self) -> dict[int, float]:
        """Return each worker's RSS now (NaN for one that is gone)."""
        return {pid: _rss(pid) for pid in self.workers}

    def replaced(self) -> bool:
        """Tell whether a worker has died or been replaced since sampling began."""
        return sorted(children(self.master)) != sorted(self.workers)


def _rss(pid: int) -> float:
    """Return ``pid``'s RSS in MB, NaN when it is gone."""
    try:
        return rss_mb(pid)
    except OSError:
        return float("nan")


@contextmanager
def sampled(master: int, every: float = 0.02) -> Iterator[Sampled]:
    """Sample the RSS of ``master`` and its workers until the block ends."""
    workers = children(master)
    pids = [master, *workers]
    record = Sampled(master, workers, {pid: _rss(pid) for pid in pids})
    record.peak_total = record.before_total
    record.peak = dict(record.before)

    def sample() -> None:
        now = {pid: _rss(pid) for pid in pids}
        record.peak_total = max(record.peak_total, float(np.nansum(list(now.values()))))
        for pid, value in now.items():
            if value == value:  # not NaN
                record.peak[pid] = max(record.peak.get(pid, 0.0), value)

    with _repeated(sample, every, "rss-sampler"):
        yield record


@contextmanager
def _repeated(step: Callable[[], None], every: float, name: str) -> Iterator[None]:
    """Run ``step`` on a thread of its own, again every ``every`` s, until the block ends."""
    done = threading.Event()

    def run() -> None:
        while not done.is_set():
            step()
            done.wait(every)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def settle(record: Sampled, within: float = 10.0, margin: float = 50.0) -> tuple[float, dict[int, float]]:
    """Wait up to ``within`` s for every worker to come back within ``margin`` MB of where it began.

    Returns the seconds it took (``within`` when it did not) and each worker's RSS then.
    """
    began = time.monotonic()
    while True:
        now = record.now()
        if all(now[pid] - record.before[pid] <= margin for pid in record.workers):
            return time.monotonic() - began, now
        if time.monotonic() - began >= within:
            return within, now
        time.sleep(0.25)


@dataclass(frozen=True)
class Answer:
    """One request of an attack: what it was, its status (0: no answer) and how long it took."""

    name: str
    status: int
    seconds: float
    detail: str = ""


def post_bytes(host: str, port: int, data: bytes, name: str, timeout: float = 120.0) -> Answer:
    """POST ``data`` as the file of /api/v1/predict on a new connection; return the answer."""
    request = raw_request(host, port, *multipart(data, name))
    began = time.monotonic()
    answer = _exchange(host, port, request, timeout)
    return Answer(name, status_of(answer), time.monotonic() - began, _detail(answer))


def _exchange(host: str, port: int, request: bytes, timeout: float,
              hold: float = 0.0, tail: int = 0) -> bytes:
    """Send ``request`` (holding its last ``tail`` bytes back for ``hold`` s); return the answer's bytes."""
    chunks: list[bytes] = []
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            try:
                if tail:
                    sock.sendall(request[:-tail])
                    time.sleep(hold)
                    sock.sendall(request[-tail:])
                else:
                    sock.sendall(request)
            except OSError:
                pass  # answered (and closed) before the whole body went: read what came back
            while True:
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError:
        return b""
    return b"".join(chunks)


def _detail(answer: bytes) -> str:
    """Return the problem document's detail of an answer, if any (a short excerpt)."""
    marker = answer.find(b'"detail"')
    if marker < 0:
        return ""
    return answer[marker + 9:marker + 120].decode("utf-8", "replace").strip(' :"').split('"', 1)[0]


def send_bombs(host: str, port: int, bombs: Sequence[Bomb], concurrency: int = 2,
               rounds: int = 1) -> list[Answer]:
    """Send every bomb ``rounds`` times, ``concurrency`` at a time; return the answers in order."""
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda bomb: post_bytes(host, port, bomb.data, bomb.name),
                             [bomb for _ in range(rounds) for bomb in bombs]))


def held_upload(host: str, port: int, size: int, hold: float, timeout: float = 120.0) -> Answer:
    """Upload ``size`` bytes as a photo at full speed but its last 4 KB, hold it ``hold`` s, then finish it."""
    boundary = uuid.uuid4().hex
    part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"held.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode()
    end = f"\r\n--{boundary}--\r\n".encode()
    body = part + b"\xff\xd8\xff\xe0" + bytes(max(0, size - len(part) - len(end) - 4)) + end
    request = (f"POST /api/v1/predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: multipart/form-data; "
               f"boundary={boundary}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    began = time.monotonic()
    answer = _exchange(host, port, request, timeout, hold=hold, tail=HELD_TAIL)
    return Answer("held", status_of(answer), time.monotonic() - began, _detail(answer))


def held_uploads(host: str, port: int, clients: int, size: int, hold: float) -> list[Answer]:
    """Run ``clients`` held uploads at once; return their answers."""
    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(lambda _: held_upload(host, port, size, hold), range(clients)))


@contextmanager
def normal_traffic(host: str, port: int, photo: bytes, gap: float = 0.05) -> Iterator[list[Answer]]:
    """Send an ordinary photo one request after another until the block ends; the list fills with answers."""
    answers: list[Answer] = []
    with _repeated(lambda: answers.append(post_bytes(host, port, photo, "normal.jpg", timeout=30)), gap,
                   "normal-uploads"):
        yield answers


def p99_ms(answers: Sequence[Answer], keep: Callable[[Answer], bool] = lambda a: True) -> float:
    """Return the 99th percentile latency, in ms, of the answers ``keep`` selects (NaN for none)."""
    chosen = [a.seconds * 1000 for a in answers if keep(a)]
    return float(np.percentile(chosen, 99)) if chosen else float("nan")


def bad_5xx(answers: Sequence[Answer]) -> list[Answer]:
    """Return the answers that are a 5xx other than 503 (the only one a server may give under attack)."""
    return [a for a in answers if a.status >= 500 and a.status != 503]


def statuses(answers: Sequence[Answer]) -> Counter[int]:
    """Count the answers by status (0: none came)."""
    return Counter(a.status for a in answers)


@dataclass
class Attack:
    """What one full attack measured: the server's memory, every answer, and how fast it came back."""

    record: Sampled
    quiet: list[Answer]     # normal uploads before the attack
    bombs: list[Answer]
    held: list[Answer]
    normal: list[Answer]    # normal uploads during the attack
    settle_seconds: float
    settled: dict[int, float]

    def failed(self) -> list[Answer]:
        """Return the attack's answers that never came or are a 5xx other than 503."""
        answers = self.bombs + self.held + self.normal
        return [a for a in answers if a.status == 0] + bad_5xx(answers)

    def settled_within(self, margin: float) -> bool:
        """Tell whether every worker came back within ``margin`` MB of its RSS before the attack."""
        return all(self.settled[pid] - self.record.before[pid] <= margin for pid in self.record.workers)


def attack(host: str, port: int, master: int, photo: bytes, files: Sequence[Bomb], held: int = 96,
           size: int = 16 * 2**20, hold: float = 12.0, quiet: int = 40, margin: float = 50.0) -> Attack:
    """Time ``quiet`` normal uploads, then send the bombs two at a time and ``held`` held uploads at once.

    The held uploads run in another process (their threads would starve this one's timing of the GIL);
    normal uploads keep coming throughout. Then wait up to 10 s for the workers to settle within ``margin``.
    """
    from concurrent.futures import ProcessPoolExecutor

    calm = [post_bytes(host, port, photo, "quiet.jpg", timeout=30) for _ in range(quiet)]
    with sampled(master) as record, normal_traffic(host, port, photo) as normal, ProcessPoolExecutor(1) as pool:
        holding = pool.submit(held_uploads, host, port, held, size, hold)
        bombed = send_bombs(host, port, files, concurrency=2, rounds=2)
        kept = holding.result(timeout=300)
    took, settled = settle(record, within=10.0, margin=margin)
    return Attack(record, calm, bombed, kept, list(normal), took, settled)


#: The memory scenario's two servers: the defaults, and the same server with its memory limits off.
BOUNDED, UNBOUNDED = "defaults (bounded)", "limits off"
LIMITS_OFF = {"SNAKES_MAX_DECODE_BYTES": "0", "SNAKES_INPUT_BUDGET_MB": "100000"}


@contextmanager
def _gunicorn(model: str, config: str, log: str, environ: dict[str, str]) -> Iterator[tuple[int, int]]:
    """Run our gunicorn (2 workers, feedback off) on a loopback port until the block ends; yield (port, pid)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from .processes import free_port

    port = free_port()
    app = "wsgi:app" if (Path(config).parent / "wsgi.py").exists() else "snakes_web:create_app()"
    env = {**os.environ, "SNAKES_MODEL": model, "SNAKES_WORKERS": "2", "SNAKES_FEEDBACK": "false",
           "SNAKES_DRAIN_SECONDS": "0", "SNAKES_LOG_LEVEL": "info", **environ}
    env.pop("PORT", None)
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", config, "--bind", f"127.0.0.1:{port}",
                                    app], cwd=Path(config).parent, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        began = time.monotonic()
        while len(children(process.pid)) < 2 or post_bytes("127.0.0.1", port, b"", "ping", timeout=5).status == 0:
            if process.poll() is not None or time.monotonic() - began > 300:
                raise RuntimeError(f"the memory scenario's gunicorn did not start; see {log}")
            time.sleep(0.2)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=60)


def memory_section(model: str, config: str, photo: bytes, work: str, smoke: bool = False) -> str:
    """Attack the int8 server with its defaults and with its memory limits off; return the report's section."""
    from ..bombs import bombs as make_bombs

    files = make_bombs(2.0 if smoke else 48.0)  # 2 MP in smoke mode
    held, size, hold = (8, 2**20, 1.0) if smoke else (96, 16 * 2**20, 12.0)
    rows: list[tuple[str, Attack]] = []
    for name, environ in ((BOUNDED, {}), (UNBOUNDED, LIMITS_OFF)):
        print(f"  memory: {name} ...", flush=True)
        with _gunicorn(model, config, f"{work}/memory-{len(rows)}.log", environ) as (port, master):
            for _ in range(6):
                post_bytes("127.0.0.1", port, photo, "warm.jpg")
            rows.append((name, attack("127.0.0.1", port, master, photo, files, held, size, hold,
                                      quiet=10 if smoke else 40)))
    return _memory_table(rows, len(files), held, size, hold)


def _memory_table(rows: Sequence[tuple[str, Attack]], kinds: int, held: int, size: int, hold: float) -> str:
    """Write the memory scenario's table and what it means."""
    lines = ["", "## Memory: decode bombs and held uploads", "",
             f"The int8 server, 2 workers, feedback off, attacked at once by {kinds} kinds of decode bomb "
             "(`tools/bombs.py`, two at a time, twice each) and by "
             f"{held} held uploads of {size // 2**20} MB (sent but their last 4 KB, held {hold:g} s), while an "
             "ordinary photo is uploaded one request after another. RSS of master and workers from /proc every "
             f"20 ms. *{UNBOUNDED}*: the same server with `SNAKES_MAX_DECODE_BYTES=0` and "
             "`SNAKES_INPUT_BUDGET_MB=100000` (decoding still reduces early, and memory is still given back).", "",
             "| server | RSS before MB | peak MB | growth MB | per worker peak MB | settled per worker MB "
             "| settled in s | bombs 200/413 | held 503 | normal 200/503 | normal p99 ms quiet → attack |",
             "|---|---:|---:|---:|---|---|---:|---|---:|---|---|"]
    for name, a in rows:
        r = a.record
        peaks = " / ".join(f"{r.peak.get(pid, 0):.0f}" for pid in r.workers)
        settled = " / ".join(f"{a.settled[pid]:.0f} ({a.settled[pid] - r.before[pid]:+.0f})" for pid in r.workers)
        bombs, held_, normal = statuses(a.bombs), statuses(a.held), statuses(a.normal)
        lines.append(f"| {name} | {r.before_total:.0f} | {r.peak_total:.0f} | {r.growth:+.0f} | {peaks} | {settled} "
                     f"| {a.settle_seconds:.1f} | {bombs[200]}/{bombs[413]} | {held_[503]} of {len(a.held)} "
                     f"| {normal[200]}/{normal[503]} | {p99_ms(a.quiet):.0f} → "
                     f"{p99_ms(a.normal, lambda x: x.status == 200):.0f} |")
    return "\n".join(lines) + "\n"
