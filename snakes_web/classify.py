"""One request's way to its predictions: wait for the image outside the gate, decode and predict inside.

Both blueprints call ``classify_request``, so the page and the API cannot differ in what holds the model.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, Request

from .feedback import feedback_token, kept_image
from .gate import gate_of
from .images import thumbnail_jpeg
from .inputs import decode_image, read_image_data
from .metrics import timed_inference
from .predictor import Prediction, concurrency_of, holder_of, needed_side


@dataclass(frozen=True)
class Classified:
    """A request's predictions and, when asked for, a JPEG preview of its image."""

    predictions: list[Prediction]
    preview: bytes | None = None
    feedback_token: str | None = None  # the signed, re-encoded photo "Is this right?" sends back


def classify_request(app: Flask, request: Request, *, allow_json: bool, preview: bool = False) -> Classified:
    """Read the request's image (body or URL), then, holding an inference slot, decode and predict it."""
    predictor = holder_of(app).get()
    gate = gate_of(app)
    gate.check_room()
    data = read_image_data(request, app.config, allow_json=allow_json)
    with gate.admitted(concurrency_of(predictor)):
        image = decode_image(data, app.config, min_side=needed_side(predictor))
        with timed_inference(app):
            predictions = predictor.predict(image)
        thumbnail = thumbnail_jpeg(image) if preview else None
        kept = kept_image(app, image)
    return Classified(predictions, thumbnail, feedback_token(app, predictions, kept))
