"""`snakes-web predict MODEL IMAGE...`: the server's answer for files, from the command line."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from snakes_web.tools.cli import main
from tests.training_data import COLOURS, Trained, held_out_photos

pytestmark = pytest.mark.slow  # uses the model trained once a session


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, Path]:
    """One held-out photo per class, saved as JPEG: {class: path}."""
    saved = {}
    for label, photo in held_out_photos(seed=4000, per_class=1):
        saved[label] = tmp_path / f"{label}.jpg"
        photo.save(saved[label], quality=90)
    return saved


@pytest.mark.parametrize("suffix", [".pkl", ".onnx"])
def test_it_prints_the_top_predictions_of_each_file(trained_model: Trained, photos: dict[str, Path],
                                                    capsys: pytest.CaptureFixture[str], suffix: str) -> None:
    model = trained_model.pkl.with_suffix(suffix)
    assert main(["predict", str(model), *map(str, photos.values())]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(photos)
    for (label, path), line in zip(photos.items(), lines, strict=True):
        assert re.fullmatch(rf"{re.escape(str(path))}: {label} \d+\.\d%(, \w+ \d+\.\d%){{2}}", line)


def test_top_and_json(trained_model: Trained, photos: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(trained_model.onnx), str(photos["red"]), "--top", "1", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["model"]["backend"] == "onnx" and answer["model"]["vocab"] == sorted(COLOURS)
    [result] = answer["results"]
    assert result["file"] == str(photos["red"])
    assert [p["label"] for p in result["predictions"]] == ["red"] and 0 < result["predictions"][0]["probability"] <= 1


def test_a_folder_means_every_file_in_it(trained_model: Trained, photos: dict[str, Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    folder = photos["red"].parent
    assert main(["predict", str(trained_model.onnx), str(folder), "-k", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == sorted(str(path) for path in photos.values())
    assert all(line.count("%") == len(COLOURS) for line in lines)


def test_bad_files_get_one_line_each_and_the_good_ones_still_print(trained_model: Trained, photos: dict[str, Path],
                                                                   tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(b"%PDF-1.7\n...")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(photos["blue"].read_bytes()[:200])
    missing = tmp_path / "missing.jpg"
    argv = [str(pdf), str(photos["green"]), str(cut), str(missing)]
    assert main(["predict", str(trained_model.onnx), *argv]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{photos['green']}: green ")
    errors = captured.err.splitlines()
    assert errors[0] == f"snakes-web predict: {pdf}: That file is a PDF, not an image. Try a JPEG, PNG, " \
                        f"GIF, WebP, BMP, TIFF, HEIC/HEIF or AVIF photo."
    assert errors[1].startswith(f"snakes-web predict: {cut}: The image file could not be decoded")
    assert errors[2] == f"snakes-web predict: {missing}: cannot be read (No such file or directory)"
    assert "Traceback" not in captured.err


def test_json_lists_errors_beside_predictions(trained_model: Trained, photos: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    assert main(["predict", str(trained_model.pkl), str(photos["blue"]), str(junk), "--json"]) == 1
    results = json.loads(capsys.readouterr().out)["results"]
    assert "predictions" in results[0] and results[1] == {"file": str(junk), "error": results[1]["error"]}
    assert "could not be decoded" in results[1]["error"]


def test_a_model_that_cannot_load_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(tmp_path / "nope.pkl"), str(tmp_path / "x.jpg")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("snakes-web predict: model file ") and "does not exist" in err
