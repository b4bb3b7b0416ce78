"""A fake with 18 classes, for the page's "answers that matter"."""
from __future__ import annotations

from typing import Any

from PIL import Image

from snakes_web.model.predictor import Prediction, ranked

#: Four classes above 5%, fourteen below it.
PROBABILITIES = [0.6, 0.2, 0.08, 0.06] + [0.06 / 14] * 14


class ManyClasses:
    """Always answers the same 18 probabilities."""

    labels = [f"class {i}" for i in range(18)]

    def predict(self, image: Image.Image) -> list[Prediction]:
        return ranked(self.labels, PROBABILITIES)

    def describe(self) -> dict[str, Any]:
        return {"name": "many", "backend": "fake", "input_size": [1, 1], "labels": 18, "vocab": list(self.labels)}
