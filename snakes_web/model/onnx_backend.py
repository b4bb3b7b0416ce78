"""The ONNX Runtime backend: a ``.onnx`` file from ``snakes-web export-onnx``, served with NumPy and Pillow.

Imports neither torch nor fastai, so a deployment needs only ``onnxruntime`` and ``numpy`` for the model.
The preprocessing comes from the file's metadata (see ``onnx_export``) and runs in ``transforms``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from snakes_web.exceptions import ModelLoadError

from .heatmaps import Heatmap, footprint, normalised, occlusion_grid
from .predictor import MODEL_SETTING, Prediction, check_model_file, described_threshold, ranked
from .transforms import PAD_MODES, RESAMPLES, RESIZE_METHODS, Resample, apply_steps, needed_side, to_input

#: Versions of the metadata layout ``onnx_export`` writes; files of another layout are refused.
#: "2" adds a batch resize (``resample``) that a reader of "1" would skip, so it must not read those files.
METADATA_FORMAT, RESAMPLE_FORMAT = "1", "2"
READABLE_FORMATS = frozenset({METADATA_FORMAT, RESAMPLE_FORMAT})
ACTIVATIONS = ("softmax", "sigmoid", "none")
#: The optional second output ``export-onnx`` writes: N × classes × h × w class activation maps.
CAM_OUTPUT = "cam"


class OnnxPredictor:
    """Serve an ONNX classifier with ONNX Runtime on the CPU, preprocessing in Pillow and NumPy."""

    backend = "onnx"

    def __init__(self, path: Path, name: str = "", threads: int = 0) -> None:
        check_model_file(path)
        self._session = open_session(path, threads)
        meta = _metadata(self._session, path)
        self.labels: list[str] = meta["vocab"]
        self.name = name or meta["model_name"] or path.stem
        self.input_size: list[int] = meta["input_size"]
        self._steps: list[dict[str, Any]] = meta["preprocess"]
        self._div, self._mean, self._std = meta["div"], meta["mean"], meta["std"]
        self._activation: str = meta["activation"]
        self._resample: Resample | None = meta["resample"]
        #: Multi-label models: the probability above which fastai's ``predict`` names a label (else None).
        self.threshold: float | None = meta["threshold"]
        self.input_name: str = self._session.get_inputs()[0].name
        outputs = [output.name for output in self._session.get_outputs()]
        self._scores_output = outputs[0]
        # The class activation maps, when `export-onnx` could add them (see cam.py); else occlusion.
        self._cam_output = CAM_OUTPUT if CAM_OUTPUT in outputs[1:] else None
        self.explains_with = "cam" if self._cam_output else "occlusion"
        self.min_side = needed_side(self._steps)
        self.quantization: str = meta["quantization"]
        self.training_prior: dict[str, float] | None = meta["training_prior"]
        #: The labels file ``export-onnx`` copied into the metadata (None: none was beside the export).
        self.label_guide: dict[str, Any] | None = meta["label_guide"]

    def prepare(self, image: Image.Image) -> np.ndarray:
        """Preprocess like fastai: item transforms in Pillow, then scale and normalise into a 1×3×H×W batch."""
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return to_input(apply_steps(rgb, self._steps), self._div, self._mean, self._std, self._resample)

    def predict(self, image: Image.Image) -> list[Prediction]:
        """Preprocess like fastai, run the network, apply the loss function's activation."""
        scores = self._session.run([self._scores_output], {self.input_name: self.prepare(image)})[0][0]
        return ranked(self.labels, _activate(scores, self._activation).tolist())

    def explain(self, image: Image.Image, label: str | None = None) -> tuple[list[Prediction], Heatmap]:
        """Predict, and map where the model looked for ``label`` (None: the top class): CAM or occlusion."""
        batch = self.prepare(image)
        if self._cam_output:
            scores, maps = self._session.run([self._scores_output, self._cam_output], {self.input_name: batch})
        else:
            scores, maps = self._session.run([self._scores_output], {self.input_name: batch})[0], None
        predictions = ranked(self.labels, _activate(scores[0], self._activation).tolist())
        index = self.labels.index(label or predictions[0].label)
        if maps is not None:
            grid, method = normalised(maps[0, index]), "cam"
        else:
            grid, method = occlusion_grid(self._probabilities, batch, index), "occlusion"
        return predictions, Heatmap(self.labels[index], method, grid, footprint(self._steps, image.size))

    def _probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Run a batch of inputs; return each row's probabilities."""
        scores = self._session.run([self._scores_output], {self.input_name: batch})[0]
        return np.stack([_activate(row, self._activation) for row in scores])

    def describe(self) -> dict[str, Any]:
        """Return the model's name, backend, input size and labels."""
        return {"name": self.name, "backend": self.backend, "input_size": list(self.input_size),
                "labels": len(self.labels), "vocab": list(self.labels), **described_threshold(self.threshold)}


def open_session(path: Path, threads: int) -> Any:
    """Open an ONNX Runtime session: ``threads`` intra-op threads (0: ONNX Runtime's choice), no spinning."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads > 0:
        options.intra_op_num_threads = threads
    # Idle threads sleep instead of spinning: a spinning pool steals the cores other workers need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: no optimizer chatter in the server log
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own classes for a bad file
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ModelLoadError(f"{path} is not a loadable ONNX model ({first}); check {MODEL_SETTING}.") from None


def _metadata(session: Any, path: Path) -> dict[str, Any]:
    """Read and check what ``snakes-web export-onnx`` stored in the file."""
    props: dict[str, str] = dict(session.get_modelmeta().custom_metadata_map)
    if props.get("snakes_web.format") not in READABLE_FORMATS:
        raise ModelLoadError(f"{path} has no snakes-web metadata (vocab, preprocessing); convert the fastai "
                             f"export with `snakes-web export-onnx export.pkl {path.name}`.")
    try:
        meta = {key: json.loads(props[key]) for key in ("vocab", "input_size", "preprocess", "div", "mean", "std")}
        meta["model_name"], meta["activation"] = props.get("model_name", ""), props["activation"]
        meta["quantization"] = props.get("quantization", "")
        meta["threshold"] = json.loads(props["threshold"]) if "threshold" in props else None
        meta["resample"] = Resample(json.loads(props["resample"])) if "resample" in props else None
        meta["training_prior"] = json.loads(props["training_prior"]) if "training_prior" in props else None
        meta["label_guide"] = json.loads(props["label_guide"]) if "label_guide" in props else None
        _check(meta)
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"{path} has damaged snakes-web metadata ({type(exc).__name__}: {exc}); convert "
                             f"the fastai export again.") from None
    return meta


def _check(meta: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless the metadata is something this backend can run."""
    if not meta["vocab"] or not all(isinstance(label, str) for label in meta["vocab"]):
        raise ValueError("empty or non-text vocab")
    if meta["activation"] not in ACTIVATIONS:
        raise ValueError(f"unknown activation {meta['activation']!r}")
    if meta["threshold"] is not None and not isinstance(meta["threshold"], (int, float)):
        raise ValueError(f"threshold {meta['threshold']!r} is not a number")
    if meta["resample"] is not None and list(meta["resample"].size) != list(meta["input_size"]):
        raise ValueError("the resample's size is not the input size")
    for step in meta["preprocess"]:
        if step["op"] not in {"resize", "crop_pad"} or step["pad_mode"] not in PAD_MODES:
            raise ValueError(f"unknown step {step!r}")
        if step["op"] == "resize" and (step["method"] not in RESIZE_METHODS or step["resample"] not in RESAMPLES):
            raise ValueError(f"unknown resize {step!r}")


def _activate(scores: np.ndarray, activation: str) -> np.ndarray:
    """Apply the activation fastai's ``get_preds`` applies, in float64."""
    values = scores.astype(np.float64)
    if activation == "softmax":
        exp = np.exp(values - values.max())
        softmax: np.ndarray = exp / exp.sum()
        return softmax
    if activation == "sigmoid":
        sigmoid: np.ndarray = 1.0 / (1.0 + np.exp(-values))
        return sigmoid
    return values
