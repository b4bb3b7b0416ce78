"""Your own export, served: the notebook's own functions (SNAKES_MODEL_CODE, --code) and `snakes-web serve`."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from snakes_web import create_app
from snakes_web.exceptions import ModelLoadError
from snakes_web.model import model_code
from snakes_web.model.loader import load_predictor
from snakes_web.tools.cli import main
from tests.conftest import free_port, image_bytes
from tests.tiny_learner import make_folder_dataset

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parent.parent

#: What a notebook does: its own labelling function, a DataBlock that uses it, learn.export(). fastai 2.8
#: exports with cloudpickle, which stores a function defined in the notebook itself by value; what it
#: stores by reference, and a server then lacks, is a function from the notebook's own module file
#: (``from my_labels import ...``), or any ``__main__`` name when exported with plain pickle.
NOTEBOOK = '''
import pickle
import torch
from torch import nn
from fastai.data.block import CategoryBlock, DataBlock
from fastai.data.transforms import RandomSplitter, get_image_files
from fastai.learner import Learner
from fastai.vision.augment import Resize
from fastai.vision.data import ImageBlock
{define}

torch.manual_seed(0)
block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=label_of_photo,
                  splitter=RandomSplitter(0.25, seed=0), item_tfms=Resize(32))
dls = block.dataloaders({data!r}, bs=4, num_workers=0, device=torch.device("cpu"))
net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
Learner(dls, net).export({export!r}{pickler})
'''

FUNCTIONS = '''
def label_of_photo(path):
    return path.parent.name
'''

#: (how the notebook gets its function, how it exports): the two ways an export names code a server lacks.
WAYS = {"own-module": ("from my_labels import label_of_photo", ""),
        "main-plain-pickle": (FUNCTIONS, ", pickle_module=pickle")}


@pytest.fixture(autouse=True)
def no_code_left_behind() -> Iterator[None]:
    """Each test starts with no user code imported (what a fresh server process has)."""
    model_code.forget()
    yield
    model_code.forget()


@pytest.fixture(scope="module", params=list(WAYS))
def notebook_export(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An export made by a script run as ``__main__`` (as a notebook is), and a file defining its function."""
    define, pickler = WAYS[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    script = folder / "notebook.py"
    export = folder / "export.pkl"
    (folder / "my_labels.py").write_text(textwrap.dedent(FUNCTIONS))  # the notebook's folder, on its sys.path
    script.write_text(NOTEBOOK.format(define=define, data=str(make_folder_dataset(folder / "data")),
                                      export=str(export), pickler=pickler))
    subprocess.run([sys.executable, str(script)], check=True, capture_output=True, cwd=folder, timeout=300)
    functions = tmp_path_factory.mktemp("code") / "my_labels.py"  # what the user copies beside the export
    functions.write_text(textwrap.dedent(FUNCTIONS))
    return export, functions


def test_an_export_naming_the_notebooks_function_says_exactly_what_to_do(notebook_export: tuple[Path, Path]) -> None:
    export, _ = notebook_export
    with pytest.raises(ModelLoadError) as failure:
        load_predictor(export)
    message = str(failure.value)
    assert ("'label_of_photo'" in message or "'my_labels'" in message) and "SNAKES_MODEL_CODE=" in message
    assert "--code" in message


def test_snakes_web_predict_and_export_onnx_say_it_in_one_line_and_work_with_code(
        notebook_export: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export, functions = notebook_export
    photo = tmp_path / "photo.png"
    photo.write_bytes(image_bytes())
    assert main(["predict", str(export), str(photo)]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert ("label_of_photo" in line or "my_labels" in line) and "--code" in line
    assert main(["export-onnx", str(export), str(tmp_path / "x.onnx")]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert ("label_of_photo" in line or "my_labels" in line) and "--code" in line
    assert not (tmp_path / "x.onnx").exists()
    assert main(["predict", str(export), str(photo), "--code", str(functions)]) == 0
    assert main(["export-onnx", str(export), str(tmp_path / "x.onnx"), "--code", str(functions)]) == 0
    model_code.forget()  # the ONNX file needs none of the notebook's code
    assert load_predictor(tmp_path / "x.onnx").labels == ["circle", "square"]


def test_the_server_loads_it_with_snakes_model_code(notebook_export: tuple[Path, Path], tmp_path: Path) -> None:
    export, functions = notebook_export
    app = create_app({"MODEL": str(export), "MODEL_CODE": str(functions), "TESTING": True,
                      "DATA_DIR": str(tmp_path), "FEEDBACK": False})
    response = app.test_client().post("/api/v1/predict", data={"file": (io.BytesIO(image_bytes()), "p.png")},
                                      content_type="multipart/form-data")
    assert response.status_code == 200
    assert {p["label"] for p in response.get_json()["predictions"]} == {"circle", "square"}


def test_a_missing_code_file_is_named(notebook_export: tuple[Path, Path], tmp_path: Path) -> None:
    export, _ = notebook_export
    with pytest.raises(ModelLoadError, match="nowhere.py, which is not a file"):
        load_predictor(export, code=[str(tmp_path / "nowhere.py")])


# --- snakes-web serve ---------------------------------------------------------------------------

def serve_prepare(model: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """Run ``snakes-web serve --prepare-only`` and return what it printed."""
    capsys.readouterr()
    assert main(["serve", str(model), "--prepare-only", *extra]) == 0
    return capsys.readouterr().out


def test_serve_converts_a_pkl_once_and_says_what_it_serves(tiny_export: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    pkl = tmp_path / "export.pkl"
    pkl.write_bytes(tiny_export.read_bytes())
    first = serve_prepare(pkl, capsys)
    assert "converting" in first and (tmp_path / "export.onnx").exists()
    served = first.strip().splitlines()[-1]
    assert "on the onnx backend" in served
    assert ("export-int8.onnx" in served and (tmp_path / "export-int8.onnx").exists()) or "int8 was refused" in served
    again = serve_prepare(pkl, capsys)
    assert "converting" not in again and "quantizing" not in again
    assert again.strip().splitlines()[-1].split(" (")[0] == served.split(" (")[0]  # the same file, backend
    assert "export.onnx on the onnx backend (fp32" in serve_prepare(pkl, capsys, "--no-int8")
    assert "export.pkl on the fastai backend" in serve_prepare(pkl, capsys, "--fastai")


def test_serve_falls_back_to_fastai_with_the_reason_when_it_cannot_convert(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fastai.vision.augment import RatioResize

    from tests.test_onnx import export_variant

    pkl = export_variant(tmp_path, [RatioResize(48)])
    line = serve_prepare(pkl, capsys).strip().splitlines()[-1]
    assert "export.pkl on the fastai backend (cannot convert it to ONNX:" in line and "RatioResize" in line


def test_serve_runs_gunicorn_with_this_projects_settings(tiny_export: Path, tmp_path: Path) -> None:
    pkl = tmp_path / "export.pkl"
    pkl.write_bytes(tiny_export.read_bytes())
    port = free_port()
    env = {**os.environ, "SNAKES_DATA_DIR": str(tmp_path / "data"), "SNAKES_WORKERS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "snakes_web", "serve", str(pkl), "--no-int8",
                               "--bind", f"127.0.0.1:{port}"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.3)
        answer = requests.post(f"{url}/api/v1/predict", files={"file": ("p.png", image_bytes(), "image/png")},
                               timeout=30)
        assert answer.status_code == 200 and answer.json()["model"]["backend"] == "onnx"
        assert "X-Request-ID" in answer.headers  # the app's own middleware answered
    finally:
        server.terminate()
        output = server.communicate(timeout=60)[0]
    assert "serving" in output and "export.onnx on the onnx backend" in output
    assert "snakes-web: onnx backend" in output  # gunicorn_config's start line: our settings, our worker
