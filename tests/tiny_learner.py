"""A tiny fastai learner on generated images: the real export/load path, in seconds, no downloads."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import nn

from snakes_web.model.quiet import quiet

TINY_LABELS = ("circle", "square")


def make_folder_dataset(root: Path, per_class: int = 4) -> Path:
    """Write a few small images per class in the usual one-folder-per-class layout."""
    for label_index, label in enumerate(TINY_LABELS):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("RGB", (40 + i, 36), (40 * label_index + i, 90, 160)).save(root / label / f"{i}.png")
    return root


def export_tiny_learner(folder: Path, model: nn.Module | None = None) -> Path:
    """Export a fastai Learner with a tiny random-init CNN and return the path of export.pkl."""
    with quiet():
        from fastai.data.block import CategoryBlock, DataBlock
        from fastai.data.transforms import RandomSplitter, get_image_files, parent_label
        from fastai.learner import Learner
        from fastai.vision.augment import Resize
        from fastai.vision.data import ImageBlock

    torch.manual_seed(0)
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                      get_y=parent_label, splitter=RandomSplitter(0.25, seed=0),
                      item_tfms=Resize(32))
    dls = block.dataloaders(make_folder_dataset(folder / "data"), bs=4, num_workers=0,
                            device=torch.device("cpu"))
    net = model or nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(4, len(TINY_LABELS)))
    learner = Learner(dls, net)
    path = folder / "export.pkl"
    with quiet():
        learner.export(path)
    return path
