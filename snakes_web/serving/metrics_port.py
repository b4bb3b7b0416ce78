"""The metrics port: Prometheus scrapes gunicorn's master on a port of its own, never the public one.

The workers write their samples to the multiprocess folder (``web.metrics``); the master adds them up
and serves them with prometheus_client's own HTTP server on ``SNAKES_METRICS_PORT``, on the host the
app listens on (loopback for ``make run``, every interface in a container, where only the published
or Service ports are reachable). So the public port has no ``/metrics`` for a stranger to read, and an
Ingress, a load balancer or Heroku's router, which forward only the app's port, cannot expose it.
"""
from __future__ import annotations

from typing import Any

#: The port's default: OpenTelemetry's and prometheus_client's customary exporter port.
DEFAULT_PORT = 9464


def metrics_host(binds: list[str]) -> str:
    """Return the host of the first TCP address gunicorn binds (loopback when it binds a Unix socket)."""
    for bind in binds:
        if bind.startswith(("unix:", "fd://")) or ":" not in bind:
            continue
        host = bind.rsplit(":", 1)[0]
        return host.strip("[]") or "0.0.0.0"
    return "127.0.0.1"


def serve_metrics(folder: str, host: str, port: int) -> Any:
    """Serve the sum of every worker's samples in ``folder`` on ``host:port``, from a thread; return the server."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
