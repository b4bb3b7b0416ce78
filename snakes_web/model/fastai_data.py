"""The fastai getters ``snakes-web train`` builds its data loaders from, and its exports carry.

fastai pickles them into every export by dotted path, so the server needs them to load a trained
model: they live in the model layer, not with the command. Exports made before the layered layout
name them ``snakes_web.training.*``, which ``snakes_web/training.py`` keeps importable.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from snakes_web.imaging.images import load_image

from .quiet import quiet


class ReadPhoto:
    """fastai ``get_x``: read a photo with the server's decoder (upright, RGB, same JPEG draft scale)."""

    def __init__(self, max_pixels: int, min_side: int | None) -> None:
        self.max_pixels, self.min_side = max_pixels, min_side

    def decode(self, data: bytes) -> Image.Image:
        """Return the upright RGB image in ``data``, or raise the server's typed error."""
        return load_image(data, self.max_pixels, min_side=self.min_side)

    def __call__(self, path: Path) -> Any:
        """Return the photo at ``path`` as fastai's ``PILImage``."""
        with quiet():
            from fastai.vision.core import PILImage

        return PILImage(self.decode(Path(path).read_bytes()))


class ClassFolder:
    """fastai ``get_y``: the class is the folder at a fixed depth of the path (photos may sit deeper)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth

    def __call__(self, path: Path) -> str:
        """Return the name of the class folder that holds ``path``."""
        return Path(path).parts[self.depth]
