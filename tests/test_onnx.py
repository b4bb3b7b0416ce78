"""The ONNX backend: `export-onnx` converts any fastai image classifier, and serving it matches fastai."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from snakes_web.exceptions import ModelLoadError
from snakes_web.imaging.images import load_image
from snakes_web.model.loader import load_predictor
from snakes_web.model.quiet import quiet
from snakes_web.serving.gate import GATE_ENV
from snakes_web.serving.semaphores import SharedSemaphores
from snakes_web.tools.cli import main
from tests.conftest import DATA, ImageServer, Route, image_bytes
from tests.test_gunicorn import running_gunicorn
from tests.tiny_learner import TINY_LABELS, make_folder_dataset

ROOT = Path(__file__).parent.parent
PHOTOS = ("chelsea.jpg", "coffee.jpg")


def sample_images() -> list[Image.Image]:
    """The photos, then generated images: a gradient, noise, a tiny one and a very wide one."""
    rng = np.random.default_rng(0)
    gradient = np.linspace(0, 255, 300 * 420 * 3).reshape(300, 420, 3).astype(np.uint8)
    return [*(load_image((DATA / name).read_bytes(), 50_000_000) for name in PHOTOS),
            Image.fromarray(gradient), Image.fromarray(rng.integers(0, 255, (500, 333, 3), dtype=np.uint8)),
            Image.fromarray(rng.integers(0, 255, (21, 17, 3), dtype=np.uint8)),
            Image.fromarray(rng.integers(0, 255, (60, 400, 3), dtype=np.uint8))]


def probabilities(predictor: Any, image: Image.Image) -> list[float]:
    """Return the probabilities in the model's label order."""
    by_label = {p.label: p.probability for p in predictor.predict(image)}
    return [by_label[label] for label in predictor.labels]


def assert_same_predictions(onnx_model: Path, fastai_model: Path) -> None:
    """Both backends: the same top-1 and probabilities within 1e-3 on every test image."""
    served, reference = load_predictor(onnx_model), load_predictor(fastai_model)
    assert served.labels == reference.labels
    for image in sample_images():
        ours, theirs = probabilities(served, image), probabilities(reference, image)
        assert int(np.argmax(ours)) == int(np.argmax(theirs))
        assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) < 1e-3


def export_variant(folder: Path, item_tfms: list[Any], batch_tfms: list[Any] | None = None) -> Path:
    """Export a tiny random-init fastai CNN with the given transforms."""
    import torch
    from torch import nn

    with quiet():
        from fastai.data.block import CategoryBlock, DataBlock
        from fastai.data.transforms import RandomSplitter, get_image_files, parent_label
        from fastai.learner import Learner
        from fastai.vision.data import ImageBlock

    torch.manual_seed(0)
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                      splitter=RandomSplitter(0.25, seed=0), item_tfms=item_tfms, batch_tfms=batch_tfms)
    dls = block.dataloaders(make_folder_dataset(folder / "data"), bs=4, num_workers=0, device=torch.device("cpu"))
    # Strided convolutions and no global pooling: every pixel's position counts, so any shift shows.
    net = nn.Sequential(nn.Conv2d(3, 4, 5, stride=2), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2),
                        nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(36, len(TINY_LABELS)))
    path = folder / "export.pkl"
    with quiet():
        Learner(dls, net).export(path)
    return path


def test_the_default_model_gives_the_same_answers_on_both_backends(default_onnx: Path,
                                                                    default_model_path: Path) -> None:
    assert_same_predictions(default_onnx, default_model_path)


def test_a_plain_fastai_export_converts_and_matches(tiny_export: Path, tmp_path: Path) -> None:
    onnx_model = tmp_path / "tiny.onnx"
    assert main(["export-onnx", str(tiny_export), str(onnx_model)]) == 0
    assert_same_predictions(onnx_model, tiny_export)


def _variants() -> dict[str, tuple[Callable[[], list[Any]], Callable[[], list[Any]]]]:
    """Transform sets users train with: ImageNet stats, squish, pad modes, random crops, odd sizes."""
    def imagenet() -> list[Any]:
        from fastai.data.transforms import Normalize
        from fastai.vision.core import imagenet_stats

        return [Normalize.from_stats(*imagenet_stats, cuda=False)]

    def augment() -> list[Any]:
        from fastai.vision.augment import aug_transforms

        return [*aug_transforms(), *imagenet()]  # training-only: skipped at prediction time

    def tfms(name: str, *args: Any, **kwargs: Any) -> Callable[[], list[Any]]:
        def build() -> list[Any]:
            from fastai.vision import augment as fastai_augment

            return [getattr(fastai_augment, name)(*args, **kwargs)]
        return build

    return {
        "squish-imagenet": (tfms("Resize", (40, 56), method="squish"), imagenet),
        "pad-reflection": (tfms("Resize", 48, method="pad", pad_mode="reflection"), imagenet),
        "pad-zeros-bicubic": (tfms("Resize", (36, 48), method="pad", pad_mode="zeros", resamples=(3, 0)), augment),
        "crop-border": (tfms("Resize", (50, 30), method="crop", pad_mode="border"), lambda: []),
        "random-resized-crop": (tfms("RandomResizedCrop", 40, min_scale=0.5), imagenet),
        "random-crop": (tfms("RandomCrop", 44), imagenet),
    }


@pytest.mark.parametrize("variant", list(_variants()))
def test_any_fastai_image_classifier_converts_and_matches(variant: str, tmp_path: Path) -> None:
    item_tfms, batch_tfms = _variants()[variant]
    with quiet():
        fastai_model = export_variant(tmp_path, item_tfms(), batch_tfms())
    onnx_model = tmp_path / "model.onnx"
    assert main(["export-onnx", str(fastai_model), str(onnx_model)]) == 0
    assert_same_predictions(onnx_model, fastai_model)


def test_the_metadata_carries_what_predicting_needs(default_onnx: Path) -> None:
    import onnx

    props = {p.key: p.value for p in onnx.load(str(default_onnx)).metadata_props}
    assert json.loads(props["vocab"])[-1] == "not a snake" and len(json.loads(props["vocab"])) == 18
    assert json.loads(props["input_size"]) == [224, 224] and props["model_name"] == "snakes-efficientnet-lite0"
    assert json.loads(props["preprocess"]) == [
        {"op": "resize", "size": [256, 256], "method": "crop", "pad_mode": "reflection", "resample": "bicubic"},
        {"op": "crop_pad", "size": [224, 224], "pad_mode": "zeros"}]
    assert json.loads(props["mean"]) == [0.5] * 3 and json.loads(props["std"]) == [0.5] * 3
    assert json.loads(props["div"]) == 255.0 and props["activation"] == "softmax"
    assert list(default_onnx.parent.iterdir()) == [default_onnx]  # one file: no external data, no sidecar


def test_the_onnx_model_takes_any_batch_size(default_onnx: Path) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(default_onnx), providers=["CPUExecutionProvider"])
    batch = np.zeros((3, 3, 224, 224), dtype=np.float32)
    assert session.run(None, {session.get_inputs()[0].name: batch})[0].shape == (3, 18)


def test_describe_names_the_onnx_backend(default_onnx: Path) -> None:
    described = load_predictor(default_onnx).describe()
    assert described["backend"] == "onnx" and described["input_size"] == [224, 224]
    assert described["name"] == "snakes-efficientnet-lite0" and described["labels"] == 18


def test_a_transform_without_an_onnx_equivalent_is_refused_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fastai.vision.augment import RatioResize

    with quiet():
        fastai_model = export_variant(tmp_path, [RatioResize(48)])
    assert main(["export-onnx", str(fastai_model), str(tmp_path / "x.onnx")]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "RatioResize" in line and "cannot convert" in line and not (tmp_path / "x.onnx").exists()


def test_an_onnx_file_without_our_metadata_is_refused_clearly(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "bare",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    bare = tmp_path / "bare.onnx"
    onnx.save(helper.make_model(graph), str(bare))
    with pytest.raises(ModelLoadError, match="no snakes-web metadata.*export-onnx"):
        load_predictor(bare)


def test_a_file_that_is_not_onnx_is_refused_clearly(tmp_path: Path) -> None:
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelLoadError, match="not a loadable ONNX model.*SNAKES_MODEL"):
        load_predictor(broken)


HEAVY = ("torch", "fastai", "torchvision", "onnx", "onnxscript")


def test_serving_onnx_imports_neither_torch_nor_fastai(default_onnx: Path) -> None:
    code = f"""
import sys
from snakes_web import create_app
client = create_app({{"MODEL": {str(default_onnx)!r}}}).test_client()
with open({str(DATA / "chelsea.jpg")!r}, "rb") as photo:
    answer = client.post("/api/v1/predict", data={{"file": (photo, "chelsea.jpg")}})
assert answer.status_code == 200, answer.data
print(answer.get_json()["predictions"][0]["label"])
print(sorted({{name.split(".")[0] for name in sys.modules}} & {set(HEAVY)!r}))
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["not a snake", "[]"]


@pytest.fixture(scope="module")
def onnx_server(default_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    log = tmp_path_factory.mktemp("gunicorn-onnx") / "gunicorn.log"
    with running_gunicorn(default_onnx, log) as (base, _):
        yield base, log


def test_gunicorn_serves_the_onnx_model_without_torch_in_its_workers(onnx_server: tuple[str, Path]) -> None:
    base, log = onnx_server
    with (DATA / "coffee.jpg").open("rb") as photo:
        answer = requests.post(f"{base}/api/v1/predict", files={"file": photo}, timeout=60).json()
    assert answer["model"]["backend"] == "onnx" and answer["predictions"][0]["label"] == "not a snake"
    workers = {int(pid) for pid in re.findall(r"model loaded in worker (\d+)", log.read_text())}
    assert len(workers) == 2
    for pid in workers:
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "libtorch" not in maps and "onnxruntime" in maps


def test_gunicorn_logs_its_sizing_and_gives_each_worker_one_thread_on_two_workers(
        onnx_server: tuple[str, Path]) -> None:
    _, log = onnx_server
    cores = len(os.sched_getaffinity(0))
    line = next(line for line in log.read_text().splitlines() if "inference thread" in line)
    threads = max(1, cores // 2)
    assert "onnx backend" in line and f"2 workers × {threads} inference thread{'' if threads == 1 else 's'}" in line


def test_an_int8_export_keeps_the_metadata_and_says_it_is_quantized(default_onnx: Path, default_int8: Path) -> None:
    int8 = default_int8
    quantized, reference = load_predictor(int8), load_predictor(default_onnx)
    assert "int8" in quantized.quantization and reference.quantization == ""  # type: ignore[attr-defined]
    assert quantized.describe() == reference.describe()
    for image in sample_images()[:2]:  # the photos: int8 never the default unless top-1 agrees on them
        assert quantized.predict(image)[0].label == reference.predict(image)[0].label


def test_workers_from_the_command_line_share_the_cores_anew(default_onnx: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import runpy
    from types import SimpleNamespace

    monkeypatch.setenv("SNAKES_MODEL", str(default_onnx))
    # on_starting also prepares the Prometheus folder in os.environ: keep it this test's own.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    monkeypatch.setenv("SNAKES_TORCH_THREADS", "0")  # 0: the config fills it in; restored after
    for name in ("SNAKES_WORKERS", "WEB_CONCURRENCY", "SNAKES_CORES"):
        monkeypatch.delenv(name, raising=False)
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    said: list[str] = []
    log = SimpleNamespace(info=lambda message, *args: said.append(message % args), error=said.append)
    monkeypatch.setenv(GATE_ENV, "")  # on_starting hands the gate on here: restored (unset) after
    server = SimpleNamespace(cfg=SimpleNamespace(workers=1), log=log)
    conf["on_starting"](server)  # `--workers 1`
    try:
        cores = len(os.sched_getaffinity(0))
        assert os.environ["SNAKES_TORCH_THREADS"] == str(cores)  # the workers, forked next, inherit it
        assert any(f"1 worker × {cores} inference thread" in line for line in said)
        semid, slots, queue = os.environ[GATE_ENV].split(",")  # one slot for the one worker, 4 waiting
        assert (slots, queue) == ("1", "4") and SharedSemaphores(int(semid)).value(1) == 1
    finally:
        conf["on_exit"](server)  # removes the semaphore set it made


def test_a_busy_worker_never_holds_up_a_request_while_the_other_worker_is_free(
        default_onnx: Path, tmp_path: Path, image_server: ImageServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """One worker is stuck fetching a URL that does not answer; the other one serves everything else."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    release = threading.Event()
    image_server.routes["/held.png"] = Route(image_bytes("PNG"), headers={"Content-Type": "image/png"},
                                             hold=release)
    monkeypatch.setenv("SNAKES_ALLOW_PRIVATE_URLS", "true")  # the held image is on loopback
    monkeypatch.setenv("SNAKES_FETCH_TIMEOUT", "60")
    try:
        with running_gunicorn(default_onnx, tmp_path / "gunicorn.log") as (base, _), \
                ThreadPoolExecutor(max_workers=1) as pool:
            slow = pool.submit(requests.post, f"{base}/api/v1/predict", timeout=120,
                               data={"url": image_server.url("/held.png")})
            deadline = time.monotonic() + 30
            while "/held.png" not in image_server.hits:  # a worker is now busy with it
                assert time.monotonic() < deadline, "the held URL was never fetched"
                time.sleep(0.05)
            for _ in range(10):  # each would wait for `release` if it were queued behind the busy worker
                with (DATA / "chelsea.jpg").open("rb") as photo:
                    answer = requests.post(f"{base}/api/v1/predict", files={"file": photo}, timeout=30)
                assert answer.status_code == 200
            assert not slow.done()
            release.set()
            assert slow.result().status_code == 200
    finally:
        release.set()
