"""`snakes-web evaluate DIR`: how often a model is right on labelled photos, the way users ask it.

DIR is the ``train`` layout, one sub-folder per label. The model loads as the server loads it
(``model.loader.load_configured``: its priors, its labels file) and every photo is read as the server reads an
upload (``predict.classify``). The arithmetic (accuracy, confusion, the snake rates, calibration) is pure
functions over (true label, predictions) pairs; the report is one dict, printed as JSON or as text.
"""
from __future__ import annotations

import argparse
import bisect
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snakes_web.config import load_settings
from snakes_web.exceptions import ModelLoadError, SnakesError
from snakes_web.model.loader import load_configured
from snakes_web.model.predictor import Prediction, Predictor
from snakes_web.web.results import NEGATIVE_LABEL

from .options import add_code_option, code_of
from .predict import classify, describe_error
from .train.dataset import visible_files

#: One evaluated photo: its folder's label and the model's predictions, most likely first.
Outcome = tuple[str, Sequence[Prediction]]

BINS = 10  # equal-width calibration bins over [0, 1]
WIDTH = 100  # columns the text confusion table fits in (for up to ~18 labels)
PROG = "snakes-web evaluate"


class FolderError(ValueError):
    """The photos folder cannot be evaluated; the message says why in one line."""


@dataclass(frozen=True)
class Share:
    """``count`` out of ``total``."""

    count: int
    total: int

    @property
    def rate(self) -> float | None:
        """Return count / total (None when there is nothing to count)."""
        return self.count / self.total if self.total else None

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON shape: count, total and rate."""
        return {"count": self.count, "total": self.total, "rate": self.rate}

    def text(self) -> str:
        """Say it as ``91.7% (11/12)``."""
        return f"{percent(self.rate)} ({self.count}/{self.total})"


@dataclass(frozen=True)
class Bin:
    """One calibration bin: its range of top-1 probability, the photos in it and how often they were right."""

    low: float
    high: float
    count: int
    confidence_sum: float
    correct: int

    @property
    def confidence(self) -> float | None:
        """Return the mean top-1 probability in the bin (None when empty)."""
        return self.confidence_sum / self.count if self.count else None

    @property
    def accuracy(self) -> float | None:
        """Return the share of the bin's photos whose top-1 was right (None when empty)."""
        return self.correct / self.count if self.count else None

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON shape: range, count, mean confidence and accuracy."""
        return {"low": self.low, "high": self.high, "count": self.count,
                "confidence": self.confidence, "accuracy": self.accuracy}


# --- the arithmetic: pure functions over outcomes ------------------------------------------------

def top_label(predictions: Sequence[Prediction]) -> str:
    """Return the model's answer: the most likely label."""
    return predictions[0].label


def accuracy(outcomes: Sequence[Outcome]) -> Share:
    """Return how many photos' top-1 label is their folder's label."""
    return Share(sum(top_label(p) == truth for truth, p in outcomes), len(outcomes))


def confusion(outcomes: Sequence[Outcome], labels: Sequence[str]) -> list[list[int]]:
    """Return counts[true label][predicted label], both indexed in ``labels``' order."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for truth, predictions in outcomes:
        matrix[index[truth]][index[top_label(predictions)]] += 1
    return matrix


def snake_rates(outcomes: Sequence[Outcome], negative: str = NEGATIVE_LABEL) -> dict[str, Share]:
    """Return snakes found, species right among snake photos, and non-snakes kept as non-snakes."""
    snakes = [(truth, top_label(p)) for truth, p in outcomes if truth != negative]
    others = [top_label(p) for truth, p in outcomes if truth == negative]
    return {"snakes_found": Share(sum(answer != negative for _, answer in snakes), len(snakes)),
            "species_right": Share(sum(answer == truth for truth, answer in snakes), len(snakes)),
            "non_snakes_kept": Share(sum(answer == negative for answer in others), len(others))}


def calibration_bins(outcomes: Sequence[Outcome], bins: int = BINS) -> list[Bin]:
    """Sort photos by top-1 probability into ``bins`` equal-width bins over [0, 1] (the last one holds 1.0)."""
    edges = [i / bins for i in range(1, bins)]  # a probability on an edge goes to the bin above it
    counts, sums, right = [0] * bins, [0.0] * bins, [0] * bins
    for truth, predictions in outcomes:
        where = bisect.bisect_right(edges, predictions[0].probability)
        counts[where] += 1
        sums[where] += predictions[0].probability
        right[where] += top_label(predictions) == truth
    return [Bin(i / bins, (i + 1) / bins, counts[i], sums[i], right[i]) for i in range(bins)]


def expected_calibration_error(bins: Sequence[Bin]) -> float:
    """Return the sum over bins of |accuracy - mean confidence| x the bin's share of the photos."""
    total = sum(b.count for b in bins)
    return sum(abs(b.correct - b.confidence_sum) for b in bins) / total if total else 0.0


def build_report(outcomes: Sequence[Outcome], labels: Sequence[str], model: Mapping[str, Any],
                 unreadable: Sequence[Mapping[str, str]] = ()) -> dict[str, Any]:
    """Return everything measured, as one JSON-ready dict (the text output is printed from it)."""
    bins = calibration_bins(outcomes)
    rates = snake_rates(outcomes) if NEGATIVE_LABEL in labels else None
    return {"model": dict(model), "photos": len(outcomes), "unreadable": len(unreadable),
            "unreadable_files": [dict(item) for item in unreadable],
            "accuracy": accuracy(outcomes).as_dict(),
            "confusion": {"labels": list(labels), "matrix": confusion(outcomes, labels)},
            "snakes": None if rates is None else {name: share.as_dict() for name, share in rates.items()},
            "calibration": {"ece": expected_calibration_error(bins), "bins": [b.as_dict() for b in bins]}}


# --- the text output ----------------------------------------------------------------------------

def percent(rate: float | None) -> str:
    """Say a rate as a percentage with one decimal ("-" for none)."""
    return "-" if rate is None else f"{rate:.1%}"


def render_text(report: Mapping[str, Any]) -> str:
    """Return the report as the text a person reads."""
    lines = [model_line(report["model"]),
             f"Photos: {report['photos']} evaluated" + (f", {report['unreadable']} unreadable (not counted)"
                                                          if report["unreadable"] else ""),
             f"Top-1 accuracy: {share_text(report['accuracy'])}"]
    if report["snakes"] is not None:
        snakes = report["snakes"]
        lines += [f"Snakes found: {share_text(snakes['snakes_found'])} of snake photos not answered "
                  f"\"{NEGATIVE_LABEL}\"",
                  f"Species right: {share_text(snakes['species_right'])} of snake photos",
                  f"Non-snakes kept: {share_text(snakes['non_snakes_kept'])} of \"{NEGATIVE_LABEL}\" photos "
                  f"answered \"{NEGATIVE_LABEL}\""]
    lines += ["", *confusion_table(report["confusion"]["labels"], report["confusion"]["matrix"]),
              "", *calibration_table(report["calibration"])]
    return "\n".join(lines)


def share_text(share: Mapping[str, Any]) -> str:
    """Say a share's JSON shape as ``91.7% (11/12)``."""
    return Share(share["count"], share["total"]).text()


def model_line(model: Mapping[str, Any]) -> str:
    """Say which model was measured, and at which prior."""
    said = f"Model: {model.get('name', '?')} ({model.get('backend', '?')})"
    priors = model.get("priors")
    if isinstance(priors, Mapping) and isinstance(priors.get("deployment"), Mapping):
        shares = ", ".join(f"{label} {value:.3g}" for label, value in priors["deployment"].items())
        return f"{said}, measured at the deployment prior {shares} (from {priors.get('source', '?')})"
    if priors:
        return f"{said}, measured at the priors {priors}"
    return f"{said}, measured at its training prior" if "priors" in model else said


def confusion_table(labels: Sequence[str], matrix: Sequence[Sequence[int]], width: int = WIDTH) -> list[str]:
    """Return the confusion matrix as text: numbered label rows, numbered columns, each row's share right."""
    number = len(str(len(labels)))
    cell = max(number, *(len(str(count)) for row in matrix for count in row)) + 1
    fixed = number + 1 + 2 + cell * len(labels) + 8  # "12 " + name + " |" + cells + " | right"
    longest = max(len(label) for label in labels)
    name = max(12, min(longest, width - fixed))
    lines = ["Confusion: rows are the true label (the folder), columns the answer, numbered as the rows; . is 0",
             f"{'':>{number}} {'':<{name}} |" + "".join(f"{i:>{cell}}" for i in range(1, len(labels) + 1))
             + " | right"]
    for i, (label, row) in enumerate(zip(labels, matrix, strict=True), start=1):
        shown = label if len(label) <= name else label[:name - 1] + "…"
        cells = "".join(f"{count if count else '.':>{cell}}" for count in row)
        right = f"{row[i - 1] / sum(row):5.0%}" if sum(row) else f"{'-':>5}"
        lines.append(f"{i:>{number}} {shown:<{name}} |{cells} | {right}")
    return lines


def calibration_table(calibration: Mapping[str, Any]) -> list[str]:
    """Return the calibration of the top-1 probability as text: the ECE, then one line per bin."""
    lines = [f"Calibration of the top-1 probability: ECE {calibration['ece']:.3f} "
             f"({len(calibration['bins'])} equal-width bins)",
             "  range       photos  confidence  accuracy"]
    for b in calibration["bins"]:
        confidence = "-" if b["confidence"] is None else f"{b['confidence']:.3f}"
        right = "-" if b["accuracy"] is None else f"{b['accuracy']:.3f}"
        lines.append(f"  {b['low']:.1f}-{b['high']:.1f}  {b['count']:>8}  {confidence:>10}  {right:>8}")
    return lines


# --- the files and the command -------------------------------------------------------------------

def labelled_photos(folder: Path, labels: Sequence[str]) -> list[tuple[Path, str]]:
    """Return (photo, label) for every visible file in each label's sub-folder; raise ``FolderError`` if none."""
    if not folder.is_dir():
        raise FolderError(f"{folder} is not a folder; give one with a sub-folder of photos per label.")
    folders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in folders if p.name not in labels]
    if unknown:
        raise FolderError(f"folder(s) not among the model's labels: {', '.join(unknown)}; "
                          f"the model's labels: {', '.join(labels)}.")
    photos = [(path, p.name) for p in folders for path in visible_files(p)]
    if not photos:
        raise FolderError(f"no photos in {folder}; give one sub-folder of photos per label "
                          f"({', '.join(labels)}).")
    return photos


def predict_photos(predictor: Predictor, photos: Sequence[tuple[Path, str]],
                   settings: Mapping[str, Any]) -> tuple[list[Outcome], list[dict[str, str]]]:
    """Predict every photo as the server would; return the outcomes and the files that could not be read."""
    outcomes: list[Outcome] = []
    unreadable: list[dict[str, str]] = []
    for path, label in photos:
        try:
            outcomes.append((label, classify(predictor, path, settings)))
        except (SnakesError, OSError) as exc:
            message = describe_error(exc)
            print(f"{PROG}: {path}: {message}", file=sys.stderr)
            unreadable.append({"file": str(path), "error": message})
    return outcomes, unreadable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare `snakes-web evaluate`'s arguments."""
    parser.description = ("Measure a model on labelled photos: top-1 accuracy, the confusion table, the snake "
                          "rates (for a model with a \"not a snake\" label) and calibration. Exits 0 when at "
                          "least one photo was evaluated (unreadable files are reported, not counted), 1 when "
                          "the model cannot load or the folder has no photos or a folder that is not a label.")
    parser.add_argument("folder", type=Path, help="one sub-folder of photos per label, named as the model's labels "
                                                  "(the `snakes-web train` layout)")
    parser.add_argument("--model", type=Path, default=None,
                        help="the model: an export.pkl or a .onnx (default: SNAKES_MODEL)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    add_code_option(parser)


def run(args: argparse.Namespace) -> int:
    """Evaluate the model on the folder; return 0 when at least one photo was evaluated, else 1."""
    path = args.model if args.model is not None else Path(load_settings()["MODEL"])
    settings = load_settings(overrides={"MODEL": str(path), "MODEL_CODE": ",".join(code_of(args))})
    try:
        predictor = load_configured(settings)
    except ModelLoadError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    try:
        photos = labelled_photos(args.folder, predictor.labels)
    except FolderError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    outcomes, unreadable = predict_photos(predictor, photos, settings)
    if not outcomes:
        print(f"{PROG}: none of the {len(photos)} files in {args.folder} is an image we read.", file=sys.stderr)
        return 1
    report = build_report(outcomes, predictor.labels, predictor.describe(), unreadable)
    print(json.dumps(report, indent=2) if args.json else render_text(report))
    return 0
