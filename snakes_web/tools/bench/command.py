"""`snakes-web bench`: in-process ``learn.predict`` against our server on both backends, in one run.

On the same generated images and the same model, it measures

1. ``learn.predict(raw_bytes)`` in one process: the baseline every fastai tutorial serves with;
2. the fastai backend (``.pkl``) through our gunicorn on loopback;
3. the ONNX backend (``.onnx``, converted at the start of the run) through our gunicorn on loopback;
3s. the same ONNX server with gunicorn's old ``sync`` workers (``--worker-class sync --threads 1`` on the
    command line), so the threaded worker is compared with what it replaced in the same run;

each for a fixed time after a warm-up. The HTTP load comes from a second process (a Python client
holding a fixed number of requests in flight), so the server's CPU time is the server's. It reports
images/s, p50/p99 latency, RSS per worker, the time from process start to the first answer, and each
image rate as a ratio against (1) on the same image, then writes the table to ``docs/benchmarks.md``.
On the servers of (3) and (3s) it then holds slow uploads and slow URL fetches open while it times
normal uploads (``slow_clients``): what a few slow phones do to everyone else.
Each scenario and the client run in their own processes: the bench itself never imports torch.
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import re
import selectors
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from itertools import zip_longest
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .in_process import (
    agreement_section,
    batching,
    batching_section,
    breakdown,
    breakdown_section,
    check_photos,
    meets_bar,
)

ROOT = Path(__file__).resolve().parents[3]  # the repository: snakes_web/tools/bench/ is three below
#: The images every scenario classifies: what phones and web pages send.
IMAGES = {"1 MP JPEG": "photo-1mp.jpg", "12 MP JPEG": "photo-12mp.jpg", "PNG with alpha": "alpha-1mp.png"}
THREADED = "(3) ONNX backend, HTTP"
#: The two learn.predict baselines: the strongest honest one (ratios are against it) and the usual one.
STRONGEST, WRITTEN = "strongest", "written"
BASELINES = {STRONGEST: "(1) learn.predict, strongest", WRITTEN: "(1w) learn.predict, as usually written"}
SYNC = "(3s) ONNX backend, HTTP, sync workers (before)"
INT8 = "(4) ONNX int8, HTTP"
#: What `make run` serves (the Makefile's SNAKES_MODEL): the int8 export, which met the bar
#: (``bench_model.DEFAULT_BAR``) on every check set and class; the targets are measured on it.
SERVES_INT8 = True
#: gunicorn's command line overrides gunicorn.conf.py: the sync workers served before issue 14.
SYNC_ARGS = ("--worker-class", "sync", "--threads", "1")
#: The body a slow upload announces (and a slow image), in bytes.
SLOW_UPLOAD_BYTES = 200_000
#: Seconds the bench waits at most for the server to start fetching every slow URL.
HOLD_IN_S = 3.0


@dataclass
class Load:
    """What one scenario measured on one image."""

    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int = 0
    total: int = 0                 # requests sent, warm-up included (for CPU per image)
    cpu_ms_per_image: float = float("nan")  # CPU time of the serving processes per image
    client_cpu_ms: float = float("nan")     # CPU time of the load generator per request

    @property
    def rate(self) -> float:
        """Images per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Return the q-th percentile latency in milliseconds."""
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


@dataclass
class Scenario:
    """One way of serving: its loads per image, memory and start-up time."""

    name: str
    loads: dict[str, Load] = field(default_factory=dict)
    rss_mb: list[float] = field(default_factory=list)
    start_to_first_answer_s: float = float("nan")
    note: str = ""
    slow: SlowResult | None = None


@dataclass(frozen=True)
class SlowPlan:
    """How the slow-clients measurement runs on one server."""

    uploads: int          # slow uploads held open (N)
    urls: int             # slow URL fetches held open (M)
    normal: int           # normal uploads sent one after another while they are held (K)
    timeout: float        # client timeout of each normal upload, in seconds
    spread: float         # seconds the normal uploads are spread over (so they straddle the server's cuts)
    fetch_timeout: float  # SNAKES_FETCH_TIMEOUT of the server
    give_up: float        # seconds after the first slow socket opened that the bench stops waiting for answers


@dataclass
class SlowResult:
    """What the slow-clients measurement saw on one server."""

    plan: SlowPlan
    normal: Load                 # the normal uploads (errors: not answered 200)
    held_uploads: int            # the fewest slow uploads open when a normal upload started
    held_urls: int               # the fewest slow URLs open when a normal upload started
    fetching: int                # the fewest slow URLs the image server was sending then
    cuts: int                    # slow uploads the server ended while they were held (each re-opened)
    url_restarts: int            # the same for slow URLs
    upload_ends: dict[str, int]  # how every slow upload ended: a status, "no answer", "closed", "reset" …
    url_ends: dict[str, int]


# --- images ----------------------------------------------------------------------------------

def photo_like(width: int, height: int, seed: int) -> Image.Image:
    """Return a photo-like RGB image: smooth colour fields, edges and sensor-like noise."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 255, (9, 12, 3), dtype=np.uint8)).resize((width, height),
                                                                                      Image.Resampling.BICUBIC)
    pixels = np.asarray(coarse, dtype=np.int16)
    stripes = ((np.arange(width)[None, :] // max(1, width // 40)) % 2 * 40 - 20).astype(np.int16)
    noise = rng.normal(0, 6, (height, width, 3)).astype(np.int16)
    return Image.fromarray(np.clip(pixels + stripes[:, :, None] + noise, 0, 255).astype(np.uint8))


def write_images(folder: Path, scale: float = 1.0) -> dict[str, Path]:
    """Write the bench images: a 1 MP and a 12 MP JPEG (quality 90) and a 1 MP PNG with alpha."""
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {"1 MP JPEG": (1152, 864), "12 MP JPEG": (4032, 3024), "PNG with alpha": (1024, 1024)}
    paths = {}
    for index, (label, name) in enumerate(IMAGES.items()):
        width, height = (max(32, int(v * scale)) for v in sizes[label])
        image = photo_like(width, height, seed=index)
        path = folder / name
        if label == "PNG with alpha":
            alpha = np.linspace(64, 255, width * height).reshape(height, width).astype(np.uint8)
            image.putalpha(Image.fromarray(alpha))
            image.save(path, "PNG")
        else:
            image.save(path, "JPEG", quality=90)
        paths[label] = path
    return paths


# --- the client process ----------------------------------------------------------------------

def multipart(data: bytes, filename: str) -> tuple[bytes, str]:
    """Encode ``data`` as a multipart/form-data body with one field ``file``."""
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post(host: str, port: int, body: bytes, content_type: str) -> int:
    """POST one image to /api/v1/predict on a fresh connection; return the status."""
    connection = http.client.HTTPConnection(host, port, timeout=120)
    try:
        connection.request("POST", "/api/v1/predict", body=body,
                           headers={"Content-Type": content_type, "Content-Length": str(len(body))})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def raw_request(host: str, port: int, body: bytes, content_type: str) -> bytes:
    """Return the bytes of one HTTP/1.1 POST to /api/v1/predict, built once and sent as is."""
    head = (f"POST /api/v1/predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    return head + body


def send(host: str, port: int, request: bytes) -> int:
    """Send a prepared request on a new connection, read the answer to the end; return the status."""
    with socket.create_connection((host, port), timeout=120) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    return int(answer[9:12]) if answer.startswith(b"HTTP/1.") else 0


def drive(host: str, port: int, image: Path, concurrency: int, warmup: float, duration: float) -> Load:
    """Keep ``concurrency`` requests in flight: ``warmup`` seconds unmeasured, then ``duration`` measured.

    Requests are prepared once and sent over plain sockets: the load generator shares the cores
    with the server, so it does as little per request as it can.
    """
    request = raw_request(host, port, *multipart(image.read_bytes(), image.name))
    start = time.monotonic()
    measure_from, stop_at = start + warmup, start + warmup + duration
    latencies: list[float] = []
    counts = {"errors": 0, "total": 0}
    lock = threading.Lock()

    def run() -> None:
        while True:
            began = time.monotonic()
            if began >= stop_at:
                return
            status = send(host, port, request)
            ended = time.monotonic()
            with lock:
                counts["total"] += 1
                if began >= measure_from and ended <= stop_at:  # only requests wholly inside the window
                    latencies.append((ended - began) * 1000)
                    counts["errors"] += status != 200

    threads = [threading.Thread(target=run) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Load(len(latencies), duration, latencies, counts["errors"], counts["total"])


# --- the baseline process --------------------------------------------------------------------

def baseline(model: Path, images: dict[str, Path], warmup: float, duration: float, launched: float,
             style: str = STRONGEST) -> dict[str, Any]:
    """Time ``learn.predict``, one image after another, in the ``style`` of ``BASELINES``."""
    import torch

    from snakes_web.model.fastai_backend import load_learner_quietly
    from snakes_web.model.quiet import quiet

    if style == STRONGEST:
        torch.set_num_threads(torch_threads())  # every core this process may use
    learner = load_learner_quietly(model)  # no ProgressCallback: no bar in either style
    predict = _strongest_predict(learner) if style == STRONGEST else learner.predict
    first = next(iter(images.values())).read_bytes()
    with quiet(), learner.no_bar(), learner.no_logging():
        predict(first)
    result: dict[str, Any] = {"start_to_first_answer_s": time.time() - launched, "loads": {}}
    for label, path in images.items():
        data = path.read_bytes()
        latencies: list[float] = []
        with quiet(), learner.no_bar(), learner.no_logging():
            deadline = time.monotonic() + warmup
            while time.monotonic() < deadline:
                predict(data)
            start, cpu = time.monotonic(), time.process_time()  # process time: every torch thread
            while time.monotonic() - start < duration or not latencies:
                began = time.monotonic()
                predict(data)
                latencies.append((time.monotonic() - began) * 1000)
            seconds, cpu = time.monotonic() - start, time.process_time() - cpu
        result["loads"][label] = {"requests": len(latencies), "seconds": seconds, "latencies_ms": latencies,
                                  "total": len(latencies), "cpu_ms_per_image": cpu * 1000 / len(latencies)}
    result["rss_mb"] = [rss_mb(os.getpid())]
    result["threads"] = torch.get_num_threads()
    return result


def _strongest_predict(learner: Any) -> Callable[[bytes], Any]:
    """Return bytes → ``learn.predict`` of the image decoded once (``PILImage.create``), in inference mode."""
    import torch

    from snakes_web.model.quiet import quiet

    with quiet():
        from fastai.vision.core import PILImage

    def predict(data: bytes) -> Any:
        with torch.inference_mode():
            return learner.predict(PILImage.create(data))

    return predict


# --- servers ---------------------------------------------------------------------------------

def rss_mb(pid: int) -> float:
    """Return a process's resident memory in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pids: Sequence[int]) -> float:
    """Return the user + system CPU time the processes have used so far, in seconds (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    return total / ticks


def children(pid: int) -> list[int]:
    """Return the child processes of ``pid`` (gunicorn's workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def free_port() -> int:
    """Return a TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(name: str, model: Path, images: dict[str, Path], args: argparse.Namespace, log: Path,
          extra: Sequence[str] = (), slow: SlowPlan | None = None) -> Scenario:
    """Start our gunicorn on ``model`` (``extra``: more gunicorn arguments), time its first answer,
    load it with each image, then (with ``slow``) measure it under slow clients, and stop it."""
    port = free_port()
    env = {**os.environ, "SNAKES_MODEL": str(model), "SNAKES_LOG_LEVEL": "info"}  # info: the sizing line
    if args.workers:
        env["SNAKES_WORKERS"] = str(args.workers)
    if slow is not None:  # the slow URLs are served by the bench, on loopback
        env.update(SNAKES_ALLOW_PRIVATE_URLS="true", SNAKES_FETCH_TIMEOUT=f"{slow.fetch_timeout:g}")
    env.pop("PORT", None)
    env["SNAKES_DRAIN_SECONDS"] = "0"  # stopped with SIGTERM when measured: no balancer to drain for
    first = next(iter(images.values()))
    body, content_type = multipart(first.read_bytes(), first.name)
    scenario = Scenario(name)
    launched = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(args.config), "--bind",
                                    f"127.0.0.1:{port}", *extra, "wsgi:app" if (args.config.parent / "wsgi.py").exists()
                                    else "snakes_web:create_app()"],
                                   cwd=args.config.parent, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name}: gunicorn exited; see {log}")
            try:
                if post("127.0.0.1", port, body, content_type) == 200:
                    break
            except OSError:
                time.sleep(0.02)
            if time.monotonic() - launched > 300:
                raise RuntimeError(f"{name}: no answer within 300 s; see {log}")
        scenario.start_to_first_answer_s = time.monotonic() - launched
        workers = children(process.pid)
        for label, path in images.items():
            serving = [process.pid, *workers]
            before = cpu_seconds(serving)
            load = client(port, path, args)
            load.cpu_ms_per_image = (cpu_seconds(serving) - before) * 1000 / max(1, load.total)
            scenario.loads[label] = load
        scenario.rss_mb = [rss_mb(pid) for pid in workers]
        plan = re.search(r"(\d+) workers? × (\d+) inference thread", log.read_text())
        scenario.note = f"{plan.group(1)} worker(s) × {plan.group(2)} thread(s)" if plan else ""
        if extra:
            scenario.note += f" (`{' '.join(extra)}`)"
        if slow is not None:
            print(f"  slow clients: {slow.uploads} slow uploads, {slow.urls} slow URLs, "
                  f"{slow.normal} normal uploads ...", flush=True)
            scenario.slow = slow_clients(port, first, slow)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return scenario


def run_baseline(style: str, args: argparse.Namespace, images: dict[str, Path]) -> Scenario:
    """Time one learn.predict baseline in its own process (torch's threads are per process)."""
    print(f"{BASELINES[style]} ...", flush=True)
    launched = time.time()
    out = subprocess.run([sys.executable, "-m", "snakes_web.tools.bench.command", "--role", "baseline",
                          "--style", style,
                          "--model", str(args.model), "--images", json.dumps({k: str(v) for k, v in images.items()}),
                          "--warmup", str(args.warmup), "--duration", str(args.duration),
                          "--launched", str(launched)], capture_output=True, text=True, check=True)
    raw = json.loads(out.stdout)
    how = ("torch.set_num_threads(cores), image decoded once, inference_mode" if style == STRONGEST
           else "raw bytes, torch's default threads")
    return Scenario(BASELINES[style], {k: Load(**v) for k, v in raw["loads"].items()}, raw["rss_mb"],
                    raw["start_to_first_answer_s"], f"1 process × {raw['threads']} threads; {how}")


def client(port: int, image: Path, args: argparse.Namespace) -> Load:
    """Run the load generator in its own process and return what it measured."""
    import resource

    command = [sys.executable, "-m", "snakes_web.tools.bench.command", "--role", "client", "--port", str(port),
               "--image", str(image), "--concurrency", str(args.concurrency),
               "--warmup", str(args.warmup), "--duration", str(args.duration)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # counts children once they are waited for
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=args.duration * 10 + 300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = Load(**json.loads(out.stdout))
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    load.client_cpu_ms = used * 1000 / max(1, load.total)
    return load


# --- slow clients ----------------------------------------------------------------------------

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


# --- report ----------------------------------------------------------------------------------

def machine() -> str:
    """Describe the machine: CPU, cores, memory, load, versions."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    from snakes_web.serving.sizing import available_cores, available_memory_mb

    versions = []
    for package in ("onnxruntime", "torch", "fastai", "pillow", "numpy", "gunicorn", "flask"):
        try:
            from importlib.metadata import version

            versions.append(f"{package} {version(package)}")
        except Exception:  # noqa: BLE001 - a package that is not installed is just not listed
            pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"{cpu}; {available_cores()} usable cores ({os.cpu_count()} online); "
            f"{available_memory_mb()} MB available; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}; {', '.join(versions)}; load average before the run: {load}")


def table(scenarios: list[Scenario], labels: Sequence[str]) -> str:
    """Render the results as a Markdown table with ratios against the first scenario."""
    base = scenarios[0]
    written = next((s for s in scenarios if s.name == BASELINES[WRITTEN]), base)
    lines = ["| scenario | image | images/s | × learn.predict | × as written | p50 ms | p99 ms | CPU ms/image | CPU × "
             "| errors |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for scenario in scenarios:
        for label in labels:
            load, reference = scenario.loads[label], base.loads[label]
            ratio = load.rate / reference.rate if reference.rate else float("nan")
            usual = load.rate / written.loads[label].rate if written.loads[label].rate else float("nan")
            saving = reference.cpu_ms_per_image / load.cpu_ms_per_image if load.cpu_ms_per_image else float("nan")
            lines.append(f"| {scenario.name} | {label} | {load.rate:.1f} | {ratio:.2f}× | {usual:.2f}× | "
                         f"{load.percentile(50):.0f} | {load.percentile(99):.0f} | {load.cpu_ms_per_image:.1f} | "
                         f"{saving:.2f}× | {load.errors} |")
    lines += ["", "| scenario | set-up | RSS per worker (MB) | process start → first answer (s) "
                  "| load generator CPU ms/request |",
              "|---|---|---|---:|---:|"]
    for scenario in scenarios:
        rss = ", ".join(f"{value:.0f}" for value in scenario.rss_mb)
        client_ms = [load.client_cpu_ms for load in scenario.loads.values() if not math.isnan(load.client_cpu_ms)]
        client = f"{statistics.mean(client_ms):.1f}" if client_ms else "—"
        lines.append(f"| {scenario.name} | {scenario.note} | {rss} | {scenario.start_to_first_answer_s:.2f} "
                     f"| {client} |")
    return "\n".join(lines)


def versus_table(scenarios: list[Scenario], labels: Sequence[str]) -> str:
    """Render images/s of the threaded server (3) over the sync one (3s), per image."""
    named = {scenario.name: scenario for scenario in scenarios}
    threaded, sync = named[THREADED], named[SYNC]
    lines = ["| image | (3) threaded images/s | (3s) sync images/s | threaded ÷ sync | ≥ 0.95 "
             "| CPU ms/image threaded / sync |",
             "|---|---:|---:|---:|---|---:|"]
    for label in labels:
        new, old = threaded.loads[label], sync.loads[label]
        ratio = new.rate / old.rate if old.rate else float("nan")
        lines.append(f"| {label} | {new.rate:.1f} | {old.rate:.1f} | {ratio:.2f}× | {'yes' if ratio >= 0.95 else 'no'} "
                     f"| {new.cpu_ms_per_image:.1f} / {old.cpu_ms_per_image:.1f} |")
    return "\n".join(lines)


def counted(outcomes: dict[str, int]) -> str:
    """Render how slow sockets ended, commonest first: ``408 × 96, no answer × 2``."""
    return ", ".join(f"{outcome} × {count}" for outcome, count in Counter(outcomes).most_common()) or "—"


def slow_table(scenarios: list[Scenario]) -> str:
    """Render the slow-clients measurement of each server that had one."""
    configs = {THREADED: "threaded (now)", SYNC: "sync (before)"}
    lines = ["| config | slow uploads held | slow URLs held | normal uploads answered 200 / sent | p50 ms | "
             "p99 ms | max ms | slow uploads ended as | slow URLs ended as |",
             "|---|---|---|---:|---:|---:|---:|---|---|"]
    for scenario in scenarios:
        if (slow := scenario.slow) is None:
            continue
        normal = slow.normal
        lines.append(f"| {configs.get(scenario.name, scenario.name)} | {slow.held_uploads} of {slow.plan.uploads} "
                     f"(re-opened: {slow.cuts}) | {slow.held_urls} of {slow.plan.urls} (being fetched: "
                     f"{slow.fetching}; re-opened: {slow.url_restarts}) | {normal.total - normal.errors} / "
                     f"{normal.total} | {normal.percentile(50):.0f} | {normal.percentile(99):.0f} | "
                     f"{max(normal.latencies_ms):.0f} | {counted(slow.upload_ends)} | {counted(slow.url_ends)} |")
    return "\n".join(lines)


def slow_section(scenarios: list[Scenario]) -> str:
    """Return the report's slow-clients paragraph and table, or nothing when it was not measured."""
    plans = {scenario.name: scenario.slow.plan for scenario in scenarios if scenario.slow is not None}
    if THREADED not in plans or SYNC not in plans:
        return ""
    threaded, sync = plans[THREADED], plans[SYNC]
    spread = f", spread over {threaded.spread:g} s so they straddle the server's cuts" if threaded.spread else ""
    return f"""
**Slow clients.** On the servers of (3) and (3s), after their load (both started with
`SNAKES_ALLOW_PRIVATE_URLS=true SNAKES_FETCH_TIMEOUT={threaded.fetch_timeout:g}`, otherwise the defaults), the bench
holds {threaded.uploads} slow uploads open (headers announcing `Content-Length: {SLOW_UPLOAD_BYTES}` of multipart,
then 1 byte a second) and {threaded.urls} slow URLs (`{{"url": "http://127.0.0.1:…/slow.jpg"}}`, whose image
server, run by the bench, answers 200 `image/jpeg` and then sends 1 byte a second), opened in turn.
A slow socket the server ends is re-opened at once (*re-opened* counts them), so that all stay held
while {threaded.normal} normal uploads of the 1 MP JPEG go one after another, each on a new connection{spread},
with a client timeout of {threaded.timeout:g} s (a timeout is a failure, its latency the timeout). The sync
server gets only {sync.normal} normal uploads, with a {sync.timeout:g} s timeout: its workers are all held by
slow clients, so every normal upload is expected to time out, and the cap keeps the bench short.
*Held*: the fewest open when a normal upload started (*being fetched*: how many of the slow URLs
the image server was then sending to, i.e. whose fetch the server had started). *Ended as*: how
every slow socket ended, re-opened ones included — the status it got, or *no answer* when the bench
gave up, {threaded.give_up:g} s after the first slow socket opened and at least 2 s after the last normal
upload (*closed*/*reset*: the server closed it without an answer).
Target for the threaded server: p99 < 1 s.

{slow_table(scenarios)}
"""


def versus_section(scenarios: list[Scenario], labels: Sequence[str]) -> str:
    """Return the report's threaded-vs-sync paragraph and table."""
    return f"""
**Threaded vs sync.** (3) and (3s) serve the same ONNX model with the same `gunicorn.conf.py`; (3s)
adds `{' '.join(SYNC_ARGS)}` on gunicorn's command line (which overrides the file): the sync
workers the server ran before the threaded one. images/s of (3) over (3s), same image, this run
(target ≥ 0.95), and the CPU per image of both (steadier on a shared machine):

{versus_table(scenarios, labels)}
"""


def report(scenarios: list[Scenario], labels: Sequence[str], args: argparse.Namespace, about: str,
           extra: str) -> str:
    """Return the whole docs/benchmarks.md text."""
    command = "snakes-web bench " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else sys.argv[1:])
    return f"""# Benchmarks

Written by `snakes-web bench` (`make bench`) on {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}.
Command: `{command.strip()}`

**Machine:** {about}

**Method.** One run, the same model (`{args.model.name}` and its ONNX conversion) and the same
generated images ({", ".join(labels)}). (1) `learn.predict` in one process, one image after another,
in its strongest honest configuration: `torch.set_num_threads` to the cores, no progress bar, the image
decoded once per call (`PILImage.create(bytes)`) and `torch.inference_mode()`; every *×* ratio is against
it. (1w) the same call as usually written (`learn.predict(raw_bytes)`, torch's default threads), the
baseline every fastai tutorial serves with; *× as written* is against it. (2), (3)
(and (4), the int8 export; `--no-int8` leaves it out): our gunicorn (`gunicorn.conf.py`, threaded workers sized
from the cores and memory; (3s): sync workers, see below) on loopback, loaded by a separate client
process keeping {args.concurrency} requests in flight, each a multipart upload to `/api/v1/predict` on
a new connection. Every measurement: {args.warmup:g} s warm-up, then {args.duration:g} s counted.
Ratios are against (1) (and (1w)) on the same image, in this run.
*CPU ms/image* is the CPU time (user + system, every thread) the serving processes spent per image —
for the servers the gunicorn master and workers, warm-up included; *CPU ×* is (1)'s CPU per image
over this row's. On a machine shared with other work, images/s and latencies move with the
neighbours' load; CPU per image moves much less, so *CPU ×* is the steadier comparison. Analysis
and profiles: [performance.md](performance.md).
The load generator runs on the same cores; its CPU per request (its start-up included) is in the last column.
RSS is per worker after the load; start → first answer is from launching the process to the first
200 answer (for (1) and (1w): to the first `learn.predict` result).

{table(scenarios, labels)}
{versus_section(scenarios, labels) if any(s.name == SYNC for s in scenarios) else ""}{slow_section(scenarios)}{extra}"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench (or, with ``--role``, one of its helper processes)."""
    parser = argparse.ArgumentParser(prog="snakes-web bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def default_config() -> Path:
    """Return the project's gunicorn.conf.py: in the working directory, else beside the package."""
    here = Path("gunicorn.conf.py")
    return here.resolve() if here.is_file() else ROOT / "gunicorn.conf.py"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the bench's options (shared by `snakes-web bench` and `python -m snakes_web.tools.bench.command`)."""
    parser.add_argument("--model", type=Path, default=Path("models/export.pkl"), help="the fastai export.pkl")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per scenario and image")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load before each")
    parser.add_argument("--concurrency", type=int, default=4, help="requests the client keeps in flight")
    parser.add_argument("--workers", type=int, default=0, help="gunicorn workers (0: the config's sizing)")
    parser.add_argument("--config", type=Path, default=default_config(), help="gunicorn config file")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"), help="where to write the table")
    parser.add_argument("--smoke", action="store_true", help="tiny images, 0.3 s per measurement: checks it runs")
    parser.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True,
                        help="measure the int8 export too, and its agreement with fp32 per class (default: yes; "
                             "--no-int8 skips it)")
    parser.add_argument("--slow", type=int, default=None, metavar="N",
                        help="slow uploads and slow URLs (N of each) held open while normal uploads are timed, "
                             "on the ONNX server threaded and sync (default 32, 2 with --smoke; 0: skip)")
    parser.add_argument("--role", choices=["bench", "baseline", "client"], default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--style", choices=list(BASELINES), default=STRONGEST, help=argparse.SUPPRESS)
    parser.add_argument("--image", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--images", help=argparse.SUPPRESS)
    parser.add_argument("--launched", type=float, default=0.0, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Dispatch on the role: the bench itself, or one of its helper processes."""
    if args.role == "client":
        load = drive("127.0.0.1", args.port, args.image, args.concurrency, args.warmup, args.duration)
        print(json.dumps(load.__dict__))
        return 0
    if args.role == "baseline":
        images = {label: Path(path) for label, path in json.loads(args.images).items()}
        print(json.dumps(baseline(args.model, images, args.warmup, args.duration, args.launched, args.style)))
        return 0
    return bench(args)


def bench(args: argparse.Namespace) -> int:
    """Run the scenarios (and the slow clients on the ONNX servers) and write the report."""
    if args.smoke:
        args.duration, args.warmup = 0.3, 0.1
    about = machine()
    with tempfile.TemporaryDirectory(prefix="snakes-bench-") as scratch:
        work = Path(scratch)
        images = write_images(work / "images", scale=0.25 if args.smoke else 1.0)
        labels = list(images)
        onnx_model = work / "model.onnx"
        print(f"converting {args.model} to ONNX ...", flush=True)
        subprocess.run([sys.executable, "-m", "snakes_web", "export-onnx", str(args.model), str(onnx_model)],
                       check=True, stdout=subprocess.DEVNULL)
        scenarios = [run_baseline(style, args, images) for style in BASELINES]
        servers: list[tuple[str, Path, Sequence[str]]] = [
            ("(2) fastai backend, HTTP", args.model, ()), (THREADED, onnx_model, ()), (SYNC, onnx_model, SYNC_ARGS)]
        extra, measured, models = "", None, {"fp32": onnx_model}
        if args.int8:
            int8_model = work / "model-int8.onnx"
            print("quantizing to int8 and checking it on photos and positives of every class ...", flush=True)
            out = subprocess.run([sys.executable, "-m", "snakes_web.tools.bench.in_process", str(args.model),
                                  str(onnx_model), str(int8_model), "--photos",
                                  json.dumps({k: str(v) for k, v in check_photos(images).items()})],
                                 capture_output=True, text=True, check=True)
            measured = json.loads(out.stdout)
            servers.append((INT8, int8_model, ()))
            models["int8"] = int8_model
            extra = agreement_section(measured) + int8_accuracy(onnx_model, int8_model, images)
        plans = slow_plans(args)
        for index, (name, model, flags) in enumerate(servers):
            print(f"{name} ...", flush=True)
            scenarios.append(serve(name, model, images, args, work / f"server-{index}.log", flags, plans.get(name)))
        print("batching and the per-stage breakdown, in process ...", flush=True)
        served_name, served_model = (INT8, models["int8"]) if SERVES_INT8 and args.int8 else (THREADED, onnx_model)
        from snakes_web.model.onnx_backend import OnnxPredictor

        sample = OnnxPredictor(onnx_model, threads=1).prepare(Image.open(images[labels[0]]).convert("RGB"))
        repeats = 2 if args.smoke else 5
        extra += batching_section(batching(models, sample, repeats=repeats), repeats)
        stages = breakdown(served_model, images, labels[:2], times=2 if args.smoke else 10)
        served_row = next(s for s in scenarios if s.name == served_name)
        extra += breakdown_section(stages, served_name, labels[1], labels[0],
                                   {label: load.cpu_ms_per_image for label, load in served_row.loads.items()})
        extra = targets_section(scenarios, labels, served_name, measured) + extra
        print("heatmaps: ?explain= against none ...", flush=True)
        from .explain import explain_section

        extra += explain_section(args.model, onnx_model, images["1 MP JPEG"], "1 MP JPEG", work, args.duration * 2)
    text = report(scenarios, labels, args, about, extra=extra)
    print(table(scenarios, labels))
    print(f"\n{versus_table(scenarios, labels)}")
    if plans:
        print(f"\n{slow_table(scenarios)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


def int8_accuracy(fp32: Path, int8: Path, images: dict[str, Path]) -> str:
    """Compare the int8 model with fp32 on the bench images and the repository's test photos."""
    from snakes_web.imaging.images import load_image
    from snakes_web.model.onnx_backend import OnnxPredictor

    reference, quantized = OnnxPredictor(fp32, threads=1), OnnxPredictor(int8, threads=1)
    photos = {path.name: path for path in sorted((ROOT / "tests" / "data").glob("*.jpg"))}
    rows = ["", "**int8 against fp32** (same preprocessing; top-1, the top-3 in order, and the largest "
            "probability difference over all classes):", "",
            "| image | fp32 top-1 | int8 top-1 | same top-1 | same top-3 | max abs Δp |",
            "|---|---|---|---|---|---:|"]
    for label, path in {**photos, **images}.items():
        image = load_image(path.read_bytes(), 100_000_000)
        ours, theirs = ({p.label: p.probability for p in model.predict(image)} for model in (quantized, reference))
        top = [max(d, key=d.__getitem__) for d in (theirs, ours)]
        species = [top3(d) for d in (theirs, ours)]
        delta = max(abs(ours[k] - theirs[k]) for k in ours)
        rows.append(f"| {label} | {top[0]} | {top[1]} | {'yes' if top[0] == top[1] else 'NO'} | "
                    f"{'yes' if species[0] == species[1] else 'no'} | {delta:.5f} |")
    return "\n".join(rows) + "\n"


def targets_section(scenarios: list[Scenario], labels: Sequence[str], served: str,
                    measured: dict[str, Any] | None) -> str:
    """Render the issue's targets against this run: speed-up, big-over-small JPEG cost, int8 agreement."""
    named = {scenario.name: scenario for scenario in scenarios}
    base, row = named[BASELINES[STRONGEST]], named[served]
    small, big = labels[0], labels[1]
    speed = row.loads[small].rate / base.loads[small].rate if base.loads[small].rate else float("nan")
    rate_ratio = row.loads[small].rate / row.loads[big].rate if row.loads[big].rate else float("nan")
    cpu_ratio = row.loads[big].cpu_ms_per_image / row.loads[small].cpu_ms_per_image
    lines = ["", f"**Targets** (this run; the served model is what `make run` serves: {served}):", "",
             "| target | measured | met |", "|---|---:|---|",
             f"| served images/s ≥ 5× the strongest `learn.predict` ({small}) | {speed:.2f}× | "
             f"{'yes' if speed >= 5 else 'no'} |",
             f"| {big} costs ≤ 2.5× {small} (images/s ratio) | {rate_ratio:.2f}× | {_yes(rate_ratio <= 2.5)} |",
             f"| {big} costs ≤ 2.5× {small} (CPU per image) | {cpu_ratio:.2f}× | {_yes(cpu_ratio <= 2.5)} |"]
    if measured is not None:
        low = min((same / n for entry in measured["agreements"] for same, n in entry["per_class"].values() if n),
                  default=1.0)
        lines.append(f"| int8 top-1 agreement ≥ 99.5% on every check set and every class | lowest class {low:.1%} | "
                     f"{'yes' if meets_bar(measured) else 'no'} |")
    return "\n".join(lines) + "\n"


def _yes(met: bool) -> str:
    """Say whether a target was met."""
    return "yes" if met else "no"


def top3(probabilities: dict[str, float]) -> list[str]:
    """Return the three likeliest labels, most likely first."""
    return sorted(probabilities, key=probabilities.__getitem__, reverse=True)[:3]


def torch_threads() -> int:
    """Return the intra-op threads torch uses by default here: one per core."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    sys.exit(main())
