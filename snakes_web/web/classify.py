"""One request's way to its predictions: wait for the image outside the gate, decode and predict inside.

Both blueprints call ``classify_request``, so the page and the API cannot differ in what holds the model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, Request

from snakes_web.feedback.receipts import digest
from snakes_web.imaging.images import thumbnail_jpeg
from snakes_web.model.heatmaps import explained
from snakes_web.model.loader import holder_of
from snakes_web.model.predictor import Prediction, concurrency_of, needed_side
from snakes_web.serving.gate import gate_of

from .feedback import feedback_receipt, wants_receipts
from .inputs import decode_image, read_image_data
from .metrics import timed_inference
from .results import ExplainRequest


@dataclass(frozen=True)
class Classified:
    """A request's predictions and, when asked for, a JPEG preview of its image and a heatmap (JSON shape)."""

    predictions: list[Prediction]
    preview: bytes | None = None
    heatmap: dict[str, Any] | None = None
    receipt: str | None = None  # signed: these bytes were classified as this; "Is this right?" sends it back


def classify_request(app: Flask, request: Request, *, allow_json: bool, preview: bool = False,
                     explain: ExplainRequest | None = None, receipt: bool = False) -> Classified:
    """Read the request's image (body or URL), then, holding an inference slot, decode and predict it."""
    gate_of(app).check_room()
    data = read_image_data(request, app.config, allow_json=allow_json)
    return classify_data(app, data, preview=preview, explain=explain, receipt=receipt)


def classify_data(app: Flask, data: bytes, *, preview: bool = False,
                  explain: ExplainRequest | None = None, receipt: bool = False) -> Classified:
    """Holding an inference slot, decode image bytes and predict (and, when asked, map where it looked).

    ``receipt``: also sign what was classified (the bytes' hash, and the preview's), for feedback; a
    request that does not ask pays nothing for it.
    """
    predictor = holder_of(app).get()
    heatmap = None
    receipt = receipt and wants_receipts(app)
    digests = [digest(data)] if receipt else []  # outside the slot: hashing is not the model's work
    with gate_of(app).admitted(concurrency_of(predictor), app.config["PREDICTIONS_PER_WORKER"]):
        image = decode_image(data, app.config, min_side=needed_side(predictor))
        with timed_inference(app):
            if explain is None:
                predictions = predictor.predict(image)
            else:
                predictions, heatmap = explained(predictor, image, explain.label)
        thumbnail = thumbnail_jpeg(image) if preview else None
    if receipt and thumbnail is not None:
        digests.append(digest(thumbnail))  # the page without JavaScript sends its preview back
    return Classified(predictions, thumbnail, heatmap.as_dict(image.size) if heatmap else None,
                      feedback_receipt(app, digests, predictions) if receipt else None)
