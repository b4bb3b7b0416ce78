"""int8 keeps the answers: positives of every class, the same top-1 as fp32 on each, and a refusal when not."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from snakes_web.imaging.images import load_image
from snakes_web.model.onnx_backend import OnnxPredictor
from snakes_web.model.positives import Pixels, Positives
from snakes_web.model.quantize import (
    CheckSet,
    Int8Refused,
    agreement,
    head_nodes,
    quantize_checked,
    scorer,
)
from snakes_web.tools.cli import main
from tests.conftest import DATA, PHOTOS, synthesised
from tests.training_data import Trained, held_out_photos

slow = pytest.mark.slow


def test_every_class_has_positives_that_fp32_rates_as_that_class(default_positives: Positives,
                                                                default_onnx: Path) -> None:
    assert default_positives.tried == 36 and default_positives.per_class() == dict.fromkeys(
        default_positives.labels, 2)  # none dropped: every synthesis reached its class
    top = np.argmax(scorer(default_onnx)(default_positives.inputs), axis=1)
    assert top.tolist() == default_positives.classes
    pixels = Pixels(255.0, [0.5] * 3, [0.5] * 3).to_pixels(default_positives.inputs)
    assert np.abs(pixels - np.round(pixels)).max() < 1e-3 and pixels.min() >= -1e-3 and pixels.max() <= 255.001


def test_the_positives_are_the_same_every_time(default_model_path: Path, default_onnx: Path,
                                               default_positives: Positives) -> None:
    again = synthesised(default_model_path, default_onnx,
                        [load_image((DATA / name).read_bytes(), 50_000_000) for name in PHOTOS[:1]], per_class=1)
    first = default_positives.inputs[::2]  # chelsea's positives: the first of each pair
    assert again.classes == default_positives.classes[::2] and np.array_equal(again.inputs, first)


def test_int8_gives_the_same_top1_as_fp32_on_every_positive_of_every_class(
        default_int8: Path, default_onnx: Path, default_positives: Positives) -> None:
    measured = agreement(scorer(default_onnx), scorer(default_int8), CheckSet("positives", default_positives.inputs),
                         default_positives.labels)
    assert measured.per_class == {label: (2, 2) for label in default_positives.labels}


def test_int8_keeps_the_head_in_fp32_and_says_how_it_was_made(default_int8: Path, default_onnx: Path) -> None:
    import onnx

    quantized = OnnxPredictor(default_int8, threads=1)
    assert "classifier head in fp32" in quantized.quantization and "positives 36/36" in quantized.quantization
    assert quantized.describe() == OnnxPredictor(default_onnx, threads=1).describe()
    ops = {node.name: node.op_type for node in onnx.load(str(default_int8)).graph.node}
    assert "node_logsumexp" in ops and "QuantizeLinear" in ops.values()
    head = head_nodes(onnx.load(str(default_onnx)))
    assert head[0] == "node_linear" and "node_log_softmax" in head and "node_logsumexp" in head
    # What was really written: the classifier's Gemm reads its fp32 weights and an unquantized input,
    # although ONNX Runtime's pre-processing puts the maps' MatMul (weighted too) after it.
    [gemm] = [node for node in onnx.load(str(default_int8)).graph.node if node.op_type == "Gemm"]
    assert not any(name.endswith("DequantizeLinear_Output") for name in gemm.input), list(gemm.input)


def test_int8_keeps_the_class_activation_maps_and_they_look_where_fp32_looks(default_int8: Path,
                                                                             default_onnx: Path) -> None:
    """`make run` serves int8: its maps must be exact CAM (not occlusion) and match fp32's."""
    fp32, int8 = OnnxPredictor(default_onnx, threads=1), OnnxPredictor(default_int8, threads=1)
    assert int8.explains_with == fp32.explains_with == "cam"
    for name in PHOTOS:
        image = load_image((DATA / name).read_bytes(), 50_000_000)
        for label in (None, "thunder snake"):
            (_, ours), (_, theirs) = int8.explain(image, label), fp32.explain(image, label)
            assert ours.method == "cam" and ours.label == theirs.label
            correlation = np.corrcoef(ours.grid.ravel(), theirs.grid.ravel())[0, 1]
            assert correlation > 0.9, (name, label, correlation)


def test_the_old_quantization_loses_the_snakes_and_is_refused(default_onnx: Path, default_positives: Positives,
                                                               tmp_path: Path) -> None:
    """The check sees the bug: with the head quantized, the positives' snakes become 'not a snake'."""
    from snakes_web.tools.photos import photo_like

    predictor = OnnxPredictor(default_onnx, threads=1)
    calibration = [predictor.prepare(photo_like(640, 480, seed)) for seed in range(16)]
    destination = tmp_path / "old.onnx"
    with pytest.raises(Int8Refused) as refused:
        quantize_checked(default_onnx, destination, calibration, [CheckSet("positives", default_positives.inputs)],
                         predictor.labels, 0.99, keep_head=False)
    assert not destination.exists() and "not written" in str(refused.value)
    (measured,) = refused.value.agreements
    assert measured.rate < 0.5 and measured.per_class["not a snake"] == (2, 2)


def test_export_onnx_prints_the_agreement_and_refuses_below_the_threshold(
        tiny_export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    destination = tmp_path / "tiny-int8.onnx"
    assert main(["export-onnx", "--int8", "--min-agreement", "1.01", str(tiny_export), str(destination)]) == 1
    err = capsys.readouterr().err
    assert not destination.exists()
    assert "positives: " in err and "same top-1" in err and "below 101.0%" in err
    assert err.strip().splitlines()[-1].startswith("snakes-web export-onnx: ")


def test_export_onnx_calibrates_on_a_folder_of_photos(tiny_export: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mine" / "deeper"
    folder.mkdir(parents=True)
    for name in PHOTOS:
        (folder / name).write_bytes((DATA / name).read_bytes())
    (folder / "notes.txt").write_text("not a photo")
    destination = tmp_path / "tiny-int8.onnx"
    assert main(["export-onnx", "--int8", "--calibration", str(tmp_path / "mine"), str(tiny_export),
                 str(destination)]) == 0
    out = capsys.readouterr().out
    assert "photos: 2/2" in out and "positives: " in out
    assert "calibrated on 2 images" in OnnxPredictor(destination, threads=1).quantization


@slow
def test_train_int8_agrees_with_fp32_on_every_positive_of_every_class(int8_trained_model: Trained) -> None:
    """On positives it was not checked on: synthesised from other photos than the validation ones."""
    trained_model = int8_trained_model
    int8 = trained_model.onnx.with_name("export-int8.onnx")
    assert trained_model.status == 0, trained_model.stderr
    assert "int8 vs fp32, photos: " in trained_model.stdout and "int8 vs fp32, positives: " in trained_model.stdout
    assert "calibrated on 18 images" in OnnxPredictor(int8, threads=1).quantization  # the validation photos
    positives = synthesised(trained_model.pkl, trained_model.onnx, [photo for _, photo in held_out_photos()])
    assert all(n == 2 for n in positives.per_class().values())
    measured = agreement(scorer(trained_model.onnx), scorer(int8), CheckSet("positives", positives.inputs),
                         positives.labels)
    assert measured.per_class == {label: (2, 2) for label in positives.labels}


def test_the_answer_to_a_1_mp_photo_is_under_2_kb_and_with_its_receipt_under_3_kb(default_int8: Path,
                                                                                    tmp_path: Path) -> None:
    """The default model's 18 labels, as shipped (int8); the receipt only when asked (?feedback=1)."""
    import io

    from PIL import Image

    from snakes_web import create_app
    from tests.conftest import DATA

    out = io.BytesIO()
    Image.open(DATA / "chelsea.jpg").convert("RGB").resize((1224, 816)).save(out, format="JPEG", quality=90)
    client = create_app({"MODEL": str(default_int8), "DATA_DIR": str(tmp_path)}).test_client()

    def answer(query: str) -> bytes:
        response = client.post(f"/api/v1/predict{query}", data={"file": (io.BytesIO(out.getvalue()), "p.jpg")})
        assert response.status_code == 200, response.get_json()
        assert len(response.get_json()["predictions"]) == 18
        return response.get_data()

    plain, with_receipt = answer(""), answer("?feedback=1")
    assert b"feedback_receipt" not in plain and b"feedback_receipt" in with_receipt
    assert len(plain) <= 2048 and len(with_receipt) <= 3072, (len(plain), len(with_receipt))
