"""`snakes-web bench` runs end to end (smoke mode: tiny images, fractions of a second; no timings checked)."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from snakes_web.bench import write_images
from snakes_web.cli import main


def test_the_bench_images_are_what_it_says(tmp_path: Path) -> None:
    images = write_images(tmp_path)
    opened = {label: Image.open(path) for label, path in images.items()}
    try:
        sizes = {label: image.size for label, image in opened.items()}
        assert sizes == {"1 MP JPEG": (1152, 864), "12 MP JPEG": (4032, 3024), "PNG with alpha": (1024, 1024)}
        assert opened["PNG with alpha"].mode == "RGBA"
        assert [image.format for image in opened.values()] == ["JPEG", "JPEG", "PNG"]
    finally:
        for image in opened.values():
            image.close()


def test_the_bench_measures_all_three_scenarios_and_writes_the_table(tiny_export: Path, tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    assert main(["bench", "--model", str(tiny_export), "--smoke", "--out", str(out)]) == 0
    text = out.read_text()
    for scenario in ("(1) learn.predict, in process", "(2) fastai backend, HTTP", "(3) ONNX backend, HTTP"):
        assert sum(line.startswith(f"| {scenario} |") for line in text.splitlines()) == 4  # 3 images + memory
    assert "**Machine:**" in text and "× learn.predict" in text
    rows = [line.split("|") for line in text.splitlines() if line.startswith("| (3)") and "JPEG" in line]
    assert all(row[-2].strip() == "0" for row in rows)  # no failed requests
