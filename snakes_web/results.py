"""One serializer for predictions, shared by the JSON API and the HTML page so they cannot drift."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .exceptions import BadRequest
from .predictor import Prediction

#: The label that means "no": the page says "not a snake" in words for any model whose vocab has it.
NEGATIVE_LABEL = "not a snake"


def parse_top(raw: str | None, available: int) -> int:
    """Read the ``top`` query parameter: how many predictions to return (all when absent)."""
    if raw is None or raw == "":
        return available
    if not raw.isdigit() or int(raw) < 1:
        raise BadRequest("`top` must be a whole number of at least 1.")
    return min(int(raw), available)


def result_payload(predictions: Sequence[Prediction], model: dict[str, Any],
                   top: int | None = None, feedback_token: str | None = None) -> dict[str, Any]:
    """Return the response body: predictions (most likely first), what model made them, the feedback token."""
    shown = predictions[:top] if top is not None else predictions
    summary = {key: model[key] for key in ("name", "backend", "labels", "input_size") if key in model}
    payload: dict[str, Any] = {"predictions": [p.as_dict() for p in shown], "model": summary}
    if feedback_token:
        payload["feedback_token"] = feedback_token
    return payload
