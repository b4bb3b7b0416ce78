"""The fastai backend: serve an ``export.pkl`` with ``load_learner`` on the CPU (needs torch and fastai)."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from PIL import Image

from snakes_web.exceptions import ModelLoadError

from .heatmaps import Heatmap, footprint, normalised, occlusion_grid
from .model_code import HOW, MissingCode, in_use, naming, pickle_module
from .predictor import MODEL_SETTING, Prediction, check_model_file, described_threshold, ranked
from .quiet import quiet
from .transforms import UnsupportedExport, needed_side, preprocessing_of


class FastaiPredictor:
    """Serve a fastai ``export.pkl`` with ``Learner.predict`` on the CPU."""

    backend = "fastai"
    concurrency = 1  # Learner.predict keeps state on the learner: one prediction at a time per process

    def __init__(self, path: Path, name: str = "", threads: int = 0) -> None:
        import torch

        if threads > 0:
            torch.set_num_threads(threads)
        self._learner = load_learner_quietly(path)
        self._lock = threading.Lock()  # Learner.predict keeps state on the learner
        self.labels = [str(label) for label in self._learner.dls.vocab]
        self.name = name or getattr(self._learner.model, "model_name", "") or path.stem
        self.input_size = _input_size(self._learner)
        self._steps = _steps(self._learner)
        self.min_side = needed_side(self._steps)  # None when the steps are unknown or start with a crop
        self._cam = _cam_of(self._learner, self.input_size)
        self.explains_with = "cam" if self._cam is not None else "occlusion"
        #: Multi-label models: the probability above which ``predict`` names a label (else None).
        self.threshold = _threshold(self._learner, len(self.labels))
        self.training_prior = training_prior_of(self._learner)
        #: The labels file the model itself carries (the default model's), when no file is given.
        self.label_guide = getattr(self._learner.model, "label_guide", None)

    def predict(self, image: Image.Image) -> list[Prediction]:
        """Run ``Learner.predict`` on an RGB image."""
        import torch

        with self._lock:
            item = _fastai_image(image)
            with torch.inference_mode(), self._learner.no_bar(), self._learner.no_logging():
                _, _, probabilities = self._learner.predict(item)
        return ranked(self.labels, probabilities.tolist())

    def explain(self, image: Image.Image, label: str | None = None) -> tuple[list[Prediction], Heatmap]:
        """Predict, and map where the model looked for ``label`` (None: the top class): CAM or occlusion."""
        import torch

        with self._lock:
            item = _fastai_image(image)
            with torch.inference_mode(), self._learner.no_bar(), self._learner.no_logging():
                batch = self._learner.dls.test_dl([item]).one_batch()[0].as_subclass(torch.Tensor).float().cpu()
                if self._cam is not None:
                    scores, maps = self._cam(batch)
                    probabilities = self._activate(scores)[0]
                else:
                    maps, probabilities = None, self._activate(self._learner.model(batch))[0]
                predictions = ranked(self.labels, probabilities.tolist())
                index = self.labels.index(label or predictions[0].label)
                if maps is not None:
                    grid, method = normalised(maps[0, index].numpy()), "cam"
                else:
                    def run(inputs: Any) -> Any:
                        return self._activate(self._learner.model(torch.from_numpy(inputs))).numpy()

                    grid, method = occlusion_grid(run, batch.numpy(), index), "occlusion"
        box = footprint(self._steps, image.size) if self._steps else (0.0, 0.0, 1.0, 1.0)
        return predictions, Heatmap(self.labels[index], method, grid, box)

    def _activate(self, scores: Any) -> Any:
        """Apply what ``get_preds`` applies to the network's output (the loss function's activation)."""
        activation = getattr(self._learner.loss_func, "activation", None)
        return activation(scores) if activation is not None else scores

    def describe(self) -> dict[str, Any]:
        """Return the model's name, backend, input size and labels."""
        return {"name": self.name, "backend": self.backend, "input_size": self.input_size,
                "labels": len(self.labels), "vocab": list(self.labels), **described_threshold(self.threshold)}


def activation_of(learner: Any, classes: int) -> str:
    """Name what ``get_preds`` applies to the model's output: "softmax", "sigmoid" or "none"."""
    import torch

    activation = getattr(learner.loss_func, "activation", None)
    if activation is None:
        return "none"
    probe = torch.linspace(-3.0, 2.5, 2 * classes).reshape(2, classes)
    out = activation(probe.clone())
    candidates = {"softmax": torch.softmax(probe, dim=-1), "sigmoid": torch.sigmoid(probe), "none": probe}
    for name, expected in candidates.items():
        if isinstance(out, torch.Tensor) and out.shape == expected.shape and torch.allclose(out, expected, atol=1e-6):
            return name
    raise UnsupportedExport(f"the loss function's activation ({type(learner.loss_func).__name__}) is not softmax, "
                            f"sigmoid or none")


def threshold_of(learner: Any, activation: str) -> float | None:
    """Return the threshold above which a multi-label model's ``predict`` names a label (None: single-label)."""
    threshold = getattr(learner.loss_func, "thresh", None)
    if activation != "sigmoid" or threshold is None:
        return None
    return float(threshold)


def training_prior_of(learner: Any) -> dict[str, float] | None:
    """Return the label counts a model was trained on (``snakes-web train`` stores them; the default model
    knows its fold), or None when the export does not say."""
    counts = getattr(learner, "training_label_counts", None) or getattr(learner.model, "training_prior", None)
    return {str(label): float(count) for label, count in counts.items()} if counts else None


def load_learner_quietly(path: Path) -> Any:
    """Load a fastai export, turning every way it can fail into one clear ``ModelLoadError``."""
    with quiet():
        from fastai.callback.progress import ProgressCallback
        from fastai.learner import load_learner

    check_model_file(path)
    try:
        with quiet():  # fastai warns on every load that pickles run code; we load only our file
            learner = load_learner(path, cpu=True, pickle_module=pickle_module())
    except UnboundLocalError:
        # fastai 2.8 swallows an ImportError inside load_learner and then trips on this.
        module = _missing_module(path)
        file = "path/to/" + module.replace(".", "/") + ".py"
        raise ModelLoadError(
            f"{path} needs the module {module!r}, which is not importable here: install what the model was "
            f"trained with, or, if it is your own file, name it in {naming(file)}."
        ) from None
    except MissingCode as exc:
        where = f" (not in {', '.join(in_use())})" if in_use() else ""
        raise ModelLoadError(
            f"{path} was exported from a notebook or script and names its own {exc.missing!r}{where}: "
            f"{HOW}."
        ) from None
    except AttributeError as exc:
        if not str(exc).startswith("Custom classes"):  # fastai's wording for an unpickling failure
            raise ModelLoadError(f"{path} is not a fastai Learner export; check {MODEL_SETTING}.") from None
        cause = str(exc).splitlines()[-1].strip()  # fastai's preamble, then pickle's own words
        raise ModelLoadError(
            f"{path} refers to a function or class that is not importable here ({cause}); "
            f"{HOW}, or set {MODEL_SETTING} to another model."
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
        torch.load(path, map_location="cpu", weights_only=False, pickle_module=pickle_module())
    except ImportError as exc:
        return exc.name or str(exc)
    except Exception:  # noqa: BLE001 - any other failure: we only wanted the import error
        pass
    return "(unknown)"


def _input_size(learner: Any) -> list[int] | None:
    """Return the [height, width] the item transforms produce, when they say."""
    size = None
    for tfm in learner.dls.after_item.fs:
        tfm_size = getattr(tfm, "size", None)
        if tfm_size is not None:
            width_height = tfm_size if hasattr(tfm_size, "__len__") else (tfm_size, tfm_size)
            size = [int(width_height[1]), int(width_height[0])]  # fastai keeps (width, height)
    return size


def _fastai_image(image: Image.Image) -> Any:
    """Return an image as fastai's ``PILImage``; call it under the predictor's lock.

    ``quiet()`` (fastai's import prints) swaps process-wide state, sys.stdout and the warning filters.
    """
    with quiet():
        from fastai.vision.core import PILImage
    return PILImage.create(image if image.mode == "RGB" else image.convert("RGB"))


def _steps(learner: Any) -> list[dict[str, Any]]:
    """Return the prediction-time resize/crop steps: they size the decoding and place heatmaps ([] when unknown)."""
    try:
        steps: list[dict[str, Any]] = preprocessing_of(learner)["steps"]
    except UnsupportedExport:
        return []
    return steps


def _threshold(learner: Any, classes: int) -> float | None:
    """Return a multi-label model's threshold; None for any other (an unusual activation serves as it is)."""
    try:
        return threshold_of(learner, activation_of(learner, classes))
    except UnsupportedExport:
        return None


def _cam_of(learner: Any, input_size: list[int] | None) -> Any:
    """Return the network wrapped for exact class activation maps, or None (then occlusion explains)."""
    import torch

    from .cam import checked_cam_network

    height, width = input_size or [224, 224]
    try:
        return checked_cam_network(learner.model, torch.zeros(1, 3, height, width))
    except Exception:  # noqa: BLE001 - a network that fails on the probe simply gets occlusion
        return None
