"""`snakes-web predict MODEL IMAGE...`: a model's top predictions for image files, as the server makes them.

The model loads through ``model.loader.load_configured`` (a ``.pkl`` with fastai, an ``.onnx`` with ONNX
Runtime; its labels file and ``SNAKES_PRIORS`` applied, as in the server) and every file through the
server's own ``web.inputs.decode_image`` (its limits, draft and reduction), so an answer here is the
answer the server would give, verdict included. A file that is not an image we read gets one line
on stderr; the others still print; the exit status says whether any failed.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from snakes_web.config import load_settings
from snakes_web.exceptions import ModelLoadError, SnakesError
from snakes_web.model.loader import load_configured
from snakes_web.model.predictor import Prediction, Predictor, named, needed_side
from snakes_web.web.inputs import decode_image
from snakes_web.web.results import Doubt, verdict_of

from .options import add_code_option, code_of
from .train.dataset import visible_files


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare `snakes-web predict`'s arguments."""
    parser.add_argument("model", type=Path, help="the model: an export.pkl (fastai) or a .onnx (ONNX Runtime)")
    parser.add_argument("images", type=Path, nargs="+",
                        help="image files, or folders (every visible file in them, sorted)")
    parser.add_argument("-k", "--top", type=int, default=3, help="how many classes to show per image (default 3; "
                                                                 "0 for all)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document: the model and, per file, its predictions or its error")
    add_code_option(parser)


def run(args: argparse.Namespace) -> int:
    """Predict every image; return 0 when all were read, 1 when any was not (or the model failed)."""
    if args.top < 0:
        print("snakes-web predict: --top must be 0 or more.", file=sys.stderr)
        return 1
    settings = load_settings(overrides={"MODEL": str(args.model), "MODEL_CODE": ",".join(code_of(args))})
    try:
        predictor = load_configured(settings)  # as the server serves it: its labels file, its priors
    except ModelLoadError as exc:
        print(f"snakes-web predict: {exc}", file=sys.stderr)
        return 1
    doubt = Doubt.of(settings)
    results: list[dict[str, Any]] = []
    failed = 0
    for path in expand(args.images):
        try:
            predictions = classify(predictor, path, settings)
        except (SnakesError, OSError) as exc:
            failed += 1
            message = describe_error(exc)
            print(f"snakes-web predict: {path}: {message}", file=sys.stderr)
            results.append({"file": str(path), "error": message})
            continue
        shown = predictions[:args.top] if args.top else predictions
        verdict = verdict_of(predictions, doubt)
        result: dict[str, Any] = {"file": str(path), "predictions": [p.as_dict() for p in shown],
                                  "verdict": verdict.kind, "says": verdict.says}
        labels = named(predictions, getattr(predictor, "threshold", None))
        if labels is not None:  # a multi-label model: what fastai's predict names
            result["labels"] = labels
        results.append(result)
        if not args.json:
            said = "" if labels is None else f"labels: {', '.join(labels) or '(none)'}; "
            print(f"{path}: {said}" + ", ".join(f"{p.label} {p.probability:.1%}" for p in shown))
    if args.json:
        print(json.dumps({"model": predictor.describe(), "results": results}, indent=2))
    return 1 if failed else 0


def classify(predictor: Predictor, path: Path, settings: Mapping[str, Any]) -> list[Prediction]:
    """Read one image file as the server reads an upload (its decoder, its limits), and predict it."""
    return predictor.predict(decode_image(path.read_bytes(), settings, min_side=needed_side(predictor)))


def describe_error(error: Exception) -> str:
    """Say in one line why a file could not be predicted."""
    if isinstance(error, SnakesError):
        return error.detail
    if isinstance(error, IsADirectoryError):
        return "is a folder"
    if isinstance(error, OSError):
        return f"cannot be read ({error.strerror or type(error).__name__})"
    return str(error)


def expand(paths: list[Path]) -> list[Path]:
    """Replace each folder by the visible files in it (at any depth), sorted; keep files as given."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += visible_files(path)
        else:
            files.append(path)
    return files
