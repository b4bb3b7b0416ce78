"""Where a request's CPU goes: py-spy samples of our workers under the bench's load, summed per stage.

    python -m snakes_web.tools.bench.stages --model models/export-int8.onnx [--seconds 10]

Starts our gunicorn on the model (its shipped defaults), keeps the bench's 4 uploads in flight for each
photo (small, 1 MP, 12 MP), and meanwhile records every worker with ``py-spy record --format raw
--nonblocking`` (the workers are never paused: paused, they served a fifth of their rate). Time in C
(ONNX Runtime, Pillow) counts in the Python frame that called it.
Samples of threads that wait (``WAITS``: a socket, epoll, a queue, a semaphore) are dropped; each other
sampled stack goes to one stage: the first rule of ``STAGES`` that one of its frames matches, so
JSON encoding inside a Flask view counts as JSON, not as Flask. A stage's milliseconds per image are its
share of the samples times the workers' CPU per image measured from /proc over the same seconds.
Prints the Markdown table docs/performance.md quotes. Needs py-spy (the ``bench`` extra) and ptrace
permission (root, or ``kernel.yama.ptrace_scope=0``).
"""
from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from .client import drive
from .images import write_images
from .processes import cpu_seconds
from .servers import running
from .versus import SMALL, small_photo

#: (stage, substrings of a frame "function (file:line)" that put a sample in it), first match wins.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("forward (ONNX Runtime)", ("onnxruntime", "libonnxruntime")),
    ("decode (Pillow, JPEG draft)", ("imaging/images.py", "PIL/ImageFile.py", "JpegImagePlugin", "libjpeg",
                                     "decode (", "ImagingDecode")),
    ("preprocess (resize, normalise)", ("model/transforms.py", "onnx_backend.py", "model/served.py", "resize (",
                                        "PIL/Image.py", "numpy")),
    ("JSON answer", ("flask/json", "json/encoder.py", "json/__init__.py", "results.py")),
    ("multipart parsing", ("formparser.py", "sansio/multipart.py", "web/inputs.py")),
    ("access log", ("gunicorn/glogging.py", "logging/__init__.py")),
    ("metrics", ("web/metrics.py", "prometheus_client")),
    ("request id, CORS, CSP, security headers", ("web/request_id.py", "web/cors.py", "web/security.py",
                                                 "web/clients.py", "uuid.py")),
    ("gate and input budget", ("serving/gate.py", "serving/budget.py", "web/bodies.py", "semaphores.py")),
    ("Flask and Werkzeug (routing, request, response)", ("flask/", "werkzeug/")),
    ("HTTP parsing and the socket (gunicorn, paced reads)", ("gunicorn/http/", "serving/worker.py", "socket.py",
                                                             "gunicorn/workers/base_async", "wsgi.py")),
    ("worker loop (gthread: accept, select, threads)", ("gunicorn/workers/gthread.py", "selectors.py",
                                                        "concurrent/futures", "threading.py", "queue.py")),
)
OTHER = "other"
#: Innermost calls that wait rather than compute: a thread sampled in one (a socket, epoll, a queue, a
#: semaphore, a sleep, the client's close) is not using the CPU. py-spy's own idle test cannot tell (a C
#: call that waits and one that works look alike from Python), so those samples are dropped.
WAITS = frozenset({"select", "poll", "wait", "sleep", "accept", "recv", "recv_into", "readinto", "close_graceful",
                   "_worker", "acquire", "_wait_for_tstate_lock", "get", "semtimedop", "epoll_wait"})


def stage_of(frames: Sequence[str]) -> str:
    """Return the stage of one sampled stack (its frames, outermost first)."""
    for stage, needles in STAGES:
        if any(needle in frame for frame in frames for needle in needles):
            return stage
    return OTHER


def waiting(frames: Sequence[str]) -> bool:
    """Say whether a sampled stack is a thread waiting (its innermost frame is a call in ``WAITS``)."""
    return bool(frames) and frames[-1].split(" (")[0].rsplit(".", 1)[-1] in WAITS


def tally(raw: str) -> collections.Counter[str]:
    """Count py-spy's raw (collapsed) samples per stage, waits left out: lines of ``frame;frame;... count``."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, number = line.rpartition(" ")
        frames = stack.split(";")
        if stack and number.isdigit() and not waiting(frames):
            counts[stage_of(frames)] += int(number)
    return counts


def profile(port: int, workers: list[int], photo: Path, seconds: float, concurrency: int,
            work: Path) -> tuple[collections.Counter[str], float, int]:
    """Load the server with ``photo`` while py-spy records each worker; return (samples per stage, worker CPU
    ms per image, images answered)."""
    outputs = [work / f"spy-{pid}.txt" for pid in workers]
    spy_binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    spies = [subprocess.Popen([spy_binary, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                               "--rate", "100", "--format", "raw", "--nonblocking", "--output", str(out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for pid, out in zip(workers, outputs, strict=True)]
    before = cpu_seconds(workers)
    result: list[int] = []
    loader = threading.Thread(target=lambda: result.append(drive("127.0.0.1", port, photo, concurrency, 0.0,
                                                                   seconds).total))
    loader.start()
    for spy in spies:
        spy.wait()
    loader.join()
    images = result[0] if result else 0
    cpu_ms = (cpu_seconds(workers) - before) * 1000 / max(1, images)
    counts: collections.Counter[str] = collections.Counter()
    for out in outputs:
        counts.update(tally(out.read_text() if out.exists() else ""))
    return counts, cpu_ms, images


def table(results: dict[str, tuple[collections.Counter[str], float, int]]) -> str:
    """Return the Markdown table: ms of worker CPU per image in each stage, per photo."""
    labels = list(results)
    lines = ["| stage | " + " | ".join(f"{label} ms/image" for label in labels) + " |",
             "|---|" + "---:|" * len(labels)]
    for stage in [name for name, _ in STAGES] + [OTHER]:
        cells = []
        for label in labels:
            counts, cpu_ms, _ = results[label]
            share = counts[stage] / max(1, sum(counts.values()))
            cells.append(f"{share * cpu_ms:.2f} ({share:.0%})")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append("| **all (worker CPU from /proc)** | " + " | ".join(f"**{results[label][1]:.2f}**"
                                                                  for label in labels) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Profile the model's server per stage and print the table."""
    parser = argparse.ArgumentParser(prog="python -m snakes_web.tools.bench.stages",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/export-int8.onnx"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--config", type=Path, default=Path("gunicorn.conf.py").resolve())
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="snakes-stages-") as scratch:
        work = Path(scratch)
        images = write_images(work / "images")
        photos = {SMALL: small_photo(work), "1 MP JPEG": images["1 MP JPEG"], "12 MP JPEG": images["12 MP JPEG"]}
        results = {}
        with running("ours", args.model, photos[SMALL], args, work / "server.log") as server:
            for label, photo in photos.items():
                drive("127.0.0.1", server.port, photo, args.concurrency, 0.0, 2.0)  # warm-up
                results[label] = profile(server.port, server.workers, photo, args.seconds, args.concurrency, work)
                print(f"{label}: {results[label][2]} images, {results[label][1]:.2f} ms worker CPU each",
                      file=sys.stderr)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
