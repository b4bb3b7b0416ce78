"""One serializer for predictions, shared by the JSON API and the HTML page so they cannot drift."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from snakes_web.exceptions import BadRequest
from snakes_web.model.predictor import Prediction, named

#: The label that means "no": the page says "not a snake" in words for any model whose vocab has it.
NEGATIVE_LABEL = "not a snake"


def parse_top(raw: str | None, available: int) -> int:
    """Read the ``top`` query parameter: how many predictions to return (all when absent)."""
    if raw is None or raw == "":
        return available
    if not raw.isdigit() or int(raw) < 1:
        raise BadRequest("`top` must be a whole number of at least 1.")
    return min(int(raw), available)


def parse_feedback(raw: str | None) -> bool:
    """Read the ``feedback`` query parameter: whether the answer should carry a feedback receipt."""
    if raw is None or raw == "" or raw.lower() in ("0", "false", "no"):
        return False
    if raw.lower() in ("1", "true", "yes"):
        return True
    raise BadRequest("`feedback` must be 1 (add a feedback receipt to the answer) or 0.")


def result_payload(predictions: Sequence[Prediction], model: dict[str, Any],
                   top: int | None = None, heatmap: dict[str, Any] | None = None,
                   receipt: str | None = None) -> dict[str, Any]:
    """Return the response body: predictions (most likely first), the model, any heatmap, the feedback receipt."""
    shown = predictions[:top] if top is not None else predictions
    summary = {key: model[key] for key in ("name", "backend", "labels", "input_size", "multi_label", "threshold")
               if key in model}
    body: dict[str, Any] = {"predictions": [p.as_dict() for p in shown], "model": summary}
    labels = named(list(predictions), model.get("threshold"))
    if labels is not None:
        body["labels"] = labels  # a multi-label model: every label above its threshold, as fastai's predict names
    if heatmap is not None:
        body["heatmap"] = heatmap
    if receipt:
        body["feedback_receipt"] = receipt
    return body


# --- issue 17: heatmaps on request, the answers that matter --------------------------------------

#: ``?explain=`` values that mean "the top class" (any other value must be one of the model's labels).
EXPLAIN_TOP = ("top", "true", "1")


@dataclass(frozen=True)
class ExplainRequest:
    """A heatmap was asked for: for ``label``, or for the top class when None."""

    label: str | None = None


def parse_explain(raw: str | None, labels: Sequence[str]) -> ExplainRequest | None:
    """Read the ``explain`` query parameter: absent means no heatmap; a label, or top, names the class."""
    if raw is None or raw == "":
        return None
    if raw in labels:
        return ExplainRequest(raw)
    if raw.lower() in EXPLAIN_TOP:
        return ExplainRequest(None)
    raise BadRequest("`explain` must be `top` or one of the model's labels (GET /api/v1/model lists them).")


def answers_that_matter(predictions: Sequence[dict[str, Any]], above: float,
                        at_least: int = 3) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split predictions (most likely first) into those the page shows and the rest, one click away."""
    count = max(at_least, sum(1 for p in predictions if p["probability"] > above))
    return list(predictions[:count]), list(predictions[count:])
