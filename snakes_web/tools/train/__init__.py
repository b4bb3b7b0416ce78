"""`snakes-web train`: a folder of labelled photos in, a fine-tuned classifier the server serves out.

The steps, one module each and each usable on its own (``notebooks/train_your_own.py`` calls them one
cell at a time, through the names below):

1. ``dataset.scan_dataset``: find the classes (one sub-folder each, or ``train/`` and ``valid/`` splits),
   read every file with the server's own decoder (``imaging.images.load_image``), list what cannot be
   read, refuse a dataset that cannot train (one class, too few images, mismatched splits), split it (seeded).
2. ``loaders.dataloaders``: the preprocessing the server uses (short side to size·8/7 bicubic, centre
   crop, mean/std 0.5 like the default model), fastai's ``aug_transforms`` for training only.
3. ``fitting.make_learner`` and ``fitting.fit``: the default model's pretrained EfficientNet-Lite0 (from
   its PyPI package, never a download) with a new head, ``fine_tune`` (frozen body first).
4. ``report.evaluate``, ``report.plot_confusion``: validation accuracy, the confusion matrix, the mistakes.
5. ``export.export``: ``export.pkl`` (atomically), and with ``--onnx`` the ``.onnx`` next to it, checked
   against the ``.pkl``'s predictions on the validation photos (``export_onnx_checked``).

``options.Options`` is everything the command can be told; ``command`` is the command line. Nothing here
imports torch or fastai at module level, so the CLI builds its parser without them.
"""
from __future__ import annotations

from .dataset import BadFile, Dataset, bad_file_lines, scan_dataset, stratified_split
from .export import export, export_int8_checked, export_onnx_checked
from .fitting import EpochLines, fit, make_learner, setup_torch
from .loaders import batch_size_for, dataloaders, default_workers, device_for
from .options import DatasetError, Options
from .report import Report, evaluate, plot_confusion

__all__ = ["BadFile", "Dataset", "DatasetError", "EpochLines", "Options", "Report", "bad_file_lines",
           "batch_size_for", "dataloaders", "default_workers", "device_for", "evaluate", "export",
           "export_int8_checked", "export_onnx_checked", "fit", "make_learner", "plot_confusion",
           "scan_dataset", "setup_torch", "stratified_split"]
