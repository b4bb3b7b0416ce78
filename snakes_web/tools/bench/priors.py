"""The bench's priors scenario: what the label-shift correction and the verdict cost a prediction.

The int8 server on the 1 MP JPEG two ways, alternated over rounds in one run: the model's own
probabilities (``SNAKES_PRIORS=none``) and with the deployment prior (the default model's labels file
says ``not a snake=0.5``; a model without one gets ``<first label>=0.5`` over a uniform training prior,
so the section always measures a correction). Images/s, CPU per image and the answer's size.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from .receipts import alternated, ways_table

PRIORS_HEADING = "## Priors and the verdict: what an honest answer costs"


def priors_ways(model: Path, work: Path) -> tuple[list[tuple[str, dict[str, str], str]], str]:
    """Return the two ways to serve ``model`` and the prior the second applies (in words)."""
    from snakes_web.config import load_settings
    from snakes_web.model.loader import load_configured

    predictor = load_configured(load_settings(overrides={"MODEL": str(model)}))
    priors = predictor.describe().get("priors")
    settings: dict[str, str] = {}
    if priors is None:  # a model without a deployment prior of its own: give it one, over a uniform training prior
        labels = list(predictor.labels)
        guide = work / "bench-labels.json"
        guide.write_text(json.dumps({"labels": {}, "training_prior": dict.fromkeys(labels, 1)}))
        settings = {"SNAKES_PRIORS": f"{labels[0]}=0.5", "SNAKES_LABELS": str(guide)}
        said = f"`SNAKES_PRIORS={labels[0]}=0.5` over a uniform training prior"
    else:
        said = f"the prior of {priors['source']}"
    return [("the model's own probabilities (`SNAKES_PRIORS=none`)", {"SNAKES_PRIORS": "none"}, "/api/v1/predict"),
            ("with the deployment prior (as shipped)", settings, "/api/v1/predict")], said


def in_process_cost(model: Path, image: Path, settings: dict[str, str], times: int = 2000) -> tuple[float, float]:
    """Return (µs to correct one answer and judge its verdict, ms of the backend's own prediction), in process."""
    from PIL import Image

    from snakes_web.config import load_settings
    from snakes_web.model.loader import load_configured
    from snakes_web.web.results import Doubt, verdict_of

    config = load_settings(environ={**os.environ, **settings}, overrides={"MODEL": str(model), "TORCH_THREADS": 1})
    served = load_configured(config)
    doubt = Doubt.of(config)
    photo = Image.open(image).convert("RGB")
    backend = served.backend_predictor
    raw = backend.predict(photo)  # warm-up
    started = time.perf_counter()
    for _ in range(5):
        raw = backend.predict(photo)
    forward_ms = (time.perf_counter() - started) / 5 * 1000
    started = time.perf_counter()
    for _ in range(times):
        verdict_of(served.corrected(raw), doubt)
    return (time.perf_counter() - started) / times * 1e6, forward_ms


def priors_section(model: Path, image: Path, args: argparse.Namespace, work: Path) -> str:
    """Measure both ways ``rounds`` times, alternating, and return the Markdown section."""
    rounds = 1 if args.smoke else 4  # the difference sought is small: more rounds against drift
    ways, said = priors_ways(model, work)
    runs = alternated(ways, model, image, args, work, "priors", rounds)
    correction_us, forward_ms = in_process_cost(model, image, ways[1][1])
    lines = ["", PRIORS_HEADING, "",
             f"The int8 server (shipped defaults but the settings named), {args.concurrency} uploads of the "
             f"1 MP JPEG in flight, each way measured {rounds} time(s), alternated, in this run; the mean. The "
             f"second way applies {said}. Both read the labels file, so both answers carry the verdict, its "
             f"sentence and `about`.", ""]
    lines += ways_table(runs, "no prior")
    lines += ["", f"In process, one thread: correcting one answer for the prior and judging its verdict takes "
                  f"{correction_us:.1f} µs; the backend's own prediction of that image (decoded) takes "
                  f"{forward_ms:.1f} ms, {correction_us / 10 / forward_ms:.2f}% of it."]
    return "\n".join(lines) + "\n"
