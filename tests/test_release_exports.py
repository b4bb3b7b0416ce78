"""Models exported by an earlier release keep loading and predict the same (tests/data/exports/).

The files were made once by ``tests/release_exports.py`` with release 0.1.0's code; fastai pickled its
classes by the dotted paths of that layout, which a move of the modules must keep importable.
"""
from __future__ import annotations

import importlib
import json
import pickletools
import zipfile
from pathlib import Path

import pytest

from snakes_web.model.loader import load_predictor
from tests.release_exports import probe_image

EXPORTS = Path(__file__).parent / "data" / "exports"
EXPECTED = json.loads((EXPORTS / "expected.json").read_text())
RELEASE_EXPORTS = ["train-0.1.0.pkl", "default-0.1.0.pkl"]


def pickled_globals(path: Path) -> set[str]:
    """Return the dotted path of every class and function an export's pickle names."""
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(name for name in archive.namelist() if name.endswith("data.pkl")))
    names, strings = set(), []
    for op, arg, _ in pickletools.genops(data):
        if op.name.endswith("UNICODE"):
            strings.append(arg)
        elif op.name == "GLOBAL":
            names.add(str(arg).replace(" ", "."))
        elif op.name == "STACK_GLOBAL":
            names.add(f"{strings[-2]}.{strings[-1]}")
    return names


def ours(path: Path) -> set[str]:
    """Return the dotted paths of snakes_web's own names in an export."""
    return {name for name in pickled_globals(path) if name.startswith("snakes_web.")}


def test_the_release_exports_name_the_old_module_paths() -> None:
    assert ours(EXPORTS / "train-0.1.0.pkl") == {
        "snakes_web.training.ReadPhoto", "snakes_web.training.ClassFolder",
        "snakes_web.snakenet.Lite0Classifier", "snakes_web.snakenet.Lite0Body", "snakes_web.snakenet.body_and_head"}
    assert ours(EXPORTS / "default-0.1.0.pkl") == {"snakes_web.snakenet.SnakeNet"}


@pytest.mark.parametrize("dotted", sorted(ours(EXPORTS / "train-0.1.0.pkl") | ours(EXPORTS / "default-0.1.0.pkl")))
def test_every_pickled_path_still_imports(dotted: str) -> None:
    module, _, name = dotted.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))


@pytest.mark.parametrize("name", RELEASE_EXPORTS)
def test_a_release_export_loads_and_predicts_as_it_did(name: str) -> None:
    predictions = load_predictor(EXPORTS / name).predict(probe_image())
    got = {p.label: p.probability for p in predictions}
    assert got == pytest.approx(EXPECTED[name], abs=1e-5)


@pytest.mark.slow
def test_a_release_export_still_converts_to_onnx(tmp_path: Path) -> None:
    from snakes_web.model.onnx_export import export_onnx

    onnx = tmp_path / "train.onnx"
    export_onnx(EXPORTS / "train-0.1.0.pkl", onnx)
    got = {p.label: p.probability for p in load_predictor(onnx).predict(probe_image())}
    assert got == pytest.approx(EXPECTED["train-0.1.0.pkl"], abs=1e-4)
