"""The bench's in-process model measurements: int8 agreement per class, batching, and where a request goes.

Three parts of `snakes-web bench` that need no server:

- ``int8_role`` (its own process: torch) makes the int8 export the way ``export-onnx --int8`` does
  and measures its top-1 agreement with fp32 on the check sets: photos, and positives of every class
  synthesised from them (``positives``); ``agreement_section`` renders it per set and per class.
- ``batching`` times the forward pass per image at batch 1, 2, 4 and 8 on one intra-op thread,
  interleaved and repeated, so the ratios come from the same moments.
- ``breakdown`` times each stage of a served request (decode, preprocessing, forward, the rest of
  the request) in process for each image, to say where a 12 MP JPEG's extra cost goes.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .images import ROOT

BATCHES = (1, 2, 4, 8)
#: The bar for serving int8 by default (the issue's target): on every check set and every class.
DEFAULT_BAR = 0.995


# --- int8: export and agreement (torch, in its own process) ----------------------------------

def check_photos(images: dict[str, Path]) -> dict[str, Path]:
    """Return the photos int8 is checked on: the repository's CC0 photos (when present) and the bench images."""
    return {**{p.name: p for p in sorted((ROOT / "tests" / "data").glob("*.jpg"))}, **images}


def int8_role(pkl: Path, fp32: Path, destination: Path, photos: dict[str, Path]) -> dict[str, Any]:
    """Quantize as ``export-onnx --int8`` does (generated calibration) and measure it on the check sets."""
    from snakes_web.imaging.images import load_image
    from snakes_web.model.quantize import export_int8
    from snakes_web.tools.photos import calibration_images, generated_photos

    started = time.monotonic()
    images = [load_image(path.read_bytes(), 100_000_000) for path in photos.values()]
    images += generated_photos(range(100, 108))
    result = export_int8(pkl, fp32, destination, calibration_images(None), images, min_agreement=0.0, per_class=2)
    return {"agreements": [asdict(a) for a in result.agreements], "positives": result.positives,
            "tried": result.tried, "photos": len(images), "seconds": time.monotonic() - started}


def agreement_section(measured: dict[str, Any]) -> str:
    """Render the int8 agreement per check set and per class (fp32's answer) as Markdown."""
    sets = measured["agreements"]
    lines = ["", f"**int8 against fp32, per class.** The int8 file is made as `export-onnx --int8` makes it "
             f"(calibrated on 16 generated images; the classifier head in fp32) and checked on two sets "
             f"({measured['seconds']:.0f} s with the synthesis): *photos*, {measured['photos']} images (the "
             f"repository's CC0 photos, the bench images and 8 generated ones), and *positives*: for every class, "
             f"{measured['tried'] // max(1, len(measured['positives']))} inputs the fp32 network itself rates as "
             f"that class, pushed there from those photos by gradient ascent on the fp32 model "
             f"(`snakes_web/model/positives.py`; kept only when fp32's top-1 is the class: "
             f"{sum(measured['positives'].values())} of {measured['tried']} were). Classes are fp32's answers. "
             f"Bar for serving int8 by default: ≥ {DEFAULT_BAR:.1%} on every set and every class.", "",
             "| check set | inputs | same top-1 | agreement | classes fp32 answered | lowest class |",
             "|---|---:|---:|---:|---:|---|"]
    for entry in sets:
        rates = {label: same / n for label, (same, n) in entry["per_class"].items() if n}
        worst = min(rates, key=rates.__getitem__) if rates else "—"
        rate = entry["same"] / entry["total"] if entry["total"] else 1.0
        lines.append(f"| {entry['name']} | {entry['total']} | {entry['same']} | {rate:.1%} | {len(rates)} | "
                     f"{worst} ({rates.get(worst, 1.0):.0%}) |")
    labels = list(measured["positives"])
    header = " | ".join(entry["name"] for entry in sets)
    lines += ["", f"| class (fp32's answer) | {header} |", "|---|" + "---:|" * len(sets)]
    for label in labels:
        cells = []
        for entry in sets:
            same, n = entry["per_class"].get(label, (0, 0))
            cells.append(f"{same}/{n}" if n else "—")
        lines.append(f"| {label} | {' | '.join(cells)} |")
    lines.append(f"\nint8 meets the bar: **{'yes' if meets_bar(measured) else 'no'}**.")
    return "\n".join(lines) + "\n"


def meets_bar(measured: dict[str, Any], bar: float = DEFAULT_BAR) -> bool:
    """Tell whether int8 agrees with fp32 on at least ``bar`` of every check set and every class."""
    for entry in measured["agreements"]:
        if entry["total"] and entry["same"] / entry["total"] < bar:
            return False
        if any(n and same / n < bar for same, n in entry["per_class"].values()):
            return False
    return all(measured["positives"].values())  # a class without a positive was not checked


# --- batching ----------------------------------------------------------------------------------

def batching(models: dict[str, Path], sample: np.ndarray, repeats: int = 5,
             per_round: int = 16) -> dict[str, dict[int, float]]:
    """Return CPU ms per image of the forward pass at each batch size, one intra-op thread (median of rounds)."""
    from snakes_web.model.quantize import session

    results: dict[str, dict[int, float]] = {}
    for name, path in models.items():
        opened = session(path)
        input_name = opened.get_inputs()[0].name
        inputs = {b: np.ascontiguousarray(np.repeat(sample, b, axis=0)) for b in BATCHES}
        for batch in BATCHES:
            opened.run(None, {input_name: inputs[batch]})
        rounds: dict[int, list[float]] = {b: [] for b in BATCHES}
        for _ in range(repeats):
            for batch in BATCHES:  # interleaved: every size sees the same neighbours
                calls = max(1, per_round // batch)
                began = time.process_time()
                for _ in range(calls):
                    opened.run(None, {input_name: inputs[batch]})
                rounds[batch].append((time.process_time() - began) * 1000 / (calls * batch))
        results[name] = {b: statistics.median(v) for b, v in rounds.items()}
    return results


def batching_section(measured: dict[str, dict[int, float]], repeats: int) -> str:
    """Render the batching measurement, with the per-image ratio against batch 1."""
    lines = ["", "**Batching.** Forward pass alone, one intra-op thread (as each worker runs it), CPU ms per image "
             f"at each batch size and the ratio against batch 1 (median of {repeats} interleaved rounds of 16 "
             "images, this run). The server runs one image per call: a batch would have to gain more than the wait "
             "it adds to gather one.", "",
             "| model | " + " | ".join(f"batch {b}" for b in BATCHES) + " |", "|---|" + "---:|" * len(BATCHES)]
    for name, per_batch in measured.items():
        base = per_batch[1]
        cells = " | ".join(f"{ms:.2f} ({ms / base:.2f}×)" for ms in per_batch.values())
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines) + "\n"


# --- where a request's time goes ---------------------------------------------------------------

def cpu_ms(call: Callable[[], Any], times: int) -> float:
    """Return the CPU ms one call takes (after one unmeasured call), averaged over ``times``."""
    call()
    began = time.process_time()
    for _ in range(times):
        call()
    return (time.process_time() - began) * 1000 / times


def breakdown(model: Path, images: dict[str, Path], labels: Sequence[str],
              times: int = 10) -> dict[str, dict[str, float]]:
    """Time each stage of a served API request in process (one thread), per image: CPU ms."""
    from snakes_web import create_app
    from snakes_web.model.onnx_backend import OnnxPredictor

    predictor = OnnxPredictor(model, threads=1)
    client = create_app({"MODEL": str(model), "TORCH_THREADS": 1, "METRICS": False}).test_client()
    return {label: _stages(images[label], predictor, client, times) for label in labels}


def _stages(path: Path, predictor: Any, client: Any, times: int) -> dict[str, float]:
    """Time the stages of one image's request: sniffing, decoding, preprocessing, forward, the whole."""
    from snakes_web.imaging.images import load_image, thumbnail_jpeg
    from snakes_web.imaging.sniff import sniff

    from .client import multipart

    data = path.read_bytes()
    body, content_type = multipart(data, path.name)
    image = load_image(data, 100_000_000, min_side=predictor.min_side)
    batch = predictor.prepare(image)
    stages = {
        "sniff (only for a refused file)": cpu_ms(lambda: sniff(data), times),
        "decode, full size (not done)": cpu_ms(lambda: load_image(data, 100_000_000), max(2, times // 3)),
        "decode with draft": cpu_ms(lambda: load_image(data, 100_000_000, min_side=predictor.min_side), times),
        "resize + normalise": cpu_ms(lambda: predictor.prepare(image), times),
        "forward": cpu_ms(lambda: predictor._session.run(None, {predictor.input_name: batch}), times),
        "page preview thumbnail (page only)": cpu_ms(lambda: thumbnail_jpeg(image), times),
        "whole API request in process": cpu_ms(
            lambda: client.post("/api/v1/predict", data=body, content_type=content_type), times),
    }
    stages["rest: multipart, Flask, JSON"] = (stages["whole API request in process"] - stages["decode with draft"]
                                              - stages["resize + normalise"] - stages["forward"])
    return stages


def breakdown_section(measured: dict[str, dict[str, float]], served: str, big: str, small: str,
                      over_http: dict[str, float]) -> str:
    """Render the per-stage costs of each image and the big-over-small ratio, beside the HTTP measurement."""
    labels = list(measured)
    lines = ["", f"**Where a request goes, {big} against {small}** ({served}; in process, one thread, CPU ms per "
             f"image; *over HTTP* is the served row's CPU ms/image above, gunicorn and sockets included). "
             f"Target: {big} at most 2.5× {small}.", "",
             "| stage | " + " | ".join(labels) + f" | {big} ÷ {small} |", "|---|" + "---:|" * (len(labels) + 1)]
    stages = list(next(iter(measured.values())))
    for stage in stages:
        cells = [f"{measured[label][stage]:.2f}" for label in labels]
        ratio = measured[big][stage] / measured[small][stage] if measured[small][stage] > 0.05 else float("nan")
        lines.append(f"| {stage} | {' | '.join(cells)} | {ratio:.2f}× |")
    if all(label in over_http for label in labels):
        cells = [f"{over_http[label]:.1f}" for label in labels]
        lines.append(f"| over HTTP (served row) | {' | '.join(cells)} | {over_http[big] / over_http[small]:.2f}× |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the int8 role in its own process (the bench never imports torch itself); print JSON."""
    parser = argparse.ArgumentParser(prog="python -m snakes_web.tools.bench.in_process")
    parser.add_argument("pkl", type=Path)
    parser.add_argument("fp32", type=Path)
    parser.add_argument("destination", type=Path)
    parser.add_argument("--photos", required=True, help="JSON: name → path")
    args = parser.parse_args(argv)
    photos = {name: Path(path) for name, path in json.loads(args.photos).items()}
    from snakes_web.model.quiet import quiet

    with quiet():
        measured = int8_role(args.pkl, args.fp32, args.destination, photos)
    print(json.dumps(measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
