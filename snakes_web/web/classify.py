"""One request's way to its predictions: wait for the image outside the gate, decode and predict inside.

Both blueprints call ``classify_request``, so the page and the API cannot differ in what holds the model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, Request

from snakes_web.imaging.images import thumbnail_jpeg
from snakes_web.model.heatmaps import explained
from snakes_web.model.loader import holder_of
from snakes_web.model.predictor import Prediction, concurrency_of, needed_side
from snakes_web.serving.gate import gate_of

from .feedback import feedback_token, kept_image
from .inputs import decode_image, read_image_data
from .metrics import timed_inference
from .results import ExplainRequest


@dataclass(frozen=True)
class Classified:
    """A request's predictions and, when asked for, a JPEG preview of its image and a heatmap (JSON shape)."""

    predictions: list[Prediction]
    preview: bytes | None = None
    heatmap: dict[str, Any] | None = None
    feedback_token: str | None = None  # the signed, re-encoded photo "Is this right?" sends back


def classify_request(app: Flask, request: Request, *, allow_json: bool, preview: bool = False,
                     explain: ExplainRequest | None = None) -> Classified:
    """Read the request's image (body or URL), then, holding an inference slot, decode and predict it."""
    gate_of(app).check_room()
    data = read_image_data(request, app.config, allow_json=allow_json)
    return classify_data(app, data, preview=preview, explain=explain)


def classify_data(app: Flask, data: bytes, *, preview: bool = False,
                  explain: ExplainRequest | None = None) -> Classified:
    """Holding an inference slot, decode image bytes and predict (and, when asked, map where it looked)."""
    predictor = holder_of(app).get()
    heatmap = None
    with gate_of(app).admitted(concurrency_of(predictor)):
        image = decode_image(data, app.config, min_side=needed_side(predictor))
        with timed_inference(app):
            if explain is None:
                predictions = predictor.predict(image)
            else:
                predictions, heatmap = explained(predictor, image, explain.label)
        thumbnail = thumbnail_jpeg(image) if preview else None
        kept = kept_image(app, image)
    return Classified(predictions, thumbnail, heatmap.as_dict(image.size) if heatmap else None,
                      feedback_token(app, predictions, kept))
