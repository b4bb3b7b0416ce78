"""The bench's heatmap section: what ``?explain=`` costs, and that requests without it cost what they did.

In one process, through the app's WSGI interface (request parsing, decoding, the model, the PNG, the
JSON; no network, so the model's share is not diluted by it), the same photo is posted to
``/api/v1/predict`` by each configuration in turn, round after round (so a noisy neighbour slows all
of them alike), and the median time per request is compared with the baseline measured in the same run:
the ONNX export *without* the maps output, as every export was before heatmaps, without ``?explain``.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROUNDS = 5


@dataclass(frozen=True)
class Config:
    """One measured configuration: a name, the predictor it serves, and the query string it sends."""

    name: str
    predictor: Any
    query: str


def explain_section(pkl: Path, onnx_with_maps: Path, image: Path, label: str, scratch: Path,
                    duration: float) -> str:
    """Measure every configuration on ``image``; return the Markdown section for docs/benchmarks.md."""
    from snakes_web.model.fastai_backend import FastaiPredictor
    from snakes_web.model.onnx_backend import OnnxPredictor
    from snakes_web.model.onnx_export import export_onnx

    plain = scratch / "model-no-maps.onnx"
    export_onnx(pkl, plain, maps=False)
    before, after, fastai = OnnxPredictor(plain, threads=1), OnnxPredictor(onnx_with_maps, threads=1), \
        FastaiPredictor(pkl, threads=1)
    configs = [
        Config("ONNX, export without maps (as before), no `explain`", before, ""),
        Config("ONNX, export with maps, no `explain`", after, ""),
        Config(f"ONNX, export with maps, `?explain=top` ({after.explains_with})", after, "?explain=top"),
        Config(f"ONNX, export without maps, `?explain=top` ({before.explains_with})", before, "?explain=top"),
        Config("fastai, no `explain`", fastai, ""),
        Config(f"fastai, `?explain=top` ({fastai.explains_with})", fastai, "?explain=top"),
    ]
    data = image.read_bytes()
    times = measure([_poster(config, data) for config in configs], duration)
    return _section(configs, times, label, plain.stat().st_size, onnx_with_maps.stat().st_size)


def _poster(config: Config, data: bytes) -> Callable[[], float]:
    """Return a function that posts the photo once through the app and returns the seconds it took."""
    import io

    from snakes_web import create_app

    client = create_app({"PREDICTOR": config.predictor, "METRICS": False}).test_client()

    def post() -> float:
        started = time.perf_counter()
        response = client.post("/api/v1/predict" + config.query, data={"file": (io.BytesIO(data), "photo.jpg")})
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.get_data(as_text=True)[:200]
        return elapsed

    post()  # warm up: the first request of each pays one-off costs
    return post


def measure(posters: list[Callable[[], float]], duration: float) -> list[list[float]]:
    """Run each poster for ``duration / ROUNDS`` seconds per round, in turn, for ROUNDS rounds."""
    times: list[list[float]] = [[] for _ in posters]
    for _ in range(ROUNDS):
        for index, post in enumerate(posters):
            deadline = time.perf_counter() + duration / ROUNDS
            times[index].append(post())
            while time.perf_counter() < deadline:
                times[index].append(post())
    return times


def _section(configs: list[Config], times: list[list[float]], image: str, plain_bytes: int,
             maps_bytes: int) -> str:
    """Format the measurements as a Markdown table with ratios against the first configuration."""
    base = statistics.median(times[0])
    rows = ["", "**Heatmaps (`?explain=`).** In process, through the app's WSGI interface (parsing, decoding, "
            f"model, PNG, JSON; no network), one thread, the {image}; configurations take turns for "
            f"{ROUNDS} rounds and the median per request is compared with the first row, measured in the "
            f"same run. The export with maps is {maps_bytes / 2**20:.2f} MB, without {plain_bytes / 2**20:.2f} MB.",
            "", "| configuration | requests | median ms/request | × the first row |", "|---|---:|---:|---:|"]
    for config, samples in zip(configs, times, strict=True):
        median = statistics.median(samples)
        rows.append(f"| {config.name} | {len(samples)} | {median * 1000:.1f} | {median / base:.2f}× |")
    return "\n".join(rows) + "\n"
