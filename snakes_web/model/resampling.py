"""fastai's batch resizes (``aug_transforms(size=…)``, ``RandomResizedCropGPU``) measured as a separable map.

On the validation split these transforms move nothing: an identity affine grid sampled at a new size
with ``F.grid_sample`` (``mode``, ``pad_mode``, ``align_corners`` as given; bilinear first shrinks by
area when it resizes down by more than 2×), or a centred crop and then that. Each is linear and acts
on every channel alike, rows and columns apart: ``X -> R @ X @ C.T``. That is not Pillow's antialiased
resize, so instead of approximating it, ``extract`` measures ``R`` and ``C`` by running the learner's
own transforms (fastai's code, float32, validation mode) on probe images, checks the map on random
images, and keeps each output pixel's few taps. ``transforms.Resample`` applies them with NumPy when
serving, where fastai applies them: after ``IntToFloatTensor``, before ``Normalize``.

Needs torch and fastai (export time only, like ``onnx_export``).
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from .transforms import Resample, UnsupportedExport

#: How far (in 0..1 pixel values) the separable map may stray from the transforms on a random image.
TOLERANCE = 1e-5
#: Taps whose weight is below this (float32 noise of the grid) are dropped.
NEGLIGIBLE = 1e-7


def extract(tfms: Sequence[Any], height: int, width: int) -> dict[str, Any]:
    """Return the resample step for the batch transforms ``tfms`` applied to ``height``×``width`` images.

    Raises ``UnsupportedExport`` naming the transforms when they are not a separable linear map.
    """
    import torch

    names = ", ".join(type(tfm).__name__ for tfm in tfms)
    run = partial(_validation, tfms)
    with torch.inference_mode():
        ones = run(torch.ones(1, 1, height, width))[0, 0].double()
        out_h, out_w = ones.shape
        i, j = out_h // 2, out_w // 2  # any pixel whose weight sums are not 0: the middle one
        if abs(float(ones[i, j])) < 1e-3:
            raise UnsupportedExport(f"the batch transforms {names} do not resize the image: cannot convert them")
        rows = torch.cat([run(_indicator(k, height, width, axis=0))[:, 0, :, j] for k in _chunks(height)]).double()
        cols = torch.cat([run(_indicator(k, height, width, axis=1))[:, 0, i, :] for k in _chunks(width)]).double()
        step = {"op": "resample", "from": [height, width], "size": [int(out_h), int(out_w)],
                "rows": _taps(rows.T.numpy()), "cols": _taps((cols / ones[i, j]).T.numpy()),
                "by": names}
        generator = torch.Generator().manual_seed(0)
        sample = torch.rand(2, 3, height, width, generator=generator)
        expected = run(sample).numpy()
    resample = Resample(step)
    got = np.stack([resample.apply(image.transpose(1, 2, 0)).transpose(2, 0, 1) for image in sample.numpy()])
    error = float(np.abs(got - expected).max())
    if error > TOLERANCE:
        raise UnsupportedExport(f"the batch transforms {names} are not a plain resize on the validation split "
                                f"(off by {error:.2g} as a separable map); remove them from batch_tfms before "
                                f"learn.export(), or serve the .pkl on the fastai backend")
    return step


def _validation(tfms: Sequence[Any], batch: Any) -> Any:
    """Run the transforms as ``Learner.predict`` does (the validation split) on a float batch."""
    from fastai.torch_core import TensorImage

    out = TensorImage(batch.clone())
    for tfm in tfms:
        out = tfm(out, split_idx=1)
    return out.as_subclass(type(batch))


def _chunks(size: int, per: int = 32) -> list[range]:
    """Split ``range(size)`` into probe batches of ``per`` images."""
    return [range(start, min(start + per, size)) for start in range(0, size, per)]


def _indicator(indices: range, height: int, width: int, axis: int) -> Any:
    """Probe images: for each index, ones on that row (axis 0) or column (axis 1), zeros elsewhere."""
    import torch

    batch = torch.zeros(len(indices), 1, height, width)
    for n, index in enumerate(indices):
        if axis == 0:
            batch[n, 0, index, :] = 1.0
        else:
            batch[n, 0, :, index] = 1.0
    return batch


def _taps(matrix: np.ndarray) -> dict[str, list[list[float]] | list[list[int]]]:
    """Keep each output's non-negligible weights: ``index`` and ``weight``, padded to one width."""
    keep = np.abs(matrix) > NEGLIGIBLE
    width = max(1, int(keep.sum(axis=1).max()))
    index = np.zeros((matrix.shape[0], width), dtype=np.int64)
    weight = np.zeros((matrix.shape[0], width), dtype=np.float64)
    for row in range(matrix.shape[0]):
        taps = np.flatnonzero(keep[row])
        index[row, :len(taps)], weight[row, :len(taps)] = taps, matrix[row, taps]
    return {"index": index.tolist(), "weight": [[float(np.float32(w)) for w in row] for row in weight]}
