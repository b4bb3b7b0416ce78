"""Gunicorn settings for snakes-web: `gunicorn -c gunicorn.conf.py wsgi:app`.

The model is loaded in each worker after the fork (``post_worker_init``), never in the master:
torch's thread pools do not survive a fork. Workers × torch threads never exceed the cores.
"""
from __future__ import annotations

import os
import sys
import time

_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

# $PORT (Heroku and most PaaS) means "listen on every interface"; otherwise loopback only.
bind = [os.environ.get("SNAKES_BIND")
        or (f"0.0.0.0:{os.environ['PORT']}" if os.environ.get("PORT") else "127.0.0.1:8000")]
workers = int(os.environ.get("WEB_CONCURRENCY") or min(_cores, 2))
worker_class = "sync"
threads = 1
preload_app = False  # load the app, and so the model, in each worker
control_socket_disable = True  # no gunicornc here; and $HOME may be read-only in a container
timeout = int(os.environ.get("SNAKES_WORKER_TIMEOUT", "60"))
graceful_timeout = 20
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("SNAKES_LOG_LEVEL", "info")
# Torch threads per worker, so that workers × threads ≤ cores (create_app reads this setting).
os.environ.setdefault("SNAKES_TORCH_THREADS", str(max(1, _cores // workers)))


def on_starting(server) -> None:  # type: ignore[no-untyped-def]
    """Stop at once, with one clear line, when the model file is missing (checked without torch)."""
    from pathlib import Path

    from snakes_web.config import ConfigError, load_settings
    from snakes_web.exceptions import ModelLoadError
    from snakes_web.predictor import check_model_file

    try:
        check_model_file(Path(load_settings()["MODEL"]).expanduser())
    except (ModelLoadError, ConfigError) as exc:
        server.log.error("snakes-web cannot start: %s", exc)
        sys.exit(1)


def post_worker_init(worker) -> None:  # type: ignore[no-untyped-def]
    """Load the model in this worker and warm it up before it takes requests."""
    from snakes_web.exceptions import ModelLoadError
    from snakes_web.predictor import holder_of

    started = time.monotonic()
    try:
        holder_of(worker.wsgi).warm_up()
    except ModelLoadError as exc:
        worker.log.error("snakes-web cannot start: %s", exc)
        sys.exit(3)  # gunicorn's WORKER_BOOT_ERROR: the master stops instead of respawning forever
    worker.log.info("snakes-web: model loaded in worker %d in %.1f s", os.getpid(),
                    time.monotonic() - started)
