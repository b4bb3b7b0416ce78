"""`snakes-web evaluate DIR`: accuracy, confusion, snake rates and calibration, as users ask for them."""
from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from snakes_web.config import load_settings
from snakes_web.model.loader import load_configured, load_predictor
from snakes_web.model.predictor import Prediction, needed_side
from snakes_web.tools.cli import main
from snakes_web.tools.evaluate import (
    Outcome,
    Share,
    accuracy,
    build_report,
    calibration_bins,
    confusion,
    confusion_table,
    expected_calibration_error,
    render_text,
    snake_rates,
)
from snakes_web.web.inputs import decode_image
from snakes_web.web.results import NEGATIVE_LABEL
from tests.training_data import COLOURS, Trained, held_out_photos


def answered(*pairs: tuple[str, float]) -> list[Prediction]:
    """Return predictions, most likely first, from (label, probability) pairs."""
    return [Prediction(label, probability) for label, probability in pairs]


# --- the arithmetic, against values worked out by hand -------------------------------------------

LABELS = ["a", "b", "c"]
OUTCOMES: list[Outcome] = [
    ("a", answered(("a", 0.95), ("b", 0.05))),  # right, bin 0.9-1.0
    ("a", answered(("b", 0.95), ("a", 0.05))),  # wrong, bin 0.9-1.0
    ("b", answered(("b", 0.65), ("c", 0.35))),  # right, bin 0.6-0.7
    ("c", answered(("a", 0.35), ("b", 0.33), ("c", 0.32))),  # wrong, bin 0.3-0.4
]


def test_accuracy_counts_the_top_answers_that_match_the_folder() -> None:
    assert accuracy(OUTCOMES) == Share(2, 4)
    assert Share(2, 4).rate == 0.5 and Share(2, 4).text() == "50.0% (2/4)"


def test_confusion_rows_are_the_truth_and_columns_the_answer() -> None:
    assert confusion(OUTCOMES, LABELS) == [[1, 1, 0],  # a: once a, once b
                                           [0, 1, 0],  # b: b
                                           [1, 0, 0]]  # c: a


def test_expected_calibration_error_weighs_each_bin_by_its_photos() -> None:
    # bin 0.9-1.0: 2 photos, confidence 0.95, accuracy 0.5 -> |0.5 - 0.95| x 2/4 = 0.225
    # bin 0.6-0.7: 1 photo,  confidence 0.65, accuracy 1   -> |1 - 0.65|   x 1/4 = 0.0875
    # bin 0.3-0.4: 1 photo,  confidence 0.35, accuracy 0   -> |0 - 0.35|   x 1/4 = 0.0875
    # ECE = 0.225 + 0.0875 + 0.0875 = 0.4
    bins = calibration_bins(OUTCOMES)
    assert [(b.count, b.correct) for b in bins] == [(0, 0)] * 3 + [(1, 0), (0, 0), (0, 0), (1, 1),
                                                                   (0, 0), (0, 0), (2, 1)]
    assert bins[9].confidence == pytest.approx(0.95) and bins[9].accuracy == 0.5
    assert bins[0].confidence is None and bins[0].accuracy is None
    assert expected_calibration_error(bins) == pytest.approx(0.4)


def test_a_probability_on_an_edge_goes_to_the_bin_above_and_one_to_the_last() -> None:
    bins = calibration_bins([("a", answered(("a", 0.3))), ("a", answered(("a", 1.0))),
                             ("a", answered(("a", 0.0)))])
    assert [(b.low, b.high) for b in bins if b.count] == [(0.0, 0.1), (0.3, 0.4), (0.9, 1.0)]


def test_a_perfectly_calibrated_model_has_no_calibration_error() -> None:
    # 0.75 confident four times, right three times: |0.75 - 0.75| = 0
    outcomes: list[Outcome] = [("a", answered(("a", 0.75), ("b", 0.25)))] * 3 + [("b", answered(("a", 0.75)))]
    assert expected_calibration_error(calibration_bins(outcomes)) == pytest.approx(0.0)


SNAKES = ["cobra", NEGATIVE_LABEL, "python"]
SNAKE_OUTCOMES: list[Outcome] = [
    ("cobra", answered(("cobra", 0.9))),  # found, species right
    ("cobra", answered(("python", 0.6))),  # found, species wrong
    ("cobra", answered((NEGATIVE_LABEL, 0.7))),  # missed
    ("python", answered(("python", 0.8))),  # found, species right
    (NEGATIVE_LABEL, answered((NEGATIVE_LABEL, 0.9))),  # kept
    (NEGATIVE_LABEL, answered(("cobra", 0.5))),  # taken for a snake
]


def test_snake_rates_count_snakes_found_species_right_and_non_snakes_kept() -> None:
    assert snake_rates(SNAKE_OUTCOMES) == {"snakes_found": Share(3, 4), "species_right": Share(2, 4),
                                           "non_snakes_kept": Share(1, 2)}


def test_the_report_has_snake_rates_only_for_a_model_with_the_negative_label() -> None:
    with_negative = build_report(SNAKE_OUTCOMES, SNAKES, {"name": "m"})
    assert with_negative["snakes"]["non_snakes_kept"] == {"count": 1, "total": 2, "rate": 0.5}
    assert build_report(OUTCOMES, LABELS, {"name": "m"})["snakes"] is None
    assert "Non-snakes kept: 50.0% (1/2)" in render_text(with_negative)


def test_the_report_is_one_json_document_with_every_measure() -> None:
    priors = {"training": {"a": 0.2, "b": 0.4, "c": 0.4}, "deployment": {"a": 0.5, "b": 0.25, "c": 0.25},
              "source": "SNAKES_PRIORS"}
    report = build_report(OUTCOMES, LABELS, {"name": "m", "priors": priors},
                          unreadable=[{"file": "x.pdf", "error": "a PDF"}])
    assert json.loads(json.dumps(report)) == report
    assert report["photos"] == 4 and report["unreadable"] == 1 and report["model"]["priors"] == priors
    assert report["confusion"] == {"labels": LABELS, "matrix": confusion(OUTCOMES, LABELS)}
    assert report["calibration"]["ece"] == pytest.approx(0.4) and len(report["calibration"]["bins"]) == 10
    assert "measured at the deployment prior a 0.5, b 0.25, c 0.25 (from SNAKES_PRIORS)" in render_text(report)


def test_the_confusion_table_fits_18_labels_in_100_columns() -> None:
    labels = ["Eastern diamondback rattlesnake", "Western diamondback rattlesnake", "Timber rattlesnake",
              "Copperhead", "Cottonmouth", "Eastern coral snake", "Common garter snake", "Rat snake",
              "Corn snake", "Milk snake", "Kingsnake", "Gopher snake", "Racer", "Coachwhip",
              "Hognose snake", "Ring-necked snake", "Water snake", NEGATIVE_LABEL]
    matrix = [[(i * 7 + j * 3) % 40 if i != j else 120 for j in range(18)] for i in range(18)]
    lines = confusion_table(labels, matrix)
    assert max(len(line) for line in lines) <= 100
    assert lines[1].split("|")[1].split() == [str(i) for i in range(1, 19)]  # short numbered column headers
    assert re.match(r" 1 Eastern diamon\S*… +\| 120 ", lines[2]) and lines[-1].startswith(f"18 {NEGATIVE_LABEL} ")
    assert lines[5].split("|")[1].split()[3] == "120"  # the diagonal: row 4 (Copperhead), column 4


# --- the command, end to end on a real trained model ---------------------------------------------

@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Held-out photos in the train layout: photos/<colour>/<n>.jpg, four per colour."""
    root = tmp_path / "photos"
    for index, (label, photo) in enumerate(held_out_photos(seed=5000, per_class=4)):
        (root / label).mkdir(parents=True, exist_ok=True)
        photo.save(root / label / f"{index}.jpg", quality=90)
    return root


def evaluated(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """Run `snakes-web evaluate ... --json`, expect exit 0, return its report."""
    assert main(["evaluate", *argv, "--json"]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def answers(model: Path, folder: Path) -> dict[Path, Prediction]:
    """Predict every photo ourselves, as the server would: {file: the top prediction}."""
    predictor, settings = load_predictor(model), load_settings()
    return {path: predictor.predict(decode_image(path.read_bytes(), settings, min_side=needed_side(predictor)))[0]
            for path in sorted(folder.glob("*/*.jpg"))}


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".onnx", ".pkl"])
def test_the_report_agrees_with_predicting_each_photo_ourselves(trained_model: Trained, folder: Path, suffix: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    model = trained_model.pkl.with_suffix(suffix)
    report = evaluated([str(folder), "--model", str(model)], capsys)
    top = answers(model, folder)
    labels = report["confusion"]["labels"]
    backend = load_predictor(model).describe()
    assert labels == backend["vocab"] and {key: report["model"][key] for key in backend} == backend
    assert report["model"]["priors"] is None  # measured at the model's own prior: the colour model has no other
    cells = Counter((path.parent.name, answer.label) for path, answer in top.items())
    assert report["confusion"]["matrix"] == [[cells[truth, said] for said in labels] for truth in labels]
    right = sum(path.parent.name == answer.label for path, answer in top.items())
    assert report["accuracy"] == {"count": right, "total": len(top), "rate": right / len(top)}
    assert report["photos"] == len(top) == 4 * len(COLOURS) and report["unreadable"] == 0
    assert report["snakes"] is None  # colours: no "not a snake" label


@pytest.mark.slow
def test_calibration_is_the_gap_between_confidence_and_accuracy(trained_model: Trained, folder: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    report = evaluated([str(folder), "--model", str(trained_model.onnx)], capsys)
    top = answers(trained_model.onnx, folder)
    gap: dict[int, list[float]] = {}  # bin -> [photos, confidence sum, right]
    for path, answer in top.items():
        tally = gap.setdefault(min(int(answer.probability * 10), 9), [0, 0.0, 0])
        tally[0] += 1
        tally[1] += answer.probability
        tally[2] += answer.label == path.parent.name
    expected = sum(abs(right - confidence) for _, confidence, right in gap.values()) / len(top)
    assert report["calibration"]["ece"] == pytest.approx(expected)
    assert {i: b["count"] for i, b in enumerate(report["calibration"]["bins"]) if b["count"]} == \
           {i: int(tally[0]) for i, tally in gap.items()}


@pytest.mark.slow
def test_photos_moved_to_a_wrong_folder_move_exactly_their_cells(trained_model: Trained, folder: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    before = evaluated([str(folder), "--model", str(trained_model.onnx)], capsys)
    moved = sorted((folder / "red").iterdir())[:2]
    said = Counter(answer.label for path, answer in answers(trained_model.onnx, folder).items() if path in moved)
    for path in moved:
        shutil.move(path, folder / "blue" / path.name)
    after = evaluated([str(folder), "--model", str(trained_model.onnx)], capsys)
    labels = before["confusion"]["labels"]
    red, blue = labels.index("red"), labels.index("blue")
    change = [[a - b for a, b in zip(row_after, row_before, strict=True)]
              for row_after, row_before in zip(after["confusion"]["matrix"], before["confusion"]["matrix"],
                                               strict=True)]
    assert change[blue] == [said[label] for label in labels] and change[red] == [-said[label] for label in labels]
    assert all(not any(row) for i, row in enumerate(change) if i not in (red, blue))
    assert before["accuracy"]["count"] - after["accuracy"]["count"] == said["red"] - said["blue"]


@pytest.mark.slow
def test_a_folder_that_is_not_a_label_exits_1_naming_it_and_the_labels(trained_model: Trained, folder: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "purple").mkdir()
    (folder / "Snakes").mkdir()
    assert main(["evaluate", str(folder), "--model", str(trained_model.onnx)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("snakes-web evaluate: folder(s) not among the model's labels: Snakes, purple; "
                            f"the model's labels: {', '.join(sorted(COLOURS))}.\n")


@pytest.mark.slow
def test_an_unreadable_file_is_named_on_stderr_and_counted_apart(trained_model: Trained, folder: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    pdf = folder / "green" / "scan.pdf"
    pdf.write_bytes(b"%PDF-1.7\n...")
    assert main(["evaluate", str(folder), "--model", str(trained_model.onnx), "--json"]) == 0
    captured = capsys.readouterr()
    why = "That file is a PDF, not an image. Try a JPEG, PNG, GIF, WebP, BMP, TIFF, HEIC/HEIF or AVIF photo."
    assert captured.err.splitlines() == [f"snakes-web evaluate: {pdf}: {why}"]
    report = json.loads(captured.out)
    assert report["unreadable"] == 1 and report["unreadable_files"] == [{"file": str(pdf), "error": why}]
    assert report["photos"] == sum(map(sum, report["confusion"]["matrix"])) == 4 * len(COLOURS)


@pytest.mark.slow
def test_the_text_output_has_the_accuracy_line_and_the_table(trained_model: Trained, folder: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(folder), "--model", str(trained_model.onnx)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^Top-1 accuracy: \d+\.\d% \(\d+/12\)$", out, re.MULTILINE)
    for number, label in enumerate(sorted(COLOURS), start=1):
        assert re.search(rf"^{number} {label} +\|( +(\d+|\.)){{3}} \| +\d+%$", out, re.MULTILINE)
    assert re.search(r"^Calibration of the top-1 probability: ECE \d\.\d{3}", out, re.MULTILINE)
    assert out.count("\n  0.") == 10  # one line per calibration bin


@pytest.mark.slow
def test_the_model_defaults_to_the_setting(trained_model: Trained, folder: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SNAKES_MODEL", str(trained_model.onnx))
    assert evaluated([str(folder)], capsys)["model"]["backend"] == "onnx"


@pytest.mark.slow
@pytest.mark.parametrize("contents", [{}, {"red/scan.pdf": b"%PDF-1.7\n..."}], ids=["no files", "no images"])
def test_a_folder_with_no_photo_to_evaluate_exits_1(trained_model: Trained, tmp_path: Path,
                                                    contents: dict[str, bytes],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "red").mkdir()
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    assert main(["evaluate", str(tmp_path), "--model", str(trained_model.onnx)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.splitlines()[-1].startswith("snakes-web evaluate: ")


def test_a_model_that_cannot_load_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path), "--model", str(tmp_path / "nope.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("snakes-web evaluate: ") and "nope.onnx" in err


@pytest.mark.slow
def test_the_report_is_measured_at_the_deployment_prior_and_says_so(trained_model: Trained, folder: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SNAKES_PRIORS", "red=0.8")
    report = evaluated([str(folder), "--model", str(trained_model.onnx)], capsys)
    served = load_configured(load_settings(overrides={"MODEL": str(trained_model.onnx)}))
    assert report["model"]["priors"] == served.describe()["priors"]
    assert report["model"]["priors"]["deployment"]["red"] == 0.8
    settings = load_settings()
    said = Counter((path.parent.name, served.predict(decode_image(path.read_bytes(), settings,
                                                                  min_side=needed_side(served)))[0].label)
                   for path in sorted(folder.glob("*/*.jpg")))
    labels = report["confusion"]["labels"]
    assert report["confusion"]["matrix"] == [[said[truth, answer] for answer in labels] for truth in labels]
