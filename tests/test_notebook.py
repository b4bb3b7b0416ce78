"""notebooks/train_your_own.py runs as a script on a tiny dataset, so the notebook never rots."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training_data import make_colour_dataset

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "train_your_own.py"


def test_the_notebook_is_cells_that_call_the_package() -> None:
    source = NOTEBOOK.read_text()
    assert source.startswith("# %% [markdown]") and source.count("\n# %%\n") >= 6  # jupytext's percent format
    assert "from snakes_web.tools import train" in source
    assert "DataBlock" not in source and "fine_tune" not in source  # the steps are the package's, not a copy


@pytest.mark.slow
def test_the_notebook_runs_as_a_script(tmp_path: Path) -> None:
    photos = make_colour_dataset(tmp_path / "photos", per_class=8, classes=("red", "blue"))
    output = tmp_path / "out" / "model.pkl"
    env = {**os.environ, "TRAIN_PHOTOS": str(photos), "TRAIN_OUTPUT": str(output), "TRAIN_EPOCHS": "1",
           "TRAIN_FROZEN_EPOCHS": "1", "TRAIN_SIZE": "32", "TRAIN_MIN_PER_CLASS": "4", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(NOTEBOOK)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 classes, 12 training and 4 validation images" in done.stdout
    assert re.search(r"^Validation accuracy: ", done.stdout, flags=re.M)
    assert output.is_file() and output.with_suffix(".onnx").is_file()
    assert output.with_name("model-confusion.png").is_file()
    assert re.search(r"^(red|blue)/\d+\.jpg: (red|blue), predicted (red|blue) \(\d+%\)$", done.stdout, flags=re.M)
