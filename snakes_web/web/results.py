"""One serializer for predictions, shared by the JSON API and the HTML page so they cannot drift."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
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


@dataclass(frozen=True)
class Doubt:
    """When an answer is given with doubt: the top below ``unsure_below``, or "not a snake" with a species
    at ``could_be_above`` or more."""

    unsure_below: float
    could_be_above: float

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> Doubt:
        """Read the two settings."""
        return cls(float(settings["UNSURE_BELOW"]), float(settings["COULD_BE_ABOVE"]))


@dataclass(frozen=True)
class Verdict:
    """How sure an answer is, in a word (``sure``, ``unsure``, ``could-be``) and in a sentence."""

    kind: str
    says: str
    could_be: Prediction | None = None


def verdict_of(predictions: Sequence[Prediction], doubt: Doubt) -> Verdict:
    """Judge the answer: never a confident "not a snake" while a snake species has a material probability."""
    best = predictions[0]
    if best.label == NEGATIVE_LABEL:
        species = next((p for p in predictions if p.label != NEGATIVE_LABEL), None)
        if species is not None and species.probability >= doubt.could_be_above:
            return Verdict("could-be", f"Probably not a snake — but it could be a {species.label} "
                                       f"({_percent(species.probability)}).", species)
    if best.probability < doubt.unsure_below:
        return Verdict("unsure", f"The model is unsure about this one: no class reached "
                                 f"{_percent(doubt.unsure_below)}. Its best guess is {best.label} "
                                 f"({_percent(best.probability)}).")
    if best.label == NEGATIVE_LABEL:
        return Verdict("sure", "This does not look like a snake.")
    return Verdict("sure", f"This looks most like a {best.label}.")


def _percent(probability: float) -> str:
    """Write a probability in whole percent, as a sentence says it."""
    return f"{probability * 100:.0f}%"


def result_payload(predictions: Sequence[Prediction], model: dict[str, Any], doubt: Doubt,
                   top: int | None = None, heatmap: dict[str, Any] | None = None,
                   receipt: str | None = None) -> dict[str, Any]:
    """Return the response body: predictions (most likely first), the verdict, what the answer's labels mean,
    the model, any heatmap, the feedback receipt."""
    shown = predictions[:top] if top is not None else predictions
    summary = {key: model[key] for key in ("name", "backend", "labels", "input_size", "multi_label", "threshold")
               if key in model}
    verdict = verdict_of(predictions, doubt)
    body: dict[str, Any] = {"predictions": [p.as_dict() for p in shown], "verdict": verdict.kind,
                            "says": verdict.says, "model": summary}
    if verdict.could_be is not None:
        body["could_be"] = verdict.could_be.as_dict()
    entries = (model.get("labels_file") or {}).get("entries", {})
    about = {label: entries[label] for label in _subjects(predictions, verdict) if label in entries}
    if about:
        body["about"] = about  # what the answer's labels mean (the labels file), the warning level first of all
    labels = named(list(predictions), model.get("threshold"))
    if labels is not None:
        body["labels"] = labels  # a multi-label model: every label above its threshold, as fastai's predict names
    if heatmap is not None:
        body["heatmap"] = heatmap
    if receipt:
        body["feedback_receipt"] = receipt
    return body


def _subjects(predictions: Sequence[Prediction], verdict: Verdict) -> list[str]:
    """Return the labels an answer speaks of: the top one, and the species it could be."""
    return [predictions[0].label] + ([verdict.could_be.label] if verdict.could_be is not None else [])


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
