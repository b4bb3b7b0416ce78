"""Probes for load balancers and orchestrators: process up, and model ready."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from .predictor import holder_of

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    """Answer as long as the process serves requests."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> dict[str, Any]:
    """Answer once the model is loaded and has made one prediction (loading it if needed)."""
    holder_of(current_app).warm_up()
    return {"status": "ready", "model": holder_of(current_app).get().describe()["name"]}
