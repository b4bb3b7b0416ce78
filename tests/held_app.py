"""A gunicorn app for tests: the real model, which holds its inference slot a while for a magenta photo.

`gunicorn ... 'tests.held_app:create()'` with SNAKES_MODEL set. A pure magenta image (255, 0, 255) makes the
prediction sleep ``HELD_SECONDS`` (env SNAKES_TEST_HOLD_SECONDS, default 4) before answering, so a test
can keep a slot busy for a known time and see what the other requests meet meanwhile.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image

from snakes_web import create_app
from snakes_web.model.loader import load_predictor
from snakes_web.model.predictor import Prediction

MAGENTA = (255, 0, 255)
HELD_SECONDS = float(os.environ.get("SNAKES_TEST_HOLD_SECONDS", "4"))


class HoldingPredictor:
    """The real predictor, slowed down on magenta images (concurrency as the real one's)."""

    def __init__(self, path: Path) -> None:
        self._real = load_predictor(path)
        self.labels = self._real.labels
        self.min_side = getattr(self._real, "min_side", None)
        self.concurrency = getattr(self._real, "concurrency", None)

    def predict(self, image: Image.Image) -> list[Prediction]:
        if image.convert("RGB").resize((1, 1)).getpixel((0, 0)) == MAGENTA:
            print(f"holding a slot in worker {os.getpid()}", file=sys.stderr, flush=True)  # to the test's log
            time.sleep(HELD_SECONDS)
        return self._real.predict(image)

    def describe(self) -> dict[str, Any]:
        return self._real.describe()


def create() -> Any:
    """Build the app around the holding predictor (gunicorn: ``tests.held_app:create()``)."""
    return create_app({"PREDICTOR": HoldingPredictor(Path(os.environ["SNAKES_MODEL"]))})
