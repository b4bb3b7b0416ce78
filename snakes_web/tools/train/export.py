"""Step 5, the export: ``export.pkl`` written atomically, and its ONNX and int8 files checked against it."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from snakes_web.config import load_settings
from snakes_web.imaging.images import load_image
from snakes_web.model.quiet import quiet

from .dataset import Dataset, shown
from .report import Report, top_index


def export(learner: Any, destination: Path) -> Path:
    """Write ``learner.export()`` to ``destination`` atomically (a half-written model is never served)."""
    destination = Path(destination).expanduser().resolve()
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent) as scratch, quiet():
        partial = Path(scratch) / destination.name
        learner.export(partial)
        partial.replace(destination)
    return destination


def export_onnx_checked(pkl: Path, report: Report, max_photos: int = 32) -> tuple[Path, int, int, float]:
    """Convert ``pkl`` to the .onnx beside it; compare it with the validation predictions.

    Return (onnx path, photos compared, photos with the same top class, largest probability difference).
    """
    from snakes_web.model.onnx_backend import OnnxPredictor
    from snakes_web.model.onnx_export import export_onnx

    destination = pkl.with_suffix(".onnx")
    export_onnx(pkl, destination)
    predictor = OnnxPredictor(destination)
    max_pixels = load_settings()["MAX_IMAGE_PIXELS"]
    same, largest = 0, 0.0
    photos = list(zip(report.paths, report.probabilities, strict=True))[:max_photos]
    for path, expected in photos:
        image = load_image(path.read_bytes(), max_pixels, min_side=predictor.min_side)
        by_label = {p.label: p.probability for p in predictor.predict(image)}
        got = [by_label[label] for label in report.classes]
        same += top_index(got) == top_index(expected)
        largest = max(largest, *(abs(a - b) for a, b in zip(got, expected, strict=True)))
    return destination, len(photos), same, largest


def export_int8_checked(pkl: Path, onnx: Path, dataset: Dataset, max_photos: int = 64) -> Path | None:
    """Write ``<name>-int8.onnx``, calibrated and checked on the validation photos; None when refused."""
    from snakes_web.model.quantize import Int8Refused, export_int8

    max_pixels = load_settings()["MAX_IMAGE_PIXELS"]
    photos = [load_image(path.read_bytes(), max_pixels) for path, _ in dataset.valid[:max_photos]]
    destination = onnx.with_name(f"{onnx.stem}-int8.onnx")
    try:
        result = export_int8(pkl, onnx, destination, photos, photos, load_settings()["INT8_MIN_AGREEMENT"])
    except Int8Refused as exc:
        print("\n".join(f"  {a.line()}" for a in exc.agreements), file=sys.stderr)
        print(f"snakes-web train: {exc} ({shown(onnx)} is written and serves fp32).", file=sys.stderr)
        return None
    print("\n".join(result.lines()))
    print(f"Wrote {shown(destination)} (int8; serve it with SNAKES_MODEL={shown(destination)}).")
    return destination
