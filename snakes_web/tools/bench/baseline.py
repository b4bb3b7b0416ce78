"""The baselines (their own process): ``learn.predict`` as usually written, and its strongest honest configuration."""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .processes import rss_mb, torch_threads
from .scenarios import STRONGEST


def baseline(model: Path, images: dict[str, Path], warmup: float, duration: float, launched: float,
             style: str = STRONGEST) -> dict[str, Any]:
    """Time ``learn.predict``, one image after another, in the ``style`` of ``BASELINES``."""
    import torch

    from snakes_web.model.fastai_backend import load_learner_quietly
    from snakes_web.model.quiet import quiet

    if style == STRONGEST:
        torch.set_num_threads(torch_threads())  # every core this process may use
    learner = load_learner_quietly(model)  # no ProgressCallback: no bar in either style
    predict = _strongest_predict(learner) if style == STRONGEST else learner.predict
    first = next(iter(images.values())).read_bytes()
    with quiet(), learner.no_bar(), learner.no_logging():
        predict(first)
    result: dict[str, Any] = {"start_to_first_answer_s": time.time() - launched, "loads": {}}
    for label, path in images.items():
        data = path.read_bytes()
        latencies: list[float] = []
        with quiet(), learner.no_bar(), learner.no_logging():
            deadline = time.monotonic() + warmup
            while time.monotonic() < deadline:
                predict(data)
            start, cpu = time.monotonic(), time.process_time()  # process time: every torch thread
            while time.monotonic() - start < duration or not latencies:
                began = time.monotonic()
                predict(data)
                latencies.append((time.monotonic() - began) * 1000)
            seconds, cpu = time.monotonic() - start, time.process_time() - cpu
        result["loads"][label] = {"requests": len(latencies), "seconds": seconds, "latencies_ms": latencies,
                                  "total": len(latencies), "cpu_ms_per_image": cpu * 1000 / len(latencies)}
    result["rss_mb"] = [rss_mb(os.getpid())]
    result["threads"] = torch.get_num_threads()
    return result


def _strongest_predict(learner: Any) -> Callable[[bytes], Any]:
    """Return bytes → ``learn.predict`` of the image decoded once (``PILImage.create``), in inference mode."""
    import torch

    from snakes_web.model.quiet import quiet

    with quiet():
        from fastai.vision.core import PILImage

    def predict(data: bytes) -> Any:
        with torch.inference_mode():
            return learner.predict(PILImage.create(data))

    return predict
