"""The images every scenario classifies: photo-like JPEGs at 1 and 12 MP and a PNG with alpha, written once per run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from snakes_web.tools.photos import photo_like

ROOT = Path(__file__).resolve().parents[3]  # the repository: snakes_web/tools/bench/ is three below


#: The images every scenario classifies: what phones and web pages send.
IMAGES = {"1 MP JPEG": "photo-1mp.jpg", "12 MP JPEG": "photo-12mp.jpg", "PNG with alpha": "alpha-1mp.png"}


def write_images(folder: Path, scale: float = 1.0) -> dict[str, Path]:
    """Write the bench images: a 1 MP and a 12 MP JPEG (quality 90) and a 1 MP PNG with alpha."""
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {"1 MP JPEG": (1152, 864), "12 MP JPEG": (4032, 3024), "PNG with alpha": (1024, 1024)}
    paths = {}
    for index, (label, name) in enumerate(IMAGES.items()):
        width, height = (max(32, int(v * scale)) for v in sizes[label])
        image = photo_like(width, height, seed=index)
        path = folder / name
        if label == "PNG with alpha":
            alpha = np.linspace(64, 255, width * height).reshape(height, width).astype(np.uint8)
            image.putalpha(Image.fromarray(alpha))
            image.save(path, "PNG")
        else:
            image.save(path, "JPEG", quality=90)
        paths[label] = path
    return paths
