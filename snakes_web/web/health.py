"""Probes for load balancers and orchestrators: process up, and model ready."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from snakes_web.exceptions import GateLost, ShuttingDown
from snakes_web.model.loader import holder_of
from snakes_web.serving.gate import gate_of
from snakes_web.serving.shutdown import stop_flag_of

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    """Answer as long as the process serves requests."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> Any:
    """Answer once the model is loaded and has made one prediction (loading it if needed); 503 once stopping.

    503 too while the inference gate's semaphores are gone (until this worker is replaced).
    """
    if stop_flag_of(current_app).is_set():  # SIGTERM: load balancers, send the next requests elsewhere
        raise ShuttingDown("The server is stopping; send the next requests to another replica.")
    gone = gate_of(current_app).gone()
    if gone:
        raise GateLost(f"Not ready: {gone}, so predictions cannot be counted; this worker is being replaced by "
                       f"one with a new set.")
    holder_of(current_app).warm_up()
    return {"status": "ready", "model": holder_of(current_app).get().describe()["name"]}
