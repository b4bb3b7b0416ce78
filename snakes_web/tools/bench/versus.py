"""The bench's peer section: our server against FastAPI + uvicorn serving the same predictor, in one run.

Both serve the int8 export `make run` serves, with two workers of one inference thread each, to the
same client (4 uploads in flight, each on a new connection) on three photos: a small one (500×333,
what a page that shrinks before upload or a thumbnail API sends), 1 MP and 12 MP. The peer
(``peer.py``) is run two ways: the strongest honest configuration (uvicorn's httptools parser and
uvloop, no access log, our decode) and as usually written (``uvicorn app:app --workers 2``: its access
log on, the photo decoded whole by ``Image.open(...).convert("RGB")``).
Each server is measured ``rounds`` times, the order turned round every other round; the mean.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from snakes_web.tools.photos import photo_like

from .client import multipart, raw_request
from .in_process import cpu_ms
from .processes import torch_threads as cores
from .same_model import DECODE_ENV
from .scenarios import Load, Scenario
from .servers import serve

VERSUS_HEADING = "## Against FastAPI: the same predictor behind the lightest peer"
OURS = "snakes-web (as shipped)"
STRONG = "FastAPI + uvicorn, strongest (httptools, uvloop, no access log)"
USUAL = "FastAPI + uvicorn, as usually written (access log on, Pillow's whole decode)"
FLOOR = "Flask + gunicorn, bare (sync workers, one route, nothing around the model)"
SMALL = "small photo (500×333)"
#: The targets of the section: (image, least ratio of our images/s to the strongest peer's).
TARGETS = ((SMALL, 1.1), ("1 MP JPEG", 1.2), ("12 MP JPEG", 1.2))
#: Server CPU per image may exceed the strongest peer's by this much on the small photo (ms).
CPU_MARGIN_MS = 0.3
#: Idle share of the machine at 4 in flight that the target allows.
IDLE_TARGET = 0.03


def small_photo(folder: Path, scale: float = 1.0) -> Path:
    """Write the small bench photo: 500×333, quality 90 (about 80 KB)."""
    path = folder / "photo-small.jpg"
    photo_like(max(32, int(500 * scale)), max(32, int(333 * scale)), seed=7).save(path, "JPEG", quality=90)
    return path


def uvicorn(workers: int, access_log: bool) -> Callable[[int], list[str]]:
    """Return the command line of the peer on a port: uvicorn with ``workers`` processes."""
    def command(port: int) -> list[str]:
        line = [sys.executable, "-m", "uvicorn", "snakes_web.tools.bench.peer:app", "--host", "127.0.0.1",
                "--port", str(port), "--workers", str(workers)]
        if not access_log:
            line += ["--no-access-log", "--log-level", "warning", "--http", "httptools", "--loop", "uvloop"]
        return line
    return command


def floor(workers: int) -> Callable[[int], list[str]]:
    """Return the command line of the floor (``floor.py``) on a port: gunicorn, ``workers`` sync workers."""
    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "-c", "python:snakes_web.tools.bench.floor", "--workers",
                str(workers), "--bind", f"127.0.0.1:{port}", "snakes_web.tools.bench.floor:app"]
    return command


def parse_cost_us(request: bytes, times: int) -> dict[str, float]:
    """Time parsing one request from memory (head and body), gunicorn's parser against httptools: CPU µs each."""
    import io

    import httptools
    from gunicorn.config import Config
    from gunicorn.http.parser import RequestParser

    class Stream:
        """A socket that hands out the request's bytes."""

        def __init__(self) -> None:
            self.buffer = io.BytesIO(request)

        def recv(self, size: int) -> bytes:
            return self.buffer.read(size)

    class Body:
        """httptools' callbacks: keep the body, note the end."""

        def __init__(self) -> None:
            self.chunks: list[bytes] = []
            self.complete = False

        def on_body(self, chunk: bytes) -> None:
            self.chunks.append(chunk)

        def on_message_complete(self) -> None:
            self.complete = True

    config = Config()

    def with_gunicorn() -> int:
        return len(next(iter(RequestParser(config, Stream(), ("127.0.0.1", 1)))).body.read())

    def with_httptools() -> int:
        body, stream = Body(), Stream()
        parser = httptools.HttpRequestParser(body)
        while not body.complete:
            parser.feed_data(stream.recv(65536))
        return len(b"".join(body.chunks))

    return {"gunicorn": cpu_ms(with_gunicorn, times) * 1000, "httptools": cpu_ms(with_httptools, times) * 1000}


def versus_section(model: Path, images: dict[str, Path], args: argparse.Namespace, work: Path) -> str:
    """Measure ours and the peer both ways on the three photos, alternated; return the Markdown section."""
    photos = {SMALL: small_photo(work, 0.25 if args.smoke else 1.0),
              **{label: images[label] for label in ("1 MP JPEG", "12 MP JPEG")}}
    workers = args.workers or 2
    threads = max(1, cores() // workers)
    ways: list[tuple[str, Callable[[int], list[str]] | None]] = [
        (OURS, None), (STRONG, uvicorn(workers, False)), (USUAL, uvicorn(workers, True)), (FLOOR, floor(workers))]
    peer = {"SNAKES_TORCH_THREADS": str(threads)}
    settings = {OURS: {}, STRONG: peer, USUAL: {**peer, DECODE_ENV: "pillow"}, FLOOR: peer}
    rounds = 1 if args.smoke else 3  # the spread between runs here is ±10%: more rounds against it
    runs: dict[str, list[Scenario]] = {name: [] for name, _ in ways}
    for turn in range(rounds):
        for index, (name, command) in (list(enumerate(ways)) if turn % 2 == 0 else list(enumerate(ways))[::-1]):
            print(f"  {name}, round {turn + 1} of {rounds} ...", flush=True)
            runs[name].append(serve(name, model, photos, args, work / f"versus-{index}-{turn}.log",
                                    settings=settings[name],
                                    command=command))
    request = raw_request("127.0.0.1", 8000, *multipart(photos[SMALL].read_bytes(), photos[SMALL].name))
    parsing = parse_cost_us(request, 50 if args.smoke else 2000)
    return render(runs, list(photos), args, photos, workers, threads, rounds) + parsed(parsing, photos[SMALL])


def mean(loads: Sequence[Load], value: Callable[[Load], float]) -> float:
    """Return the mean of ``value`` over the rounds' loads."""
    return sum(value(load) for load in loads) / len(loads)


def render(runs: dict[str, list[Scenario]], labels: list[str], args: argparse.Namespace, photos: dict[str, Path],
           workers: int, threads: int, rounds: int) -> str:
    """Return the section: one table row per photo and server, then the targets against the strongest peer."""
    sizes = ", ".join(f"{label} {photos[label].stat().st_size / 1000:.0f} KB" for label in labels)
    lines = ["", VERSUS_HEADING, "",
             f"Same int8 export, same decode and predictor object (`snakes_web/tools/bench/peer.py`: a sync "
             f"FastAPI endpoint calling `decode_image`, `load_configured(...).predict` and `result_payload`; "
             f"`floor.py`: the same behind one Flask route on gunicorn's sync workers, our shape with nothing "
             f"else), "
             f"{workers} workers × {threads} inference thread(s) each, {args.concurrency} uploads in flight, each "
             f"on a new connection; each server measured {rounds} time(s), alternated, in this run; the mean. "
             f"Photos: {sizes}. Idle: the machine's CPU left idle while measured (client included).", "",
             "| photo | server | img/s | ours ÷ it | CPU ms / image | p50 ms | p99 ms | idle | errors |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label in labels:
        loads = {name: [s.loads[label] for s in scenarios] for name, scenarios in runs.items()}
        our_rate = mean(loads[OURS], lambda load: load.rate)
        for name, server in loads.items():
            rate = mean(server, lambda load: load.rate)
            cpu, p50, p99, idle = (mean(server, value) for value in (
                lambda ld: ld.cpu_ms_per_image, lambda ld: ld.percentile(50), lambda ld: ld.percentile(99),
                lambda ld: ld.idle))
            lines.append(f"| {label} | {name} | {rate:.1f} | {our_rate / rate if rate else float('nan'):.2f}× | "
                         f"{cpu:.2f} | {p50:.0f} | {p99:.0f} | {idle:.1%} | {sum(load.errors for load in server)} |")
    lines += ["", "Targets (issue 28), against the strongest peer:", ""]
    for label, least in TARGETS:
        ratio = ratio_of(runs, OURS, STRONG, label)
        lines.append(f"- {label}: ≥ {least}× its images/s — {ratio:.2f}×, {'met' if ratio >= least else 'missed'}.")
    small_cpu = {name: mean([s.loads[SMALL] for s in runs[name]], lambda load: load.cpu_ms_per_image)
                 for name in (OURS, STRONG)}
    over = small_cpu[OURS] - small_cpu[STRONG]
    lines.append(f"- {SMALL}: server CPU per image within {CPU_MARGIN_MS} ms of it — {over:+.2f} ms, "
                 f"{'met' if over <= CPU_MARGIN_MS else 'missed'}.")
    idle = max(mean([s.loads[label] for s in runs[OURS]], lambda load: load.idle) for label in labels)
    lines.append(f"- Idle CPU at {args.concurrency} in flight ≤ {IDLE_TARGET:.0%} of the machine (ours, worst "
                 f"photo) — {idle:.1%}, {'met' if idle <= IDLE_TARGET else 'missed'}.")
    bare = ", ".join(f"{label} {ratio_of(runs, FLOOR, STRONG, label):.2f}×" for label in labels)
    lines += ["", f"**The floor of our shape** (Flask on gunicorn, nothing around the model) against the strongest "
                  f"peer: {bare}."]
    return "\n".join(lines) + "\n"


def ratio_of(runs: dict[str, list[Scenario]], name: str, other: str, label: str) -> float:
    """Return one server's mean images/s on one photo over the rounds ÷ another's (nan if the other's is 0)."""
    ours, theirs = (mean([scenario.loads[label] for scenario in runs[server]], lambda load: load.rate)
                    for server in (name, other))
    return ours / theirs if theirs else float("nan")


def parsed(costs: dict[str, float], photo: Path) -> str:
    """Render the in-process cost of parsing one request with each parser."""
    return (f"\nIn process, one thread, from memory: parsing one request of the {SMALL} (head and "
            f"{photo.stat().st_size / 1000:.0f} KB body) takes gunicorn's parser {costs['gunicorn']:.1f} µs and "
            f"httptools {costs['httptools']:.1f} µs of CPU.\n")
