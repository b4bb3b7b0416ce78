"""The JSON API blueprint, under /api/v1: predict from a file or a URL, describe the model."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request

from .classify import classify_request
from .predictor import holder_of
from .results import parse_top, result_payload

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.post("/predict")
def predict() -> dict[str, Any]:
    """Classify an uploaded file (`file`), a form field `url`, or a JSON body {"url": ...}."""
    predictor = holder_of(current_app).get()
    top = parse_top(request.args.get("top"), len(predictor.labels))
    result = classify_request(current_app, request, allow_json=True)
    return result_payload(result.predictions, predictor.describe(), top, result.feedback_token)


@bp.get("/model")
def model() -> dict[str, Any]:
    """Describe the loaded model: name, backend, input size, number of labels and the labels."""
    return holder_of(current_app).get().describe()
