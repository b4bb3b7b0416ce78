"""Model file in, predictor out: the backend a file calls for, loaded once per process. No Flask here.

``load_predictor`` picks the backend from the model file (``fastai_backend``: torch and fastai;
``onnx_backend``: ONNX Runtime and NumPy only) and imports only that one; ``PredictorHolder`` is the
Flask extension that loads it lazily, once per process (so once per gunicorn worker, after the fork).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from snakes_web.exceptions import ModelLoadError
from snakes_web.extensions import Slot

from .model_code import split_sources
from .predictor import MODEL_SETTING, Predictor
from .served import ServedPredictor, served

#: Model file suffixes and the backend module that serves them (imported only when chosen).
FASTAI_SUFFIXES = frozenset({".pkl", ".pth", ".pt"})
ONNX_SUFFIXES = frozenset({".onnx"})


def backend_for(path: Path) -> str:
    """Name the backend a model file calls for: "fastai" or "onnx"."""
    suffix = path.suffix.lower()
    if suffix in FASTAI_SUFFIXES:
        return "fastai"
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    raise ModelLoadError(f"model file {path} is neither a fastai export (.pkl) nor an ONNX model (.onnx); "
                         f"check {MODEL_SETTING}.")


def load_predictor(path: Path, name: str = "", threads: int = 0, code: Sequence[str] = ()) -> Predictor:
    """Load the model at ``path`` with the backend its file type calls for.

    ``code``: modules or ``.py`` files a fastai export's pickle needs (``model_code``); an ONNX file needs none.
    """
    if backend_for(path) == "onnx":
        from .onnx_backend import OnnxPredictor  # onnxruntime + numpy only: no torch, no fastai

        return OnnxPredictor(path, name=name, threads=threads)
    from .fastai_backend import FastaiPredictor
    from .model_code import use_code

    use_code(code)

    return FastaiPredictor(path, name=name, threads=threads)


def load_configured(settings: Mapping[str, Any]) -> ServedPredictor:
    """Load ``settings["MODEL"]`` as the server serves it: its backend, its labels file, its priors (``served``)."""
    path = Path(settings["MODEL"]).expanduser()
    backend = load_predictor(path, str(settings.get("MODEL_NAME", "")), int(settings.get("TORCH_THREADS", 0)),
                             split_sources(str(settings.get("MODEL_CODE", ""))))
    return served(backend, path, settings)


def __getattr__(name: str) -> Any:
    """Import a backend class on first use, so importing this module never imports torch."""
    if name == "FastaiPredictor":
        from .fastai_backend import FastaiPredictor

        return FastaiPredictor
    if name == "OnnxPredictor":
        from .onnx_backend import OnnxPredictor

        return OnnxPredictor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class PredictorHolder:
    """Hold the app's one predictor: loaded on first use in each process, thread-safe."""

    def __init__(self, settings: Mapping[str, Any], predictor: Predictor | None = None) -> None:
        self._settings = dict(settings)
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
                    self._predictor = load_configured(self._settings)
                    for listener in self.on_load:
                        listener(time.perf_counter() - started)
        return self._predictor

    def warm_up(self) -> None:
        """Load the model and run one tiny prediction, once, so the first real request is fast."""
        if not self._warm:
            self.get().predict(Image.new("RGB", (64, 64), (127, 127, 127)))
            self._warm = True


#: Where ``create_app`` keeps the PredictorHolder: ``attach(app.extensions, ...)``, then ``holder_of(app)``.
SLOT: Slot[PredictorHolder] = Slot("snakes_web.predictor")
attach = SLOT.attach
holder_of = SLOT.of
