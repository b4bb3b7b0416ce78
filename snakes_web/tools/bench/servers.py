"""Our server under test: gunicorn started per scenario on loopback, its memory, CPU time and first answer."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .client import multipart, post
from .processes import children, cpu_seconds, free_port, rss_mb
from .scenarios import BASELINES, STRONGEST, Load, Scenario, SlowPlan
from .slow_clients import slow_clients


@dataclass
class Running:
    """A server the bench started: its process, port, workers and how long it took to answer first."""

    process: subprocess.Popen[bytes]
    port: int
    workers: list[int]
    start_to_first_answer_s: float


@contextlib.contextmanager
def running(name: str, model: Path, probe: Path, args: argparse.Namespace, log: Path, extra: Sequence[str] = (),
            settings: Mapping[str, str] | None = None,
            command: Callable[[int], list[str]] | None = None) -> Iterator[Running]:
    """Start our gunicorn on ``model`` (``extra``: more gunicorn arguments; ``settings``: more environment;
    ``command``: the command line of another server on a port, in place of ours), wait until it answers
    ``probe``, yield it, and stop it."""
    port = free_port()
    env = {**os.environ, "SNAKES_MODEL": str(model), "SNAKES_LOG_LEVEL": "info",  # info: the sizing line
           **(settings or {})}
    if args.workers:
        env["SNAKES_WORKERS"] = str(args.workers)
    env.pop("PORT", None)
    env["SNAKES_DRAIN_SECONDS"] = "0"  # stopped with SIGTERM when measured: no balancer to drain for
    body, content_type = multipart(probe.read_bytes(), probe.name)
    launched = time.monotonic()
    with log.open("wb") as out:
        ours = [sys.executable, "-m", "gunicorn", "-c", str(args.config), "--bind", f"127.0.0.1:{port}", *extra,
                "wsgi:app" if (args.config.parent / "wsgi.py").exists() else "snakes_web:create_app()"]
        process = subprocess.Popen(ours if command is None else command(port), cwd=args.config.parent, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name}: the server exited; see {log}")
            try:
                if post("127.0.0.1", port, body, content_type) == 200:
                    break
            except OSError:
                time.sleep(0.02)
            if time.monotonic() - launched > 300:
                raise RuntimeError(f"{name}: no answer within 300 s; see {log}")
        yield Running(process, port, children(process.pid), time.monotonic() - launched)
    finally:
        process.terminate()
        process.wait(timeout=60)


def serve(name: str, model: Path, images: dict[str, Path], args: argparse.Namespace, log: Path,
          extra: Sequence[str] = (), slow: SlowPlan | None = None, settings: Mapping[str, str] | None = None,
          path: str = "/api/v1/predict", command: Callable[[int], list[str]] | None = None) -> Scenario:
    """Start a server (``running``), time its first answer, load it with each image on ``path``, then (with
    ``slow``) measure it under slow clients, and stop it."""
    settings = dict(settings or {})
    if slow is not None:  # the slow URLs are served by the bench, on loopback
        settings.update(SNAKES_ALLOW_PRIVATE_URLS="true", SNAKES_FETCH_TIMEOUT=f"{slow.fetch_timeout:g}")
    first = next(iter(images.values()))
    scenario = Scenario(name)
    with running(name, model, first, args, log, extra, settings, command) as server:
        scenario.start_to_first_answer_s = server.start_to_first_answer_s
        serving = [server.process.pid, *server.workers]
        for label, image in images.items():
            before = cpu_seconds(serving)
            load = client(server.port, image, args, path)
            load.cpu_ms_per_image = (cpu_seconds(serving) - before) * 1000 / max(1, load.total)
            scenario.loads[label] = load
        scenario.rss_mb = [rss_mb(pid) for pid in server.workers]
        plan = re.search(r"(\d+) workers? × (\d+) inference thread", log.read_text())
        scenario.note = f"{plan.group(1)} worker(s) × {plan.group(2)} thread(s)" if plan else ""
        if extra:
            scenario.note += f" (`{' '.join(extra)}`)"
        if slow is not None:
            print(f"  slow clients: {slow.uploads} slow uploads, {slow.urls} slow URLs, "
                  f"{slow.normal} normal uploads ...", flush=True)
            scenario.slow = slow_clients(server.port, first, slow)
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


def client(port: int, image: Path, args: argparse.Namespace, path: str = "/api/v1/predict") -> Load:
    """Run the load generator in its own process (posting to ``path``) and return what it measured."""
    import resource

    command = [sys.executable, "-m", "snakes_web.tools.bench.command", "--role", "client", "--port", str(port),
               "--image", str(image), "--path", path, "--concurrency", str(args.concurrency),
               "--warmup", str(args.warmup), "--duration", str(args.duration)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # counts children once they are waited for
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=args.duration * 10 + 300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = Load(**json.loads(out.stdout))
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    load.client_cpu_ms = used * 1000 / max(1, load.total)
    return load
