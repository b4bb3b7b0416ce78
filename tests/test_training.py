"""`snakes-web train`: a folder of photos becomes a model the server serves, or a clear one-line refusal."""
from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from snakes_web import create_app
from snakes_web.imaging.images import load_image
from snakes_web.model.loader import load_predictor
from snakes_web.tools.cli import main
from snakes_web.tools.train import (
    EpochLines,
    Options,
    Report,
    batch_size_for,
    default_workers,
    scan_dataset,
    stratified_split,
)
from tests.training_data import COLOURS, Trained, held_out_photos, make_colour_dataset

slow = pytest.mark.slow  # the trained_model fixture fine-tunes the real pretrained network (once a session)


def accuracy_of(output: str) -> float:
    """Read the validation accuracy the command printed."""
    match = re.search(r"^Validation accuracy: ([\d.]+)%", output, flags=re.M)
    assert match, output
    return float(match.group(1)) / 100


# --- a real training run on generated photos -------------------------------------------------------

@slow
def test_training_learns_the_classes(trained_model: Trained) -> None:
    assert trained_model.status == 0, trained_model.stderr
    assert accuracy_of(trained_model.stdout) >= 0.9  # chance is 1/3


@slow
def test_it_reports_a_confusion_matrix_as_text_and_as_a_png(trained_model: Trained) -> None:
    assert "Confusion matrix (rows: actual class, columns: predicted):" in trained_model.stdout
    matrix = trained_model.stdout.split("columns: predicted):\n")[1].splitlines()[:1 + len(COLOURS)]
    assert matrix[0].split() == sorted(COLOURS)
    for label, line in zip(sorted(COLOURS), matrix[1:], strict=True):
        assert line.split()[0] == label and all(cell.isdigit() for cell in line.split()[1:])
    plot = trained_model.pkl.with_name("export-confusion.png")
    with Image.open(plot) as image:
        assert image.format == "PNG" and min(image.size) >= 200


@slow
def test_without_a_terminal_progress_is_one_line_per_epoch(trained_model: Trained) -> None:
    epochs = [line for line in trained_model.stdout.splitlines() if re.match(r"(frozen|fine-tune) epoch \d+:", line)]
    assert [line.split(":")[0] for line in epochs] == ["frozen epoch 1", "fine-tune epoch 1", "fine-tune epoch 2",
                                                       "fine-tune epoch 3"]
    assert "accuracy" in epochs[-1]
    assert "\r" not in trained_model.stdout  # no progress bars in a log


@slow
def test_the_export_loads_in_the_server_and_names_the_model_after_the_folder(trained_model: Trained) -> None:
    predictor = load_predictor(trained_model.pkl)
    assert predictor.labels == sorted(COLOURS)
    assert predictor.describe()["name"] == "photos-efficientnet-lite0"
    assert predictor.describe()["input_size"] == [64, 64]


@slow
@pytest.mark.parametrize("suffix", [".pkl", ".onnx"])
def test_the_export_predicts_photos_it_never_saw(trained_model: Trained, suffix: str) -> None:
    predictor = load_predictor(trained_model.pkl.with_suffix(suffix))
    for label, photo in held_out_photos():
        assert predictor.predict(photo)[0].label == label


@slow
def test_the_onnx_export_agrees_with_the_pkl(trained_model: Trained) -> None:
    assert re.search(r"same top class as the \.pkl on (\d+) of \1 validation photos", trained_model.stdout)
    fastai_model, onnx_model = load_predictor(trained_model.pkl), load_predictor(trained_model.onnx)
    for _, photo in held_out_photos(seed=2000):
        ours = {p.label: p.probability for p in onnx_model.predict(photo)}
        theirs = {p.label: p.probability for p in fastai_model.predict(photo)}
        assert max(ours, key=ours.__getitem__) == max(theirs, key=theirs.__getitem__)
        # transforms.py's fused resize-and-crop can differ from fastai by one level on a few pixels at
        # some small sizes, which moves probabilities by up to ~2e-3 on a weakly trained model.
        assert max(abs(ours[label] - theirs[label]) for label in ours) < 1e-2


@slow
def test_the_onnx_export_serves_with_snakes_model(trained_model: Trained) -> None:
    client = create_app({"MODEL": str(trained_model.onnx), "TESTING": True}).test_client()
    label, photo = held_out_photos(seed=3000, per_class=1)[2]
    body = io.BytesIO()
    photo.save(body, format="PNG")
    answer = client.post("/api/v1/predict", data={"file": (io.BytesIO(body.getvalue()), "x.png")})
    assert answer.status_code == 200
    assert answer.get_json()["predictions"][0]["label"] == label
    assert answer.get_json()["model"]["backend"] == "onnx"


@slow
def test_the_command_says_how_to_serve_the_result(trained_model: Trained) -> None:
    onnx, here = trained_model.onnx.resolve(), Path.cwd().resolve()
    shown = onnx.relative_to(here) if onnx.is_relative_to(here) else onnx  # as the command shows it
    assert f"SNAKES_MODEL={shown} make run" in trained_model.stdout
    assert f"snakes-web predict {shown} PHOTO" in trained_model.stdout


@slow
def test_a_refused_int8_is_said_and_the_fp32_model_stands(trained_model: Trained) -> None:
    """The fixture asks --int8 with a bar of 101%: refused, said on stderr, nothing written, exit 0."""
    assert trained_model.status == 0
    assert "the int8 model agrees with fp32 on the top-1 of only" in trained_model.stderr
    assert "below 101.0%); not written" in trained_model.stderr
    assert not trained_model.onnx.with_name("export-int8.onnx").exists()
    assert trained_model.onnx.is_file() and "SNAKES_MODEL=" in trained_model.stdout


@slow
def test_an_int8_that_keeps_the_answers_is_written_and_named(int8_trained_model: Trained) -> None:
    int8 = int8_trained_model.onnx.with_name("export-int8.onnx")
    assert int8_trained_model.status == 0, int8_trained_model.stderr
    assert int8.is_file() and "(int8; serve it with SNAKES_MODEL=" in int8_trained_model.stdout


# --- refusals: one line on stderr, exit status 1, no traceback -------------------------------------

def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run `snakes-web train` expecting a refusal; return its last stderr line."""
    assert main(["train", *argv]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("snakes-web train: ")
    return last


def write(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path``, making its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_missing_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "does not exist" in refused([str(tmp_path / "nope")], capsys)


def test_a_file_instead_of_a_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "is not a folder" in refused([str(write(tmp_path / "x.jpg", b"x"))], capsys)


@pytest.mark.parametrize("classes, found", [((), "found none"), (("red",), "found only one (red)")])
def test_fewer_than_two_classes_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            classes: tuple[str, ...], found: str) -> None:
    make_colour_dataset(tmp_path, per_class=12, classes=classes)
    message = refused([str(tmp_path)], capsys)
    assert "at least two classes" in message and found in message


def test_a_class_with_too_few_images_is_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_colour_dataset(tmp_path, per_class=12, classes=("red", "green"))
    make_colour_dataset(tmp_path, per_class=3, classes=("blue",))
    message = refused([str(tmp_path)], capsys)
    assert "at least 10" in message and "blue (3)" in message and "red" not in message


def test_the_minimum_per_class_is_an_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_colour_dataset(tmp_path, per_class=4, classes=("red", "green"))
    assert main(["train", str(tmp_path), "--min-per-class", "4", "--check"]) == 0
    assert "red" in capsys.readouterr().out


def test_train_and_valid_folders_with_different_classes_are_refused(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    make_colour_dataset(tmp_path / "train", per_class=10, classes=("red", "green"))
    make_colour_dataset(tmp_path / "valid", per_class=2, classes=("red", "blue"))
    message = refused([str(tmp_path)], capsys)
    assert "only in train/: green" in message and "only in valid/: blue" in message


def unreadable_files(root: Path) -> list[Path]:
    """Add files that are not images we read to a class folder."""
    return [write(root / "red" / "notes.txt", b"my best red photos\n"),
            write(root / "red" / "cut.jpg", (root / "red" / "0.jpg").read_bytes()[:300]),
            write(root / "green" / "scan.pdf", b"%PDF-1.7\n..."),
            write(root / "green" / "empty.png", b"")]


def test_unreadable_files_are_listed_and_skipped_by_default(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    make_colour_dataset(tmp_path, per_class=12, classes=("red", "green"))
    unreadable_files(tmp_path)
    assert main(["train", str(tmp_path), "--check"]) == 0
    captured = capsys.readouterr()
    assert "Skipping 4 file(s) that are not images we read:" in captured.err
    assert "red/notes.txt: a text file, not an image we read" in captured.err
    assert "red/cut.jpg: truncated or corrupt" in captured.err
    assert "green/scan.pdf: a PDF, not an image we read" in captured.err
    assert "green/empty.png: an empty file" in captured.err
    assert re.search(r"red\s+10 train\s+2 valid", captured.out)


def test_skip_only_counts_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_colour_dataset(tmp_path, per_class=12, classes=("red", "green"))
    unreadable_files(tmp_path)
    assert main(["train", str(tmp_path), "--check", "--bad-files", "skip"]) == 0
    err = capsys.readouterr().err
    assert "Skipping 4 file(s)" in err and "notes.txt" not in err


def test_unreadable_files_are_fatal_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_colour_dataset(tmp_path, per_class=12, classes=("red", "green"))
    unreadable_files(tmp_path)
    assert main(["train", str(tmp_path), "--bad-files", "fail"]) == 1
    err = capsys.readouterr().err
    assert "red/notes.txt: a text file, not an image we read" in err
    assert err.strip().splitlines()[-1].startswith("snakes-web train: 4 file(s) are not images we can read")


def test_unreadable_files_count_against_the_minimum(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_colour_dataset(tmp_path, per_class=12, classes=("red", "green"))
    for index in range(3):
        write(tmp_path / "green" / f"{index}.jpg", b"not a photo")
    assert "green (9)" in refused([str(tmp_path)], capsys)


@pytest.mark.parametrize("option, value", [("--epochs", "-1"), ("--lr", "0"), ("--valid-pct", "1.5"),
                                           ("--size", "8"), ("--batch-size", "1"), ("--output", "models/")])
def test_impossible_options_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str,
                                        value: str) -> None:
    make_colour_dataset(tmp_path, per_class=10, classes=("red", "green"))
    assert option in refused([str(tmp_path), option, value], capsys)


# --- layouts ------------------------------------------------------------------------------------

def test_train_and_valid_folders_are_the_split(tmp_path: Path) -> None:
    make_colour_dataset(tmp_path / "train", per_class=10, classes=("red", "green"))
    make_colour_dataset(tmp_path / "valid", per_class=3, classes=("red", "green"), seed=1)
    dataset = scan_dataset(tmp_path)
    assert dataset.counts() == {"green": (10, 3), "red": (10, 3)}
    assert all(path.parent.parent.name == "valid" for path, _ in dataset.valid)


def test_a_train_folder_alone_is_split_and_its_neighbours_are_not_classes(tmp_path: Path) -> None:
    make_colour_dataset(tmp_path / "train", per_class=10, classes=("red", "green"))
    make_colour_dataset(tmp_path / "test", per_class=2, classes=("red", "green"))
    dataset = scan_dataset(tmp_path)
    assert dataset.classes == ["green", "red"] and dataset.counts() == {"green": (8, 2), "red": (8, 2)}
    assert dataset.ignored == [tmp_path.resolve() / "test"]


def test_photos_may_sit_deeper_and_hidden_files_are_passed_over(tmp_path: Path) -> None:
    make_colour_dataset(tmp_path / "red" / "2024", per_class=5, classes=("red",))
    make_colour_dataset(tmp_path / "red" / "2025", per_class=5, classes=("red",))
    make_colour_dataset(tmp_path, per_class=10, classes=("green",))
    write(tmp_path / "green" / ".DS_Store", b"\0\0\0\1Bud1")
    write(tmp_path / "green" / "._0.jpg", b"\0\5\26\7")
    write(tmp_path / "README.txt", b"my photos")
    dataset = scan_dataset(tmp_path)
    assert dataset.classes == ["green", "red"] and not dataset.bad
    assert sum(dataset.counts()["red"]) == 10
    assert dataset.ignored == [tmp_path.resolve() / "README.txt"]
    assert "ignored, not in a class folder: 1 (e.g. README.txt)" in dataset.describe()


def test_the_split_holds_out_part_of_every_class_the_same_way_each_time() -> None:
    classes = {"big": [Path(f"big/{i}.jpg") for i in range(50)], "small": [Path(f"small/{i}.jpg") for i in range(5)]}
    train, valid = stratified_split(classes, 0.2, seed=3)
    assert sorted(label for _, label in valid).count("small") == 1
    assert sorted(label for _, label in valid).count("big") == 10
    assert len(train) + len(valid) == 55 and not {p for p, _ in train} & {p for p, _ in valid}
    assert (train, valid) == stratified_split(classes, 0.2, seed=3)
    assert valid != stratified_split(classes, 0.2, seed=4)[1]


def test_training_reads_photos_like_the_server_upright(tmp_path: Path) -> None:
    """A photo with an EXIF rotation trains the way the server will see it: rotated upright."""
    from snakes_web.model.fastai_data import ReadPhoto

    photo = Image.new("RGB", (120, 60), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "sideways.jpg"
    photo.save(path, exif=exif)
    read = ReadPhoto(50_000_000, None)(path)
    assert read.size == load_image(path.read_bytes(), 50_000_000).size == (60, 120)


# --- choices made for a CPU ------------------------------------------------------------------------

@pytest.mark.parametrize("cores, shm_mb, images, expected", [
    (2, 2048, 5000, 0),     # two cores: the passes themselves use both
    (8, 64, 5000, 0),       # Docker's default 64 MB /dev/shm
    (8, 2048, 40, 0),       # a few batches: workers cost more than they save
    (8, 2048, 5000, 4),
    (4, 2048, 5000, 2),
])
def test_data_loader_workers_default_to_what_the_machine_carries(cores: int, shm_mb: int, images: int,
                                                                  expected: int) -> None:
    workers, why = default_workers(images, 32, 224, cores=cores, shm_free=shm_mb * 2**20)
    assert workers == expected and why


@pytest.mark.parametrize("images, wanted, expected", [(5000, 32, 32), (240, 32, 30), (57, 32, 8), (6, 32, 6)])
def test_an_epoch_has_enough_steps(images: int, wanted: int, expected: int) -> None:
    assert batch_size_for(images, wanted) == expected


def test_the_report_reads_the_confusion_matrix_and_the_mistakes() -> None:
    report = Report(["cat", "dog"], [Path("/p/cat/1.jpg"), Path("/p/cat/2.jpg"), Path("/p/dog/3.jpg")], [0, 0, 1],
                    [[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    assert report.accuracy == pytest.approx(2 / 3) and report.confusion == [[1, 1], [0, 1]]
    text = report.text(Path("/p"))
    assert "Validation accuracy: 66.7% (2 of 3)" in text
    assert "cat/2.jpg: cat, predicted dog (80%)" in text


def test_epoch_lines_name_every_column() -> None:
    from torch import nn

    class Recorder:
        metric_names = ["epoch", "train_loss", "valid_loss", "accuracy", "time"]

    class Learner:
        recorder = Recorder()
        model = [nn.Linear(1, 1)]  # a body that trains: not frozen

    lines: list[str] = []
    EpochLines(Learner(), lines.append)([0, 0.5, 0.25, 0.875, "00:03"])
    assert lines == ["fine-tune epoch 1: train_loss 0.5000, valid_loss 0.2500, accuracy 0.8750, time 00:03"]


def test_options_default_to_the_default_models_input() -> None:
    assert Options().size == 224 and Options().resize == 256


# --- where it trains --------------------------------------------------------------------------------

def test_device_auto_is_cuda_only_where_torch_sees_a_gpu() -> None:
    import torch

    from snakes_web.tools.train import device_for

    assert device_for(Options(device="auto")) == ("cuda" if torch.cuda.is_available() else "cpu")
    assert device_for(Options(device="cpu")) == "cpu"


@slow
def test_the_command_says_where_it_trained(trained_model: Trained) -> None:
    import torch

    assert f", on {'cuda' if torch.cuda.is_available() else 'cpu'}." in trained_model.stdout


def test_device_cuda_without_a_gpu_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from snakes_web.tools.train import DatasetError, device_for

    if torch.cuda.is_available():  # a GPU machine: cuda is what it trains on
        assert device_for(Options(device="cuda")) == "cuda"
        return
    photos = make_colour_dataset(tmp_path / "photos", per_class=10)
    last = refused([str(photos), "-o", str(tmp_path / "m.pkl"), "--device", "cuda"], capsys)
    assert "--device cuda: torch sees no CUDA GPU" in last
    with pytest.raises(DatasetError):
        device_for(Options(device="cuda"))


def test_int8_needs_onnx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photos = make_colour_dataset(tmp_path / "photos", per_class=10)
    assert "--int8 needs --onnx" in refused([str(photos), "-o", str(tmp_path / "m.pkl"), "--int8"], capsys)
