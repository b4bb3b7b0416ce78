"""Model file in, predictions out. No Flask here.

``load_predictor`` picks the backend from the model file; ``PredictorHolder`` is the Flask
extension that loads it lazily, once per process (so once per gunicorn worker, after the fork).
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from .exceptions import ModelLoadError
from .quiet import quiet

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

    def predict(self, image: Image.Image) -> list[Prediction]:
        """Return every class with its probability, most likely first."""

    def describe(self) -> dict[str, Any]:
        """Return the model's name, backend, input size, number of labels and the labels."""


def ranked(labels: list[str], probabilities: list[float]) -> list[Prediction]:
    """Pair labels with probabilities, most likely first (ties keep the model's order)."""
    pairs = [Prediction(label, float(p)) for label, p in zip(labels, probabilities, strict=True)]
    return sorted(pairs, key=lambda pred: -pred.probability)


class FastaiPredictor:
    """Serve a fastai ``export.pkl`` with ``load_learner`` on the CPU."""

    backend = "fastai"

    def __init__(self, path: Path, name: str = "", threads: int = 0) -> None:
        import torch

        if threads > 0:
            torch.set_num_threads(threads)
        self._learner = _load_learner(path)
        self._lock = threading.Lock()  # Learner.predict keeps state on the learner
        self.labels = [str(label) for label in self._learner.dls.vocab]
        self.name = name or getattr(self._learner.model, "model_name", "") or path.stem
        self.input_size = _input_size(self._learner)

    def predict(self, image: Image.Image) -> list[Prediction]:
        """Run ``Learner.predict`` on an RGB image."""
        import torch

        with quiet():
            from fastai.vision.core import PILImage
        item = PILImage.create(image.convert("RGB"))
        with self._lock, torch.inference_mode(), self._learner.no_bar(), self._learner.no_logging():
            _, _, probabilities = self._learner.predict(item)
        return ranked(self.labels, probabilities.tolist())

    def describe(self) -> dict[str, Any]:
        """Return the model's name, backend, input size and labels."""
        return {"name": self.name, "backend": self.backend, "input_size": self.input_size,
                "labels": len(self.labels), "vocab": list(self.labels)}


def _load_learner(path: Path) -> Any:
    """Load a fastai export, turning every way it can fail into one clear ``ModelLoadError``."""
    with quiet():
        from fastai.callback.progress import ProgressCallback
        from fastai.learner import load_learner

    check_model_file(path)
    try:
        with quiet():  # fastai warns on every load that pickles run code; we load only our file
            learner = load_learner(path, cpu=True)
    except UnboundLocalError:
        # fastai 2.8 swallows an ImportError inside load_learner and then trips on this.
        raise ModelLoadError(
            f"{path} needs the module {_missing_module(path)!r}, which is not importable here; "
            f"install what the model was trained with, or point {MODEL_SETTING} at another model."
        ) from None
    except AttributeError as exc:
        if not str(exc).startswith("Custom classes"):  # fastai's wording for an unpickling failure
            raise ModelLoadError(f"{path} is not a fastai Learner export; check {MODEL_SETTING}.") from None
        cause = str(exc).splitlines()[-1].strip()  # fastai's preamble, then pickle's own words
        raise ModelLoadError(
            f"{path} refers to a function or class that is not importable here ({cause}); "
            f"define it in an importable module before loading, or set {MODEL_SETTING}."
        ) from None
    except Exception as exc:  # a pickle can fail in any way; say which file and which setting
        raise ModelLoadError(
            f"{path} is not a loadable fastai export ({type(exc).__name__}); check {MODEL_SETTING}."
        ) from None
    if not hasattr(learner, "dls") or not hasattr(learner.dls, "vocab"):
        raise ModelLoadError(f"{path} is not a fastai classifier export (it has no vocab); check {MODEL_SETTING}.")
    if any(isinstance(cb, ProgressCallback) for cb in learner.cbs):
        learner.remove_cb(ProgressCallback)  # it prints a bar on every predict
    learner.model.eval()
    return learner


def _missing_module(path: Path) -> str:
    """Unpickle ``path`` again, without fastai in the way, to learn which import fails."""
    import torch

    try:
        torch.load(path, map_location="cpu", weights_only=False)
    except ImportError as exc:
        return exc.name or str(exc)
    except Exception:  # noqa: BLE001 - any other failure: we only wanted the import error
        pass
    return "(unknown)"


def check_model_file(path: Path) -> None:
    """Raise ``ModelLoadError`` naming the path and the setting when the file cannot be read."""
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist; set {MODEL_SETTING} to an export.pkl "
                             f"or run `snakes-web build-default-model`.")
    if not os.access(path, os.R_OK):
        raise ModelLoadError(f"model file {path} is not readable; check its permissions or {MODEL_SETTING}.")


def _input_size(learner: Any) -> list[int] | None:
    """Return the [height, width] the item transforms produce, when they say."""
    size = None
    for tfm in learner.dls.after_item.fs:
        tfm_size = getattr(tfm, "size", None)
        if tfm_size is not None:
            size = [int(v) for v in (tfm_size if hasattr(tfm_size, "__len__") else (tfm_size, tfm_size))]
    return size


def load_predictor(path: Path, name: str = "", threads: int = 0) -> Predictor:
    """Load the model at ``path`` with the backend its file type calls for."""
    if path.suffix.lower() in {".pkl", ".pth", ".pt"}:
        return FastaiPredictor(path, name=name, threads=threads)
    raise ModelLoadError(f"model file {path} is not a fastai export (.pkl); check {MODEL_SETTING}.")


class PredictorHolder:
    """Hold the app's one predictor: loaded on first use in each process, thread-safe."""

    def __init__(self, settings: Mapping[str, Any], predictor: Predictor | None = None) -> None:
        self._path = Path(settings["MODEL"]).expanduser()
        self._name = str(settings.get("MODEL_NAME", ""))
        self._threads = int(settings.get("TORCH_THREADS", 0))
        self._predictor = predictor
        self._warm = False
        self._lock = threading.Lock()
        self.on_load: list[Callable[[float], None]] = []  # each told the seconds a load took (metrics)

    @property
    def loaded(self) -> bool:
        """Tell whether the model is loaded in this process."""
        return self._predictor is not None

    def get(self) -> Predictor:
        """Return the predictor, loading the model file the first time."""
        if self._predictor is None:
            with self._lock:
                if self._predictor is None:
                    started = time.perf_counter()
                    self._predictor = load_predictor(self._path, self._name, self._threads)
                    for listener in self.on_load:
                        listener(time.perf_counter() - started)
        return self._predictor

    def warm_up(self) -> None:
        """Load the model and run one tiny prediction, once, so the first real request is fast."""
        if not self._warm:
            self.get().predict(Image.new("RGB", (64, 64), (127, 127, 127)))
            self._warm = True


EXTENSION_KEY = "snakes_web.predictor"


def attach(extensions: dict[str, Any], holder: PredictorHolder) -> None:
    """Store ``holder`` in a Flask app's ``extensions``."""
    extensions[EXTENSION_KEY] = holder


def holder_of(app: Any) -> PredictorHolder:
    """Return the predictor holder of a Flask app built by ``create_app``."""
    holder: PredictorHolder = app.extensions[EXTENSION_KEY]
    return holder
