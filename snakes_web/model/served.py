"""A backend as the server serves it: its labels file read, its probabilities corrected to the deployment prior.

``ServedPredictor`` wraps either backend the same way, so the fastai and the ONNX backend give the
same corrected answers (the correction runs on their probabilities, after them). Where the pieces
come from:

- the labels file: ``SNAKES_LABELS``, else ``labels.json`` beside the model file, else the one the model
  carries (an ONNX file's metadata, or the default model's ``default_labels.json``);
- the training prior: the model's (``training_prior`` of the backend: the default model knows its
  fold, ``snakes-web train`` writes its label counts), else the labels file's ``training_prior``;
- the deployment prior: ``SNAKES_PRIORS`` (``label=p,…``; ``none`` turns it off), else the labels
  file's ``deployment_prior``, else none (the answers are the model's own).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from snakes_web.exceptions import ModelLoadError

from .heatmaps import Heatmap, explained
from .label_guide import LABELS_SETTING, LabelGuide, beside_or_carried, check_labels, read_guide
from .predictor import Prediction, Predictor, ranked
from .priors import OFF, PRIORS_SETTING, PriorShift, deployment_prior, normalised, parse_spec


class ServedPredictor:
    """A backend with its labels file and its prior correction; every other attribute is the backend's."""

    def __init__(self, backend: Predictor, shift: PriorShift | None = None, guide: LabelGuide | None = None) -> None:
        self.backend_predictor = backend
        self.shift = shift
        self.guide = guide
        self.labels: list[str] = list(backend.labels)
        self._description: dict[str, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        """Answer with the backend's attribute (name, backend, min_side, concurrency, threshold, …)."""
        if name == "backend_predictor":  # not set yet (unpickling, copying): do not recurse
            raise AttributeError(name)
        return getattr(self.backend_predictor, name)

    def predict(self, image: Image.Image) -> list[Prediction]:
        """Return the backend's predictions, corrected to the deployment prior."""
        return self.corrected(self.backend_predictor.predict(image))

    def explain(self, image: Image.Image, label: str | None = None) -> tuple[list[Prediction], Heatmap]:
        """Predict and map ``label`` (None: the top class after the correction)."""
        predictions, heatmap = explained(self.backend_predictor, image, label)
        corrected = self.corrected(predictions)
        if label is None and corrected[0].label != heatmap.label:  # the prior changed the top class: map that one
            predictions, heatmap = explained(self.backend_predictor, image, corrected[0].label)
            corrected = self.corrected(predictions)
        return corrected, heatmap

    def corrected(self, predictions: list[Prediction]) -> list[Prediction]:
        """Apply the prior correction (none configured: the predictions as they are)."""
        if self.shift is None:
            return list(predictions)
        by_label = {p.label: p.probability for p in predictions}
        return ranked(list(self.shift.labels), self.shift.apply([by_label[label] for label in self.shift.labels]))

    def describe(self) -> dict[str, Any]:
        """Return the backend's description, with the priors and the labels file (built once: every answer asks)."""
        if self._description is None:
            description = dict(self.backend_predictor.describe())
            description["priors"] = self.shift.describe() if self.shift else None
            description["labels_file"] = self.guide.describe() if self.guide else None
            self._description = description
        return dict(self._description)


def served(backend: Predictor, model_path: Path, settings: Mapping[str, Any]) -> ServedPredictor:
    """Wrap a loaded backend with the labels file and the priors the settings and the model call for."""
    guide = guide_for(backend, model_path, str(settings.get("LABELS", "")))
    return ServedPredictor(backend, shift_for(backend, guide, str(settings.get("PRIORS", ""))), guide)


def guide_for(backend: Predictor, model_path: Path, setting: str) -> LabelGuide | None:
    """Find the model's labels file: the setting's, the one beside the model, or the one the model carries."""
    if setting.strip():
        guide: LabelGuide | None = read_guide(Path(setting.strip()).expanduser())
    else:  # ``label_guide`` is optional: an ONNX file's metadata, the default model's
        guide = beside_or_carried(model_path, getattr(backend, "label_guide", None))
    if guide is None:
        return None
    check_labels(guide, list(backend.labels))
    return guide


def shift_for(backend: Predictor, guide: LabelGuide | None, setting: str) -> PriorShift | None:
    """Return the prior correction to apply, or None; raise ``ModelLoadError`` when it cannot be applied."""
    raw = setting.strip()
    if raw.lower() in OFF:
        return None
    if raw:
        try:
            spec, source = parse_spec(raw), PRIORS_SETTING
        except ValueError as exc:
            raise ModelLoadError(f"{PRIORS_SETTING}={raw!r} is not valid: {exc}; write it as "
                                 f"\"label=probability,…\", or none.") from None
    elif guide is not None and guide.deployment_prior is not None:
        spec, source = guide.deployment_prior, f"the labels file ({guide.origin})"
    else:
        return None
    if getattr(backend, "threshold", None) is not None:
        raise ModelLoadError(f"the priors of {source} apply to single-label models; this one is multi-label. "
                             f"Set {PRIORS_SETTING}=none.")
    labels = list(backend.labels)
    counts = getattr(backend, "training_prior", None) or (guide.training_prior if guide else None)
    if counts is None:
        raise ModelLoadError(f"the priors of {source} need the model's training prior, which this model does not "
                             f"carry: add \"training_prior\" (label → training photos) to its labels file "
                             f"({LABELS_SETTING}), export it with `snakes-web train`, or set {PRIORS_SETTING}=none.")
    training = normalised(counts, labels, "training prior")
    return PriorShift(tuple(labels), training, deployment_prior(spec, labels, training, source), source)
