"""Step 2, the data loaders: the server's preprocessing, with fastai's augmentations on the training split only.

Short side to size·8/7 (bicubic), centre crop, mean and std 0.5 like the default model; the getters are
``model.fastai_data``'s, which exports carry.
"""
from __future__ import annotations

import shutil
from typing import Any

from PIL import Image

from snakes_web.model.fastai_data import ClassFolder
from snakes_web.model.quiet import quiet
from snakes_web.serving.sizing import available_cores

from .dataset import Dataset, photo_reader
from .options import DatasetError, Options

#: EfficientNet-Lite0 was trained on inputs scaled to [-1, 1]; the default model normalises the same way.
MEAN = STD = (0.5, 0.5, 0.5)


def default_workers(train_images: int, batch_size: int, size: int, cores: int | None = None,
                    shm_free: int | None = None) -> tuple[int, str]:
    """Choose data-loader worker processes, and say why.

    fastai's default is one per core (up to 16); each worker hands batches to the trainer through
    shared memory (/dev/shm: 64 MB in a plain Docker container) and competes with the forward and
    backward passes, which use every core on a CPU.
    """
    cores = available_cores() if cores is None else cores
    if shm_free is None:
        try:
            shm_free = shutil.disk_usage("/dev/shm").free
        except OSError:
            shm_free = 0
    if cores <= 2:
        return 0, f"{cores} core{'s' if cores > 1 else ''}: the forward and backward passes need them"
    if train_images < 4 * batch_size:
        return 0, "a small dataset: starting workers would cost more than they save"
    workers = min(4, cores // 2)
    # Each worker keeps two uint8 batches in flight; keep 4x that free for safety.
    needed = workers * 2 * batch_size * 3 * size * size * 4
    if shm_free < needed:
        return 0, f"/dev/shm has {shm_free // 2**20} MB free, workers need ~{needed // 2**20} MB (raise shm_size)"
    return workers, f"{cores} cores, {shm_free // 2**20} MB free in /dev/shm"


def dataloaders(dataset: Dataset, options: Options = Options(), num_workers: int = 0) -> Any:
    """Build fastai DataLoaders whose validation preprocessing is the server's (and converts to ONNX)."""
    import torch

    with quiet():
        from fastai.data.block import CategoryBlock, DataBlock
        from fastai.data.transforms import Normalize
        from fastai.vision.augment import CropPad, Resize, aug_transforms
        from fastai.vision.data import ImageBlock

    items = [path for path, _ in dataset.train] + [path for path, _ in dataset.valid]
    n_train = len(dataset.train)
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock(vocab=list(dataset.classes))),
        get_x=photo_reader(options),
        get_y=ClassFolder(dataset.class_depth),
        splitter=lambda _: (list(range(n_train)), list(range(n_train, len(items)))),
        # The default model's preprocessing at any size: short side to size·8/7 (bicubic), centre crop.
        # On the training split Resize crops at a random place; the validation split (and the server) centres.
        item_tfms=[Resize(options.resize, method="crop",
                          resamples=(Image.Resampling.BICUBIC, Image.Resampling.NEAREST)),
                   CropPad(options.size, order=2)],
        batch_tfms=[*training_only(aug_transforms()), Normalize.from_stats(list(MEAN), list(STD), cuda=False)],
    )
    batch_size = batch_size_for(n_train, options.batch_size)
    return block.dataloaders(items, bs=batch_size, num_workers=num_workers, device=torch.device(device_for(options)))


def device_for(options: Options) -> str:
    """Return the torch device to train on: "cuda" or "cpu" (auto: CUDA when torch sees a GPU)."""
    import torch

    if options.device == "cuda" and not torch.cuda.is_available():
        raise DatasetError("--device cuda: torch sees no CUDA GPU here (use --device auto or cpu).")
    if options.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return options.device


def training_only(tfms: list[Any]) -> list[Any]:
    """Mark fastai's augmentations (flips, rotations, zooms, warps; lighting already is) as training-only.

    fastai runs the merged affine transform on the validation split too, as an identity resampling
    (``grid_sample``) that moves probabilities by ~1e-3; skipped, validation and the server's fastai
    backend see exactly the pixels the ONNX model sees.
    """
    for tfm in tfms:
        tfm.split_idx = 0
    return tfms


def batch_size_for(train_images: int, wanted: int) -> int:
    """Cap the batch size so an epoch has at least 8 steps (a CPU costs the same per image in any batch).

    fastai drops the last partial training batch, so a batch larger than the data would leave none;
    at least 8 per batch keeps the gradient steady.
    """
    return max(2, min(wanted, train_images, max(8, train_images // 8)))
