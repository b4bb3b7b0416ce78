"""Where the model looked: a heatmap as a small grid of numbers, placed on the photo and drawn as a PNG.

NumPy and Pillow only (no torch, no Flask). The backends make the grid: an exact class activation map
when the network ends in global average pooling and a linear layer (``cam``), occlusion otherwise
(``occlusion_grid``, batched, for any network). This module places the grid on the photo (``footprint``:
the part of the photo the model's input covers, after its resize and crop) and draws it
(``render_png``), so the API and the page show the same picture.
"""
from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

#: Occlusion: the input is cut into CELLS × CELLS cells; each patch covers a cell and half of each neighbour.
CELLS = 7
OCCLUSION_BATCH = 16
#: The colour scale, low to high (anchors of matplotlib's "inferno"); style.css draws the same legend.
SCALE = ((0.0, (0, 0, 4)), (0.25, (87, 16, 110)), (0.5, (188, 55, 84)), (0.75, (249, 142, 9)),
         (1.0, (252, 255, 164)))
#: Opacity of the overlay at the low and the high end of the scale (the photo stays visible under it).
ALPHA_LOW, ALPHA_HIGH = 0.15, 0.8
PNG_LONG_SIDE = 112  # the browser scales it up smoothly; a 7×7 grid has no finer detail to show


@dataclass(frozen=True)
class Heatmap:
    """How much each region of the photo counted for one class, from 0 (least) to 1 (most)."""

    label: str
    method: str                             # "cam" or "occlusion"
    grid: np.ndarray                        # rows × columns in [0, 1], top row first
    box: tuple[float, float, float, float]  # where the grid lies: (left, top, right, bottom), fractions of the photo

    def as_dict(self, image_size: tuple[int, int]) -> dict[str, Any]:
        """Return the JSON shape: the PNG to lay over the photo, and the numbers it was drawn from."""
        return {"label": self.label, "method": self.method,
                "png": data_url(render_png(self, image_size)),
                "grid": [[round(float(v), 3) for v in row] for row in self.grid],
                "box": [round(v, 4) for v in self.box]}


def normalised(values: np.ndarray) -> np.ndarray:
    """Scale a map to [0, 1] (min to max); a flat map is all zeros (nothing stood out)."""
    values = np.asarray(values, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if not np.isfinite(low) or not np.isfinite(high) or high - low <= 1e-12 * max(1.0, abs(high)):
        return np.zeros_like(values)
    return (values - low) / (high - low)


def occlusion_grid(run: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, index: int,
                   cells: int = CELLS, batch_size: int = OCCLUSION_BATCH) -> np.ndarray:
    """Cover each region of the model's input in turn; return how much class ``index``'s probability drops.

    ``batch`` is the preprocessed 1×C×H×W input, ``run`` maps N×C×H×W inputs to N×K probabilities.
    Patches are filled with the input's mean colour, and run ``batch_size`` at a time; the drop is measured
    in log-probability, so a confident answer still shows which regions it rests on.
    """
    _, channels, height, width = batch.shape
    fill = batch.mean(axis=(2, 3), keepdims=True)[0]
    base = _evidence(run(batch)[0, index])
    patched: list[np.ndarray] = []
    for row in range(cells):
        for col in range(cells):
            top, bottom = _patch(row, cells, height)
            left, right = _patch(col, cells, width)
            image = batch[0].copy()
            image[:, top:bottom, left:right] = np.broadcast_to(fill, (channels, bottom - top, right - left))
            patched.append(image)
    drops: list[float] = []
    for start in range(0, len(patched), batch_size):
        chunk = np.stack(patched[start:start + batch_size]).astype(batch.dtype, copy=False)
        drops.extend(base - _evidence(p) for p in run(chunk)[:, index])
    grid = np.clip(np.asarray(drops, dtype=np.float64).reshape(cells, cells), 0.0, None)
    return grid / grid.max() if grid.max() > 0 else grid


def _evidence(probability: float) -> float:
    """Measure a probability on a log scale: a 99.9% class still shows what lowers it."""
    return float(np.log(max(float(probability), 0.0) + 1e-9))


def _patch(cell: int, cells: int, side: int) -> tuple[int, int]:
    """Return the [start, end) of the patch over ``cell``: the cell and half of each neighbour."""
    size = side / cells
    return max(0, int(round((cell - 0.5) * size))), min(side, int(round((cell + 1.5) * size)))


def occlusion_by_predict(predict: Callable[[Image.Image], Sequence[Any]], image: Image.Image, label: str,
                         cells: int = CELLS) -> Heatmap:
    """Occlusion through ``predict`` alone, on the photo itself: for a predictor with no ``explain``."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)[None].transpose(0, 3, 1, 2)

    def run(inputs: np.ndarray) -> np.ndarray:
        out = []
        for pixels in inputs:
            picture = Image.fromarray(np.clip(pixels.transpose(1, 2, 0), 0, 255).astype(np.uint8))
            scores = {p.label: p.probability for p in predict(picture)}
            out.append([scores[label]])
        return np.asarray(out)

    return Heatmap(label, "occlusion", occlusion_grid(run, rgb, 0, cells), (0.0, 0.0, 1.0, 1.0))


def footprint(steps: Sequence[dict[str, Any]], size: tuple[int, int]) -> tuple[float, float, float, float]:
    """Return the part of a ``size`` photo the model's input covers after ``steps`` (fractions; may pass 0..1).

    Follows ``transforms.apply_steps``: a resize crops (or pads) a centred box and scales it, a crop_pad
    takes a centred box. Each step maps input coordinates to the photo's by a scale and an offset.
    """
    width, height = size
    scale, offset = [1.0, 1.0], [0.0, 0.0]
    current = [float(width), float(height)]
    for step in steps:
        out_h, out_w = step["size"]
        out = [float(out_w), float(out_h)]
        if step["op"] == "resize":
            box = _resize_box(step["method"], current, out)
            for axis in (0, 1):
                offset[axis] += scale[axis] * box[axis][0]
                scale[axis] *= box[axis][1] / out[axis]
        else:  # crop_pad: a centred box of the output size
            for axis in (0, 1):
                offset[axis] += scale[axis] * ((int(current[axis]) - int(out[axis])) // 2)
        current = out
    left, top = offset
    right, bottom = offset[0] + scale[0] * current[0], offset[1] + scale[1] * current[1]
    return left / width, top / height, right / width, bottom / height


def _resize_box(method: str, current: list[float], out: list[float]) -> tuple[tuple[float, float], ...]:
    """Return, per axis, the (start, length) of the box a fastai ``Resize`` scales to ``out``."""
    if method == "squish":
        return (0.0, current[0]), (0.0, current[1])
    ratio_w, ratio_h = current[0] / out[0], current[1] / out[1]
    keep_w = ratio_w < ratio_h if method == "crop" else ratio_w > ratio_h
    m = ratio_w if keep_w else ratio_h
    crop = (int(m * out[0]), int(m * out[1]))
    return tuple((float(int(0.5 * (current[axis] - crop[axis]))), float(crop[axis])) for axis in (0, 1))


def colours(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGBA bytes on the colour scale, more opaque where higher."""
    stops = np.array([s for s, _ in SCALE])
    rgb = np.stack([np.interp(values, stops, [c[i] for _, c in SCALE]) for i in range(3)], axis=-1)
    alpha = 255 * (ALPHA_LOW + (ALPHA_HIGH - ALPHA_LOW) * values)
    return np.concatenate([rgb, alpha[..., None]], axis=-1).round().astype(np.uint8)


def render_png(heatmap: Heatmap, image_size: tuple[int, int], long_side: int = PNG_LONG_SIDE) -> bytes:
    """Draw the heatmap as a PNG of the photo's shape: the grid smoothed over its box, clear elsewhere."""
    width, height = image_size
    factor = long_side / max(width, height, 1)
    out_w, out_h = max(1, round(width * factor)), max(1, round(height * factor))
    left, top, right, bottom = heatmap.box
    box_w, box_h = max(1, round((right - left) * out_w)), max(1, round((bottom - top) * out_h))
    grid = Image.fromarray(np.asarray(heatmap.grid, dtype=np.float32), mode="F")
    smooth = np.clip(np.asarray(grid.resize((box_w, box_h), Image.Resampling.BILINEAR)), 0.0, 1.0)
    layer = Image.fromarray(colours(smooth), mode="RGBA")
    canvas = Image.new("RGBA", (out_w, out_h), (0, 0, 0, 0))
    canvas.paste(layer, (round(left * out_w), round(top * out_h)))
    out = io.BytesIO()
    canvas.save(out, format="PNG", compress_level=6)  # optimize=True took ~4× longer for ~10% less
    return out.getvalue()


def data_url(png: bytes) -> str:
    """Return a PNG as a data: URL, ready for an <img src>."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def explained(predictor: Any, image: Image.Image, label: str | None) -> tuple[list[Any], Heatmap]:
    """Predict and map ``label`` (None: the top class) with the predictor's own ``explain``, else by occlusion."""
    explain = getattr(predictor, "explain", None)  # optional: fakes and third-party predictors may lack it
    if explain is not None:
        predictions, heatmap = explain(image, label)
        return list(predictions), heatmap
    predictions = list(predictor.predict(image))
    return predictions, occlusion_by_predict(predictor.predict, image, label or predictions[0].label)
