"""The JSON API blueprint, under /api/v1: predict from a file or a URL, describe the model."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request

from snakes_web.exceptions import SnakesError
from snakes_web.model.loader import holder_of

from .batch import classify_batch, is_batch
from .classify import Classified, classify_request
from .errors import problem
from .results import Doubt, parse_explain, parse_feedback, parse_top, result_payload

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.post("/predict")
def predict() -> dict[str, Any]:
    """Classify an uploaded file (`file`), a form field `url`, or a JSON body {"url": ...}; or several.

    ``?feedback=1`` adds a receipt to each answer, for "Is this right?" (POST /api/v1/feedback).
    """
    predictor = holder_of(current_app).get()
    top = parse_top(request.args.get("top"), len(predictor.labels))
    explain = parse_explain(request.args.get("explain"), predictor.labels)
    receipt = parse_feedback(request.args.get("feedback"))
    if is_batch(request):
        return batch_payload(classify_batch(current_app, request, explain=explain, receipt=receipt),
                             predictor.describe(), top)
    result = classify_request(current_app, request, allow_json=True, explain=explain, receipt=receipt)
    return result_payload(result.predictions, predictor.describe(), Doubt.of(current_app.config), top,
                          result.heatmap, result.receipt)


def batch_payload(results: list[Classified | SnakesError], model: dict[str, Any], top: int) -> dict[str, Any]:
    """Return one entry per input, in order: its result, or its problem document."""
    doubt = Doubt.of(current_app.config)
    return {"results": [problem(item) if isinstance(item, SnakesError)
                        else result_payload(item.predictions, model, doubt, top, item.heatmap, item.receipt)
                        for item in results]}


@bp.get("/model")
def model() -> dict[str, Any]:
    """Describe the loaded model: name, backend, input size, number of labels and the labels."""
    return holder_of(current_app).get().describe()
