"""Generated photo-like images and calibration photos: what the bench classifies and int8 is calibrated on.

No files and no downloads: smooth colour fields, edges and sensor-like noise, seeded, so every run
sees the same pixels. ``calibration_images`` reads a folder of the user's own photos instead when given.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from snakes_web.imaging.images import load_image


def photo_like(width: int, height: int, seed: int) -> Image.Image:
    """Return a photo-like RGB image: smooth colour fields, edges and sensor-like noise."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 255, (9, 12, 3), dtype=np.uint8)).resize((width, height),
                                                                                      Image.Resampling.BICUBIC)
    pixels = np.asarray(coarse, dtype=np.int16)
    stripes = ((np.arange(width)[None, :] // max(1, width // 40)) % 2 * 40 - 20).astype(np.int16)
    noise = rng.normal(0, 6, (height, width, 3)).astype(np.int16)
    return Image.fromarray(np.clip(pixels + stripes[:, :, None] + noise, 0, 255).astype(np.uint8))


def generated_photos(seeds: Any) -> list[Any]:
    """Return photo-like generated images , one per seed."""
    return [photo_like(640, 480, seed) for seed in seeds]


def calibration_images(folder: Path | None) -> list[Any]:
    """Load up to 64 images from ``folder`` (at any depth), or generate 16 photo-like ones, for int8 calibration."""
    if folder is None:
        return generated_photos(range(16))
    paths = sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith("."))
    images = []
    for path in paths:
        try:
            images.append(load_image(path.read_bytes(), 50_000_000))
        except Exception:  # noqa: BLE001 - a file that is not an image we read is no calibration photo
            continue
        if len(images) == 64:
            break
    return images
