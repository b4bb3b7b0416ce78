"""Gunicorn settings for snakes-web: `gunicorn -c gunicorn.conf.py wsgi:app`, or `snakes-web serve`.

The top-level ``gunicorn.conf.py`` runs this file; ``snakes-web serve`` hands it to gunicorn by path.

How requests are served. Waiting never holds the model:

* **Workers** (processes) come from the cores and memory available (cgroup limits included, see
  ``snakes_web.serving.sizing``); each loads the model once, after the fork (``post_worker_init``), never in
  the master: torch's thread pools do not survive a fork, and ONNX Runtime's are not documented to.
* **Threads.** Each worker is gunicorn's threaded worker (``snakes_web.serving.worker.ThreadWorker``) with
  ``SNAKES_THREADS`` threads, one per connection: a thread waits for a slow upload, a slow image URL
  or a slow reader of the answer, and none of that waiting holds the model. A worker accepts only
  as many connections as it has threads (``worker_connections = threads``), so no connection waits
  for a thread while another worker has one free. Every request must arrive within
  ``SNAKES_UPLOAD_MIN_RATE`` / ``SNAKES_UPLOAD_GRACE`` / ``SNAKES_UPLOAD_TIMEOUT``, or it gets 408.
* **Inference slots.** Decoding and the model run behind one gate for the whole server
  (``snakes_web.serving.gate``): as many slots as workers, each prediction using ``SNAKES_TORCH_THREADS``
  threads, so slots × threads never exceed the cores. The gate is a System V semaphore set made
  here, in the master, before the workers fork: any worker's thread takes any free slot (ONNX Runtime
  runs concurrent sessions in one process; fastai's ``Learner.predict`` is also locked per process),
  so no request waits while a slot is free anywhere, and the kernel gives a killed worker's slots
  back. Past ``SNAKES_QUEUE_LENGTH`` waiting requests, or ``SNAKES_QUEUE_TIMEOUT`` seconds of
  waiting, a request is answered 503 with ``Retry-After`` at once.
* **Memory** (``snakes_web.serving.budget``). Each worker holds request bodies and downloads within
  ``SNAKES_INPUT_BUDGET_MB`` (exported here from the sizing: what the worker's share of the memory leaves,
  at most 192 MB); a request past it is answered 503 ``memory-busy`` before its body is read. Each worker
  pins glibc's mmap threshold at 1 MB (trim threshold 8 MB, two arenas: ``serving.worker.tune_malloc``),
  so the large buffers of a decode go back to the kernel when freed.
* **Stopping** (``snakes_web.serving.shutdown``). On SIGTERM ``/readyz`` answers 503 at once in every worker;
  the workers go on answering for ``SNAKES_DRAIN_SECONDS`` (so load balancers stop sending), then
  stop listening and give what they hold ``SNAKES_GRACEFUL_TIMEOUT`` seconds more to finish.

Every value comes from the app's settings (``snakes_web.config``), so ``SNAKES_*`` rules here too.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from snakes_web.config import ConfigError, load_settings  # imports no torch
from snakes_web.exceptions import ModelLoadError
from snakes_web.feedback.receipts import check_key  # imports no torch either
from snakes_web.model.loader import backend_for  # imports no backend
from snakes_web.serving.budget import budget_size
from snakes_web.serving.gate import GATE_ENV, handed, read_handed, size_of
from snakes_web.serving.sizing import plan_from_settings

try:
    _settings = load_settings()
    check_key(_settings["SECRET_KEY"])  # here too, so the master stops with one line, not each worker
except ConfigError as _error:  # one clear line, not gunicorn's "Failed to read config file" traceback
    print(f"snakes-web cannot start: {_error}", file=sys.stderr)
    sys.exit(1)
try:
    _backend = backend_for(Path(_settings["MODEL"]))
except ModelLoadError:
    _backend = "fastai"  # on_starting reports the bad model file with one clear line
_plan = plan_from_settings(_settings, os.environ, _backend)

# $PORT (Heroku and most PaaS) means "listen on every interface"; otherwise loopback only.
bind = [_settings["BIND"]
        or (f"0.0.0.0:{os.environ['PORT']}" if os.environ.get("PORT") else "127.0.0.1:8000")]
workers = _plan.workers
worker_class = "snakes_web.serving.worker.ThreadWorker"
threads = _settings["THREADS"]
worker_connections = threads  # a worker accepts only the connections it has threads for
sendfile = False  # static files are written by the threads like any answer (paced sockets have no sendfile)
preload_app = False  # load the app, and so the model, in each worker
control_socket_disable = True  # no gunicornc here; and $HOME may be read-only in a container
timeout = _settings["WORKER_TIMEOUT"]
# SIGTERM: the drain (still answering, /readyz 503), then what was admitted may finish; then SIGKILL.
graceful_timeout = _settings["DRAIN_SECONDS"] + _settings["GRACEFUL_TIMEOUT"]
accesslog = "-"
# The request id of every response, so a user's report can be found in the log.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s "%(a)s"'
errorlog = "-"
loglevel = _settings["LOG_LEVEL"]
# Inference threads per worker, so that workers × threads ≤ cores (the workers read this setting).
os.environ["SNAKES_TORCH_THREADS"] = str(_plan.threads)
# Each worker's input budget: what its share of the memory leaves for bodies and downloads in flight.
os.environ["SNAKES_INPUT_BUDGET_MB"] = str(_plan.input_budget_mb)
try:
    budget_size({**_settings, "INPUT_BUDGET_MB": _plan.input_budget_mb})
except ConfigError as _error:
    print(f"snakes-web cannot start: {_error}", file=sys.stderr)
    sys.exit(1)


def on_starting(server) -> None:  # type: ignore[no-untyped-def]
    """Stop at once, with one clear line, when the model file is missing (checked without torch)."""
    from snakes_web.model.predictor import check_model_file

    try:
        check_model_file(Path(_settings["MODEL"]).expanduser())
        backend_for(Path(_settings["MODEL"]))
    except ModelLoadError as exc:
        server.log.error("snakes-web cannot start: %s", exc)
        sys.exit(1)
    os.environ.pop(_MADE_HERE, None)  # a fresh master owns nothing yet (whatever its environment says)
    plan = _plan
    if server.cfg.workers != plan.workers:  # `--workers N` on the command line: share the cores anew
        plan = plan_from_settings({**_settings, "WORKERS": server.cfg.workers}, os.environ, _backend)
        os.environ["SNAKES_TORCH_THREADS"] = str(plan.threads)  # the workers, forked later, inherit it
        os.environ["SNAKES_INPUT_BUDGET_MB"] = str(plan.input_budget_mb)
    server.log.info("snakes-web: %s backend, %s", _backend, plan.describe())
    _prepare_metrics_dir(server)  # only once we know we start: an early exit would leave the folder behind
    _make_gate(server, plan.workers)


def when_ready(server) -> None:  # type: ignore[no-untyped-def]
    """Make the stop flag before any worker forks, and raise it on SIGTERM before gunicorn stops (issue 15)."""
    from snakes_web.serving.shutdown import raise_on_sigterm, server_flag

    raise_on_sigterm(server_flag())
    server.log.info("snakes-web: on SIGTERM, /readyz answers 503 at once; serving %d s more, then up to "
                    "%d s to finish", _settings["DRAIN_SECONDS"], _settings["GRACEFUL_TIMEOUT"])
    _serve_metrics(server)


def _serve_metrics(server) -> None:  # type: ignore[no-untyped-def]
    """Serve /metrics from this master on SNAKES_METRICS_PORT, off the app's public port (issue 29)."""
    if not _settings["METRICS"] or not _settings["METRICS_PORT"]:
        return
    from snakes_web.serving.metrics_port import metrics_host, serve_metrics

    host, port = metrics_host([str(b) for b in server.cfg.bind]), _settings["METRICS_PORT"]
    try:
        serve_metrics(os.environ[_METRICS_ENV], host, port)
    except OSError as exc:  # the app still serves; say loudly that the scrape will find nothing
        server.log.error("snakes-web: cannot serve /metrics on %s:%d (%s); set SNAKES_METRICS_PORT to a free "
                         "port", host, port, exc.strerror or exc)
        return
    server.log.info("snakes-web: /metrics on http://%s:%d/metrics (not on the app's port)",
                    f"[{host}]" if ":" in host else host, port)


# --- the inference gate (issue 14): one semaphore set for all workers, made before they fork ---
# What this master made, to remove on exit. In the environment, not in a module list: `kill -HUP`
# runs this file again, and a list here would start empty, so the semaphores would outlive the server.
_MADE_HERE = "SNAKES_WEB_MADE_BY_MASTER"


def _make_gate(server, slots: int) -> None:  # type: ignore[no-untyped-def]
    """Make the gate's semaphores and hand them to the workers through the environment."""
    from snakes_web.serving import semaphores

    size = size_of(slots, _settings["QUEUE_LENGTH"], _settings["QUEUE_TIMEOUT"])
    semid = semaphores.create(size.values)
    _note_made(f"gate:{semid}")
    os.environ[GATE_ENV] = handed(semid, size)
    server.log.info("snakes-web: %d inference slot%s (semaphore set %d), at most %d waiting (%g s) before "
                    "503; %d threads per worker", size.slots, "" if size.slots == 1 else "s", semid, size.queue,
                    size.timeout, threads)


def pre_fork(server, worker) -> None:  # type: ignore[no-untyped-def]
    """Before a worker forks, make the gate anew when its semaphore set is gone (systemd RemoveIPC, ipcrm).

    The workers that held the old set leave (``ThreadWorker.notify``) and are replaced here, one fork at
    a time, so the first replacement makes the new set and the next ones find it: every worker that
    counts on a set counts on the same one.
    """
    from snakes_web.serving import semaphores

    given = os.environ.get(GATE_ENV, "")
    if not given:
        return
    semid, size = read_handed(given, _settings["QUEUE_TIMEOUT"])
    if semaphores.SharedSemaphores.exists(semid):
        return
    try:
        renewed = semaphores.create(size.values)
    except OSError as exc:  # the worker then fails to boot, and gunicorn stops: loud, not a 503 forever
        server.log.error("snakes-web: the semaphore set %d was removed and a new one cannot be made: %s", semid, exc)
        return
    _forget_made(f"gate:{semid}")  # its id may be reused by someone else's set: never remove it on exit
    _note_made(f"gate:{renewed}")
    os.environ[GATE_ENV] = handed(renewed, size)
    server.log.warning("snakes-web: the semaphore set %d was removed (systemd RemoveIPC? an ipcrm?): made "
                       "semaphore set %d for the workers that start from now on", semid, renewed)


def post_worker_init(worker) -> None:  # type: ignore[no-untyped-def]
    """Route the app's log through gunicorn's error log, then load and warm up the model."""
    import logging

    from snakes_web.model.loader import holder_of

    app_log = logging.getLogger("snakes_web")
    app_log.handlers = list(worker.log.error_log.handlers)
    app_log.setLevel(worker.log.error_log.level)
    app_log.propagate = False
    started = time.monotonic()
    try:
        holder_of(worker.wsgi).warm_up()
    except ModelLoadError as exc:
        worker.log.error("snakes-web cannot start: %s", exc)
        sys.exit(3)  # gunicorn's WORKER_BOOT_ERROR: the master stops instead of respawning forever
    worker.log.info("snakes-web: model loaded in worker %d in %.1f s", os.getpid(),
                    time.monotonic() - started)


# --- Prometheus multiprocess mode (issue 6): workers write samples to files that /metrics adds up ---
_METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _prepare_metrics_dir(server) -> None:  # type: ignore[no-untyped-def]
    """Give the workers an empty metrics folder, set in the environment before any of them is forked.

    prometheus_client picks its storage when it is imported, so the variable must be there first; a
    folder left from an earlier run is emptied, or its counters would start where the last run stopped.
    """
    if not _settings["METRICS"]:
        return
    import glob
    import tempfile

    folder = os.environ.get(_METRICS_ENV) or ""
    if folder:
        os.makedirs(folder, exist_ok=True)
        for stale in glob.glob(os.path.join(folder, "*.db")):
            os.remove(stale)
    else:
        folder = tempfile.mkdtemp(prefix="snakes-web-metrics-")
        _note_made(f"metrics:{folder}")
        os.environ[_METRICS_ENV] = folder
    server.log.info("snakes-web: Prometheus multiprocess folder %s", folder)


def child_exit(server, worker) -> None:  # type: ignore[no-untyped-def]
    """Drop a dead worker's live gauges (its counters stay: totals must not go backwards)."""
    if os.environ.get(_METRICS_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def _note_made(thing: str) -> None:
    """Remember, in this master's environment, something to remove when it exits."""
    made = os.environ.get(_MADE_HERE, "")
    os.environ[_MADE_HERE] = f"{made}\n{thing}" if made else thing


def _forget_made(thing: str) -> None:
    """Stop remembering something this master made (it is gone already)."""
    made = [line for line in os.environ.get(_MADE_HERE, "").splitlines() if line != thing]
    os.environ[_MADE_HERE] = "\n".join(made)


def on_exit(server) -> None:  # type: ignore[no-untyped-def]
    """Remove the metrics folder and the gate's semaphores this run made for itself."""
    import shutil

    from snakes_web.serving import semaphores

    for thing in os.environ.pop(_MADE_HERE, "").splitlines():
        kind, _, what = thing.partition(":")
        if kind == "metrics":
            shutil.rmtree(what, ignore_errors=True)
        elif kind == "gate":
            semaphores.remove(int(what))
