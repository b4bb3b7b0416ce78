"""`make test-gpu`: train and export on a CUDA GPU, then serve the export on the CPU.

Marked ``gpu``: `make test` leaves it out; `make test-gpu` runs it and fails on a machine without a
GPU (a GPU test that saw no GPU has not passed). The CPU side (`--device auto` → cpu where torch
sees no GPU) is tested in test_training.py on every run.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch

from snakes_web.model.loader import load_predictor
from snakes_web.tools.cli import main
from tests.training_data import held_out_photos, make_colour_dataset

pytestmark = pytest.mark.gpu


def test_training_on_cuda_exports_a_model_that_serves_on_the_cpu(tmp_path: Path) -> None:
    assert torch.cuda.is_available(), "make test-gpu needs a CUDA GPU that torch sees; this machine has none"
    photos = make_colour_dataset(tmp_path / "photos")
    pkl = tmp_path / "model" / "export.pkl"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["train", str(photos), "-o", str(pkl), "--onnx", "--int8", "--device", "cuda",
                       "--size", "64", "--epochs", "3", "--frozen-epochs", "1", "--seed", "0"])
    assert status == 0 and ", on cuda." in out.getvalue()
    for model in (pkl, pkl.with_suffix(".onnx"), pkl.with_name("export-int8.onnx")):
        predictor = load_predictor(model)  # the .pkl with load_learner(cpu=True)
        right = sum(predictor.predict(photo)[0].label == label for label, photo in held_out_photos())
        assert right >= 10, f"{model.name}: {right} of 12 held-out photos"
    fastai = load_predictor(pkl)
    assert next(fastai._learner.model.parameters()).device.type == "cpu"  # type: ignore[attr-defined]
