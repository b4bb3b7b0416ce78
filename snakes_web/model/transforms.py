"""fastai's prediction-time image transforms, redone in Pillow and NumPy (no torch, no fastai).

A model's preprocessing is a list of steps, stored as JSON in its ONNX file by ``onnx_export``:

- ``{"op": "resize", "size": [h, w], "method": "crop"|"squish"|"pad", "pad_mode": ..., "resample": ...}``
  is fastai's ``Resize`` on the validation split (centred crop or pad, then one resize);
- ``{"op": "crop_pad", "size": [h, w], "pad_mode": ...}`` is fastai's ``CropPad`` (centred).

Each step follows ``fastai.vision.augment`` (``Resize.encodes``, ``CropPad.encodes``,
``Image._do_crop_pad``) operation by operation, on the same Pillow calls, so the pixels are the same
(except where a resize and the centre crop after it are fused: see ``_crop_pad``).
Then ``to_input`` scales and normalises like ``IntToFloatTensor`` and ``Normalize``.

``preprocessing_of`` reads those steps from a fastai learner's transforms, by class name and without
importing fastai: the ONNX export writes them into the file, and the fastai backend sizes its decoding by them.
Batch transforms that resize on the validation split (``aug_transforms(size=…)``) are measured at export
by ``resampling.extract`` into one more step, ``{"op": "resample", ...}``, that ``Resample`` applies after
the division and before the normalisation, where fastai applies them.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageOps

#: fastai's PadMode names and the NumPy pad mode torchvision uses for each (zeros is a constant 0 border).
PAD_MODES = {"zeros": "constant", "border": "edge", "reflection": "reflect"}
RESIZE_METHODS = ("crop", "squish", "pad")
RESAMPLES = {"nearest": Image.Resampling.NEAREST, "box": Image.Resampling.BOX,
             "bilinear": Image.Resampling.BILINEAR, "hamming": Image.Resampling.HAMMING,
             "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}

Step = Mapping[str, Any]


def apply_steps(image: Image.Image, steps: Sequence[Step]) -> Image.Image:
    """Run the item transforms on a PIL image, as fastai does on the validation split."""
    index = 0
    while index < len(steps):
        step = steps[index]
        height, width = step["size"]
        if step["op"] == "resize":
            crop = _centre_crop_after(step, steps[index + 1] if index + 1 < len(steps) else None)
            image = _resize(image, (width, height), step["method"], step["pad_mode"], RESAMPLES[step["resample"]],
                            crop)
            index += 2 if crop else 1
            continue
        if step["op"] == "crop_pad":
            w, h = image.size
            image = _crop_pad(image, (width, height), ((w - width) // 2, (h - height) // 2), step["pad_mode"])
        else:
            raise ValueError(f"unknown preprocessing step {step['op']!r}")
        index += 1
    return image


def _centre_crop_after(resize: Step, following: Step | None) -> tuple[int, int] | None:
    """Return (width, height) when the next step only crops the resized image (fused into the resize)."""
    if following is None or following["op"] != "crop_pad":
        return None
    (height, width), (crop_h, crop_w) = resize["size"], following["size"]
    return (crop_w, crop_h) if crop_w <= width and crop_h <= height else None


def to_input(image: Image.Image, div: float, mean: Sequence[float] | None,
             std: Sequence[float] | None, resize: Resample | None = None) -> np.ndarray:
    """Return a 1×C×H×W float32 batch: divided by ``div``, resampled (``resize``), normalised with ``mean``/``std``."""
    pixels = np.asarray(image, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if div:
        pixels /= np.float32(div)  # the same float32 operations, in the same order, as fastai
    if resize is not None:
        pixels = resize.apply(pixels)
    if mean is not None and std is not None:
        pixels -= np.asarray(mean, dtype=np.float32)
        pixels /= np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])


class Resample:
    """A batch resize of fastai's, measured at export (``resampling.extract``): per output row and column, its taps.

    ``apply`` computes ``R @ X @ C.T`` per channel from the few non-zero weights of each row of ``R`` and ``C``.
    """

    def __init__(self, step: Step) -> None:
        self.source: tuple[int, int] = (int(step["from"][0]), int(step["from"][1]))
        self.size: tuple[int, int] = (int(step["size"][0]), int(step["size"][1]))
        self._rows = _tap_arrays(step["rows"], self.size[0], self.source[0])
        self._cols = _tap_arrays(step["cols"], self.size[1], self.source[1])

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """Resample an H×W×C float32 image (H×W: ``source``) to ``size``."""
        if pixels.shape[:2] != self.source:
            raise ValueError(f"resample expects {self.source[0]}×{self.source[1]}, got {pixels.shape[:2]}")
        (row_index, row_weight), (col_index, col_weight) = self._rows, self._cols
        rows = np.einsum("ok,okwc->owc", row_weight, pixels[row_index], optimize=False)
        out: np.ndarray = np.einsum("pk,opkc->opc", col_weight, rows[:, col_index], optimize=False)
        return out


def _tap_arrays(taps: Mapping[str, Any], outputs: int, inputs: int) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert one axis's taps into (index, weight) arrays, each outputs × taps."""
    index = np.asarray(taps["index"], dtype=np.intp)
    weight = np.asarray(taps["weight"], dtype=np.float32)
    if index.ndim != 2 or index.shape != weight.shape or index.shape[0] != outputs:
        raise ValueError(f"resample taps of shape {index.shape} for {outputs} outputs")
    if index.size and (index.min() < 0 or index.max() >= inputs):
        raise ValueError("resample tap outside the image")
    return index, weight


def needed_side(steps: Sequence[Step]) -> int | None:
    """Return the shorter side an image needs so the first resize never upsamples (None: no resize first)."""
    if not steps or steps[0]["op"] != "resize":
        return None  # a crop before any resize depends on the full resolution: no draft decoding
    return int(max(steps[0]["size"]))


def _resize(image: Image.Image, size: tuple[int, int], method: str, pad_mode: str,
            resample: Image.Resampling, crop: tuple[int, int] | None = None) -> Image.Image:
    """fastai ``Resize.encodes`` with the validation split's centred crop or pad (then ``crop``, centred)."""
    if method == "squish":
        return _crop_pad(image, image.size, (0, 0), pad_mode, resize_to=size, resample=resample, crop=crop)
    w, h = image.size
    ratio_w, ratio_h = w / size[0], h / size[1]
    keep_w = ratio_w < ratio_h if method == "crop" else ratio_w > ratio_h
    m = ratio_w if keep_w else ratio_h
    crop_size = (int(m * size[0]), int(m * size[1]))
    top_left = (int(0.5 * (w - crop_size[0])), int(0.5 * (h - crop_size[1])))
    return _crop_pad(image, crop_size, top_left, pad_mode, resize_to=size, resample=resample, crop=crop)


def _crop_pad(image: Image.Image, size: tuple[int, int], top_left: tuple[int, int], pad_mode: str,
              resize_to: tuple[int, int] | None = None,
              resample: Image.Resampling = Image.Resampling.BILINEAR,
              crop: tuple[int, int] | None = None) -> Image.Image:
    """fastai ``Image._do_crop_pad``: crop what lies inside, pad what lies outside, then resize.

    With ``crop`` (a centred crop of the resized image, i.e. fastai's next ``CropPad``), the resize
    computes only the pixels that survive the crop (~20% faster). Pillow's ``box`` keeps the filter
    and edge clamping of the full resize, but its weights come from a box scale rounded differently:
    ~0.006% of channel values (on random images) come out one level (1/255) apart, never more.
    """
    (w, h), (sw, sh), (left, top) = image.size, size, top_left
    if left >= 0 or top >= 0 or left + sw <= w or top + sh <= h:
        box = (max(left, 0), max(top, 0), min(left + sw, w), min(top + sh, h))
        if box != (0, 0, w, h):  # cropping to the whole image is a copy; skip it
            image = image.crop(box)
    if left < 0 or top < 0 or left + sw >= w or top + sh >= h:
        border = (max(-left, 0), max(-top, 0), max(sw - w + left, 0), max(sh - h + top, 0))
        if any(border):
            image = _pad(image, border, pad_mode)
    if resize_to is not None and crop is not None:
        (tw, th), (cw, ch) = resize_to, crop
        left, top = (tw - cw) // 2, (th - ch) // 2
        sx, sy = image.width / tw, image.height / th
        image = image.resize(crop, resample, box=(left * sx, top * sy, (left + cw) * sx, (top + ch) * sy))
    elif resize_to is not None:
        image = image.resize(resize_to, resample)
    return image


def _pad(image: Image.Image, border: tuple[int, int, int, int], pad_mode: str) -> Image.Image:
    """Pad (left, top, right, bottom) as torchvision's ``pad`` does on a PIL image."""
    mode = PAD_MODES[pad_mode]
    if mode == "constant":
        return ImageOps.expand(image, border=border, fill=0)
    left, top, right, bottom = border
    pixels = np.asarray(image)
    widths = ((top, bottom), (left, right), *(((0, 0),) if pixels.ndim == 3 else ()))
    return Image.fromarray(np.pad(pixels, widths, mode=mode))  # type: ignore[call-overload]


# --- reading a fastai learner's transforms into these steps ---------------------------------------

_RESAMPLE_NAMES = {0: "nearest", 4: "box", 2: "bilinear", 5: "hamming", 3: "bicubic", 1: "lanczos"}


class UnsupportedExport(ValueError):
    """The fastai export uses something the ONNX path cannot reproduce."""


def preprocessing_of(learner: Any) -> dict[str, Any]:
    """Describe the learner's prediction-time preprocessing as plain data, or raise ``UnsupportedExport``."""
    steps: list[dict[str, Any]] = []
    for tfm in learner.dls.after_item.fs:
        steps.extend(_item_steps(tfm))
    div, mean, std = 0.0, None, None
    resizes: list[Any] = []  # batch transforms that resize on the validation split (see resampling.py)
    for tfm in learner.dls.after_batch.fs:
        name = type(tfm).__name__
        if name == "IntToFloatTensor":
            div = float(tfm.div or 0.0)
        elif name == "Normalize":
            if tfm.mean is None or tfm.std is None:
                raise UnsupportedExport("Normalize has no mean and std (its statistics were never computed)")
            mean, std = _flat(tfm.mean), _flat(tfm.std)
        elif _is_a(tfm, "AffineCoordTfm") and getattr(tfm, "size", None) is None:
            continue  # aug_transforms' flips, rotations, zooms: the identity on the validation split
        elif _is_a(tfm, "AffineCoordTfm") or name == "RandomResizedCropGPU":
            resizes.append(tfm)  # aug_transforms(size=...) and min_scale: a resize on the validation split
        elif getattr(tfm, "split_idx", None) != 0:  # split_idx 0: training only, skipped by predict
            raise UnsupportedExport(f"the batch transform {name} runs at prediction time and has no ONNX "
                                    f"equivalent here; remove it from batch_tfms before learn.export(), or "
                                    f"serve the .pkl on the fastai backend")
    if not steps:
        raise UnsupportedExport("the export has no Resize item transform, so its input size is unknown")
    return {"steps": steps, "div": div, "mean": mean, "std": std, "input_size": list(steps[-1]["size"]),
            "batch_resizes": resizes}


def _is_a(tfm: Any, class_name: str) -> bool:
    """Tell whether ``tfm`` is an instance of a fastai class, by name (fastai is not imported here)."""
    return any(cls.__name__ == class_name for cls in type(tfm).__mro__)


def _item_steps(tfm: Any) -> list[dict[str, Any]]:
    """Translate one item transform into preprocessing steps (none for tensor conversion)."""
    name = type(tfm).__name__
    if name == "ToTensor" or getattr(tfm, "split_idx", None) == 0:
        return []
    if name == "Resize":
        if str(tfm.method) not in RESIZE_METHODS or str(tfm.pad_mode) not in PAD_MODES:
            raise UnsupportedExport(f"Resize(method={tfm.method!r}, pad_mode={tfm.pad_mode!r}) is not supported")
        return [{"op": "resize", "size": _height_width(tfm.size), "method": str(tfm.method),
                 "pad_mode": str(tfm.pad_mode), "resample": _resample(tfm.mode)}]
    if name == "CropPad":
        if str(tfm.pad_mode) not in PAD_MODES:
            raise UnsupportedExport(f"CropPad(pad_mode={tfm.pad_mode!r}) is not supported")
        return [{"op": "crop_pad", "size": _height_width(tfm.size), "pad_mode": str(tfm.pad_mode)}]
    if name == "RandomCrop":  # validation: a centred crop, zero padding where the image is smaller
        return [{"op": "crop_pad", "size": _height_width(tfm.size), "pad_mode": "zeros"}]
    if name == "RandomResizedCrop":  # validation: squish to size + extra, then centre crop to size
        width, height = (int(v) for v in tfm.size[:2])
        extra = math.ceil(max(width, height) * tfm.val_xtra / 8) * 8
        steps = [{"op": "resize", "size": [height + extra, width + extra], "method": "squish",
                  "pad_mode": "zeros", "resample": _resample(tfm.mode)}]
        if extra:
            steps.append({"op": "crop_pad", "size": [height, width], "pad_mode": "zeros"})
        return steps
    raise UnsupportedExport(f"the item transform {name} runs at prediction time and has no ONNX equivalent here")


def _height_width(size: Any) -> list[int]:
    """fastai keeps sizes as (width, height); metadata says [height, width] like ``Resize(size)``."""
    return [int(size[1]), int(size[0])]


def _resample(mode: Any) -> str:
    """Name a Pillow resampling filter."""
    try:
        return _RESAMPLE_NAMES[int(mode)]
    except (KeyError, TypeError, ValueError):
        raise UnsupportedExport(f"the resampling filter {mode!r} is not one Pillow names") from None


def _flat(values: Any) -> list[float]:
    """Turn a broadcastable stats tensor into a plain list of floats."""
    return [float(v) for v in values.detach().cpu().reshape(-1).tolist()]
