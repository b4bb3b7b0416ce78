"""What every model backend is and gives: the ``Predictor`` protocol and its ``Prediction``. No Flask here.

The bottom of the model layer: the backends (``fastai_backend``, ``onnx_backend``) and the loader that
picks between them (``loader``) all import this module, and it imports none of them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from snakes_web.exceptions import ModelLoadError

MODEL_SETTING = "SNAKES_MODEL"


@dataclass(frozen=True)
class Prediction:
    """One class and the model's probability for it."""

    label: str
    probability: float

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON shape shared by the API and the page."""
        return {"label": self.label, "probability": round(self.probability, 6)}


class Predictor(Protocol):
    """What the web layer needs from a model backend."""

    labels: list[str]
    # Optional: ``min_side``, the shorter image side the model needs; images are decoded no smaller.
    # Optional: ``concurrency``, how many predictions one process may run at once (absent: any number).
    # Optional: ``threshold``, for a multi-label model the probability above which a label is named.
    # Optional: ``explain(image, label) -> (predictions, heatmaps.Heatmap)`` and ``explains_with`` ("cam" or
    # "occlusion"); absent, heatmaps.explained falls back to occlusion through ``predict`` alone.

    def predict(self, image: Image.Image) -> list[Prediction]:
        """Return every class with its probability, most likely first."""

    def describe(self) -> dict[str, Any]:
        """Return the model's name, backend, input size, number of labels and the labels."""


def described_threshold(threshold: float | None) -> dict[str, Any]:
    """Return what ``describe`` adds for a multi-label model: its threshold (nothing for a single-label one)."""
    return {} if threshold is None else {"multi_label": True, "threshold": threshold}


def named(predictions: list[Prediction], threshold: float | None) -> list[str] | None:
    """Return the labels fastai's ``predict`` names for a multi-label model (above ``threshold``); else None."""
    if threshold is None:
        return None
    return [p.label for p in predictions if p.probability > threshold]


def ranked(labels: list[str], probabilities: list[float]) -> list[Prediction]:
    """Pair labels with probabilities, most likely first (ties keep the model's order)."""
    pairs = [Prediction(label, float(p)) for label, p in zip(labels, probabilities, strict=True)]
    return sorted(pairs, key=lambda pred: -pred.probability)


def check_model_file(path: Path) -> None:
    """Raise ``ModelLoadError`` naming the path and the setting when the file cannot be read."""
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist; set {MODEL_SETTING} to an export.pkl "
                             f"or run `snakes-web build-default-model`.")
    if not os.access(path, os.R_OK):
        raise ModelLoadError(f"model file {path} is not readable; check its permissions or {MODEL_SETTING}.")


def needed_side(predictor: Predictor) -> int | None:
    """Return the shorter image side a predictor needs (None: decode at full size)."""
    side = getattr(predictor, "min_side", None)  # optional: fakes and third-party predictors may lack it
    return int(side) if side else None


def concurrency_of(predictor: Predictor) -> int | None:
    """Return how many predictions a predictor runs at once in one process (None: as many as asked)."""
    limit = getattr(predictor, "concurrency", None)
    return int(limit) if limit else None
