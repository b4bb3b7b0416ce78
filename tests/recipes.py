"""Probes for the recipes of ``snakes_web/tools/bench/recipes.py``: photos where each answer is fastai's.

``probes_for`` returns, for each class, photos on which fastai's own ``predict`` answers that class
(for a multi-label model: photos on which it names that label, and photos on which it does not),
found among held-out photos, photos of two colours, plain colour cards and noise; a recipe for which
some class wins nowhere fails the test instead of passing on one class.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
from PIL import Image

from snakes_web.model.quiet import quiet
from snakes_web.tools.bench.recipes import COLOURS, colour_photo, multi_label_photo


def candidate_photos(seed: int = 2000) -> list[Image.Image]:
    """Held-out photos of every class, photos of two colours, colour cards and noise, in several shapes."""
    rng = random.Random(seed)
    photos = [colour_photo(colour, rng) for colour in COLOURS.values() for _ in range(4)]
    photos += [multi_label_photo(pair, rng) for pair in (("red", "blue"), ("green", "blue"), ("red", "green"))]
    for _ in range(24):
        card = tuple(rng.randint(0, 255) for _ in range(3))
        photos.append(Image.new("RGB", (rng.randint(40, 200), rng.randint(40, 200)), card))
    noise = np.random.default_rng(seed)
    photos += [Image.fromarray(noise.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in ((70, 130), (150, 90))]
    return photos


def fastai_answers(learner: Any, image: Image.Image) -> tuple[list[str], list[float]]:
    """Return what ``learn.predict`` names (the top label, or a multi-label model's labels) and its probabilities."""
    import torch

    with quiet():
        from fastai.vision.core import PILImage

    with torch.inference_mode(), learner.no_bar(), learner.no_logging():
        decoded, _, probabilities = learner.predict(PILImage.create(image))
    named = [str(decoded)] if isinstance(decoded, str) else [str(label) for label in decoded]
    return named, [float(p) for p in probabilities]


def probes_for(learner: Any, multi_label: bool) -> list[Image.Image]:
    """Pick candidate photos so that every label is fastai's answer on one (and, multi-label, absent on one)."""
    labels = [str(label) for label in learner.dls.vocab]
    chosen: dict[tuple[str, bool], Image.Image] = {}
    for photo in candidate_photos():
        named, _ = fastai_answers(learner, photo)
        for label in labels:
            key = (label, label in named)
            if key not in chosen and (key[1] or multi_label):
                chosen[key] = photo
        if len(chosen) == len(labels) * (2 if multi_label else 1):
            break  # every answer has its probe
    missing = [f"{label} {'named' if named else 'absent'}" for label in labels
               for named in ((True, False) if multi_label else (True,)) if (label, named) not in chosen]
    assert not missing, f"no probe where fastai's answer is: {', '.join(missing)} (the recipe did not learn?)"
    return list({id(photo): photo for photo in chosen.values()}.values())
