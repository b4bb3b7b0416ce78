"""Prometheus metrics at /metrics: requests by endpoint and status, latency, inference and model load time.

Under gunicorn, ``gunicorn.conf.py`` sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker imports
prometheus_client: every worker then writes its samples to files there and /metrics adds them up,
so the numbers are right whichever worker answers the scrape. In one process (tests, ``flask run``)
each app keeps an ordinary registry of its own.
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from snakes_web.extensions import Slot

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "(unmatched)"  # one label for every unknown path, so scanners cannot blow up the series

bp = Blueprint("metrics", __name__)


class Metrics:
    """The app's metric families, registered on its own registry."""

    def __init__(self, registry: CollectorRegistry, multiprocess_dir: str = "") -> None:
        self.registry = registry
        self.multiprocess_dir = multiprocess_dir  # where all workers' samples are, under gunicorn
        self.requests = Counter(
            "snakes_http_requests", "HTTP requests answered, by route, method and status.",
            ["endpoint", "method", "status"], registry=registry)
        self.latency = Histogram(
            "snakes_http_request_duration_seconds", "Time to answer an HTTP request, by route.",
            ["endpoint"], registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.inference = Histogram(
            "snakes_model_inference_seconds", "Time the model took for one prediction.", registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.refused = Counter(
            "snakes_overload_refusals", "Requests answered 503 because the inference queue was full "
            "(queue-full) or a request waited too long for a slot (timeout).", ["reason"], registry=registry)
        self.load = Gauge(
            "snakes_model_load_seconds", "Time the model took to load, per worker process.",
            registry=registry, multiprocess_mode="liveall")


#: Where ``register_metrics`` keeps the app's ``Metrics`` (absent when ``SNAKES_METRICS`` is off).
SLOT: Slot[Metrics] = Slot("snakes_web.metrics")


def register_metrics(app: Flask) -> None:
    """Count and time every request, time model loads, and serve /metrics."""
    from snakes_web.model.loader import holder_of
    from snakes_web.serving.gate import gate_of

    # Decided once, like prometheus_client itself decides where samples go when it is imported.
    metrics = Metrics(CollectorRegistry(auto_describe=True), os.environ.get(MULTIPROC_ENV, ""))
    SLOT.attach(app.extensions, metrics)
    holder_of(app).on_load.append(metrics.load.set)
    for reason in ("queue-full", "timeout"):  # shown at 0 from the start, not only after the first
        metrics.refused.labels(reason)
    gate_of(app).on_refused.append(lambda reason: metrics.refused.labels(reason).inc())

    @app.before_request
    def _start_clock() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        started = g.get("metrics_started")
        endpoint = request.url_rule.rule if request.url_rule is not None else UNMATCHED
        metrics.requests.labels(endpoint, request.method, str(response.status_code)).inc()
        if started is not None:
            metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
        return response

    if not app.config["METRICS_PORT"]:  # else gunicorn's master serves them on their own port (metrics_port)
        app.register_blueprint(bp)


@contextlib.contextmanager
def timed_inference(app: Any) -> Iterator[None]:
    """Time the model call inside the ``with`` block (nothing when metrics are off)."""
    metrics = SLOT.find(app)
    started = time.perf_counter()
    yield
    if metrics is not None:
        metrics.inference.observe(time.perf_counter() - started)


@bp.get("/metrics")
def scrape() -> Response:
    """Expose every metric in Prometheus' text format, summed over workers under gunicorn."""
    metrics = SLOT.of(current_app)
    registry = metrics.registry
    if metrics.multiprocess_dir:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=metrics.multiprocess_dir)  # type: ignore[no-untyped-call]
    return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
