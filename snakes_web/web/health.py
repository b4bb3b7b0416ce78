"""Probes for load balancers and orchestrators: process up, and model ready."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from snakes_web.exceptions import ShuttingDown
from snakes_web.model.loader import holder_of
from snakes_web.serving.shutdown import stop_flag_of

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    """Answer as long as the process serves requests."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> Any:
    """Answer once the model is loaded and has made one prediction (loading it if needed); 503 once stopping."""
    if stop_flag_of(current_app).is_set():  # SIGTERM: load balancers, send the next requests elsewhere
        raise ShuttingDown("The server is stopping; send the next requests to another replica.")
    holder_of(current_app).warm_up()
    return {"status": "ready", "model": holder_of(current_app).get().describe()["name"]}
