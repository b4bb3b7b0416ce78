"""`snakes-web bench` runs end to end (smoke mode: tiny images, fractions of a second; no timings checked)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from snakes_web.tools.bench.command import write_images
from snakes_web.tools.cli import main


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


@pytest.fixture(scope="module")
def smoke_report(tiny_export: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One smoke run of the whole bench on the tiny model (~1.5 min), shared by this module's tests."""
    out = tmp_path_factory.mktemp("bench") / "benchmarks.md"
    assert main(["bench", "--model", str(tiny_export), "--smoke", "--out", str(out)]) == 0
    return out.read_text()


def test_the_bench_measures_all_scenarios_and_writes_the_tables(smoke_report: str) -> None:
    text = smoke_report
    lines = text.splitlines()
    for scenario in ("(1) learn.predict, strongest", "(1w) learn.predict, as usually written",
                     "(2) fastai backend, HTTP", "(3) ONNX backend, HTTP",
                     "(3s) ONNX backend, HTTP, sync workers (before)", "(4) ONNX int8, HTTP"):
        assert sum(line.startswith(f"| {scenario} |") for line in lines) == 4  # 3 images + memory
    assert "**Machine:**" in text and "× learn.predict" in text and "× as written" in text
    strongest = next(line for line in lines if line.startswith("| (1) learn.predict, strongest | 1 MP"))
    assert strongest.split("|")[4].strip() == "1.00×"  # every ratio is against the strongest baseline
    setup = next(line for line in lines if line.startswith("| (1) learn.predict, strongest | 1 process"))
    assert "torch.set_num_threads(cores)" in setup
    rows = [line.split("|") for line in lines if line.startswith(("| (3)", "| (3s)")) and "JPEG" in line]
    assert len(rows) == 4 and all(row[-2].strip() == "0" for row in rows)  # no failed requests
    order = [line.split("|")[1].strip() for line in lines if line.startswith("| (")]
    assert order.index("(3s) ONNX backend, HTTP, sync workers (before)") == order.index("(3) ONNX backend, HTTP") + 3

    assert "**Threaded vs sync.**" in text and "| image | (3) threaded images/s | (3s) sync images/s |" in text
    versus = {row[0]: row for row in cells(lines, "| image | (3) threaded")}
    assert set(versus) == {"1 MP JPEG", "12 MP JPEG", "PNG with alpha"}
    assert all(row[3].endswith("×") for row in versus.values())

    assert "**Heatmaps (`?explain=`).**" in text
    heat = cells(lines, "| configuration | requests |")
    assert len(heat) == 6 and heat[0][3] == "1.00×" and all(int(row[1]) >= 1 for row in heat)
    assert [row[0] for row in heat][2:4] == ["ONNX, export with maps, `?explain=top` (occlusion)",  # the tiny
                                             "ONNX, export without maps, `?explain=top` (occlusion)"]  # net: no CAM

    assert "## Memory: decode bombs and held uploads" in text
    memory = {row[0]: row for row in cells(lines, "| server | RSS before MB |")}
    assert set(memory) == {"defaults (bounded)", "limits off"}
    for row in memory.values():  # smoke: 2 MP bombs (13 kinds, twice each) and 8 held uploads of 1 MB
        assert sum(int(n) for n in row[7].split("/")) == 26 and row[8].endswith(" of 8")
        assert float(row[2]) > 0 and float(row[1]) > 0

    assert "## Feedback's price: a prediction nobody answers" in text
    price = {row[0]: row for row in cells(lines, "| server | img/s | vs feedback off |")}
    off, plain, asked = (price[name] for name in ("feedback off (`SNAKES_FEEDBACK=false`)",
                                                  "as shipped, no receipt asked (an API client)",
                                                  "as shipped, `?feedback=1` (the page's script)"))
    assert off[2] == "1.00×" and all(row[6] == "0" and float(row[1]) > 0 for row in (off, plain, asked))
    assert int(plain[5].replace(",", "")) == int(off[5].replace(",", ""))  # no receipt: the same answer
    assert int(asked[5].replace(",", "")) > int(plain[5].replace(",", "")) + 100  # the receipt is in it

    assert "## Priors and the verdict: what an honest answer costs" in text
    priced = {row[0]: row for row in cells(lines, "| server | img/s | vs no prior |")}
    none, shifted = (priced[name] for name in ("the model's own probabilities (`SNAKES_PRIORS=none`)",
                                               "with the deployment prior (as shipped)"))
    assert none[2] == "1.00×" and all(row[6] == "0" and float(row[1]) > 0 for row in (none, shifted))
    assert "over a uniform training prior" in text  # the tiny model has no prior of its own: the bench gives one

    assert "**Slow clients.**" in text
    slow = {row[0]: row for row in cells(lines, "| config | slow uploads held")}
    assert set(slow) == {"threaded (now)", "sync (before)"}
    for row in slow.values():
        assert " of 2 " in row[1] and " of 2 " in row[2]  # smoke: 2 slow uploads and 2 slow URLs
        assert row[7] != "—" and row[8] != "—"  # every slow socket's end is counted
    threaded = slow["threaded (now)"]
    assert threaded[1].startswith("2 of 2") and threaded[2].startswith("2 of 2 (being fetched: 2")  # all held
    answered, sent = (int(n) for n in threaded[3].split(" / "))
    assert sent == 3 and answered == sent  # slow clients held: the threaded server still answers every upload


def test_the_bench_reports_int8_per_class_batching_the_breakdown_and_the_targets(smoke_report: str) -> None:
    lines = smoke_report.splitlines()
    sets = {row[0]: row for row in cells(lines, "| check set | inputs |")}
    assert set(sets) == {"photos", "positives"} and int(sets["positives"][1]) == 4  # 2 per class, 2 classes
    per_class = {row[0]: row for row in cells(lines, "| class (fp32's answer) |")}
    assert set(per_class) == {"circle", "square"} and all(row[2] == "2/2" for row in per_class.values())
    batching = {row[0]: row for row in cells(lines, "| model | batch 1 |")}
    assert set(batching) == {"fp32", "int8"} and all(row[1].endswith("(1.00×)") for row in batching.values())
    stages = {row[0]: row for row in cells(lines, "| stage | 1 MP JPEG | 12 MP JPEG |")}
    assert {"decode with draft", "forward", "rest: multipart, Flask, JSON", "over HTTP (served row)"} <= set(stages)
    targets = {row[0]: row for row in cells(lines, "| target | measured | met |")}
    assert any(name.startswith("served images/s ≥ 5×") for name in targets) and len(targets) == 4


def cells(lines: list[str], header: str) -> list[list[str]]:
    """Return the body rows of the Markdown table whose header starts with ``header``, as stripped cells."""
    start = next(index for index, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_bench_serves_a_trained_recipe_on_both_backends(smoke_report: str) -> None:
    lines = smoke_report.splitlines()
    assert "## Your own model: each recipe on ONNX against the fastai backend" in smoke_report
    [row] = cells(lines, "| recipe | network | ONNX img/s |")  # smoke: the first recipe only
    assert row[0] == "presizing" and row[1] == "resnet18" and row[4].endswith("×") and row[7] == "0"
    assert float(row[2]) > 0 and float(row[3]) > 0 and all(float(mb) > 0 for mb in row[6].replace("/", ",").split(","))
    assert "**What the batch resize costs.**" in smoke_report and "with the resample" in smoke_report


def test_a_later_recipes_run_replaces_only_its_own_section() -> None:
    from snakes_web.tools.bench.command import splice

    heading = "## Your own model"
    before = f"# Benchmarks\n\n| a |\n\n{heading}\n\nold table\n\n## Memory\n\nkept\n"
    after = splice(before, heading, f"\n{heading}\n\nnew table\n", "*later run*")
    assert after == f"# Benchmarks\n\n| a |\n\n{heading}\n\n*later run*\n\nnew table\n\n## Memory\n\nkept\n"
    appended = splice("# Benchmarks\n", heading, f"\n{heading}\n\nnew\n", "*n*")
    assert appended == f"# Benchmarks\n\n{heading}\n\n*n*\n\nnew\n"


def test_the_bench_measures_our_server_against_fastapi_serving_the_same_predictor(smoke_report: str) -> None:
    """The peers really ran: every photo has a row for ours, both FastAPI ways and the bare Flask floor, each
    answering without errors; the floor's ratios and the parsers' costs are written beside the targets."""
    from snakes_web.tools.bench.versus import FLOOR, OURS, SMALL, STRONG, USUAL

    rows = cells(smoke_report.splitlines(), "| photo | server | img/s |")
    assert [(row[0], row[1]) for row in rows] == [(photo, server) for photo in (SMALL, "1 MP JPEG", "12 MP JPEG")
                                                  for server in (OURS, STRONG, USUAL, FLOOR)]
    for row in rows:
        assert float(row[2]) > 0 and float(row[4]) > 0 and row[3].endswith("×") and row[8] == "0"
        assert 0 <= float(row[7].rstrip("%")) <= 100
    assert all(f"- {photo}: ≥ " in smoke_report for photo in (SMALL, "1 MP JPEG", "12 MP JPEG"))
    floor = re.search(r"\*\*The floor of our shape\*\* .*?: (.*)\.\n", smoke_report)
    assert floor and len(re.findall(r"\d+\.\d\d×", floor.group(1))) == 3
    parsing = re.search(r"takes gunicorn's parser ([\d.]+) µs and httptools ([\d.]+) µs", smoke_report)
    assert parsing and float(parsing.group(1)) > 0 and float(parsing.group(2)) > 0


def test_the_profile_puts_each_sample_in_its_stage_and_leaves_waiting_threads_out() -> None:
    from snakes_web.tools.bench.stages import OTHER, tally

    raw = "\n".join([
        "_bootstrap (threading.py:1002);predict (snakes_web/web/api.py:30);run (onnxruntime/capi/session.py:220) 7",
        "handle (gunicorn/workers/gthread.py:300);parse (werkzeug/formparser.py:380);dumps (json/encoder.py:200) 2",
        "handle (gunicorn/workers/gthread.py:300);parse (werkzeug/formparser.py:380) 3",
        "run (gunicorn/workers/gthread.py:100);EpollSelector.select (selectors.py:468) 50",
        "_bootstrap (threading.py:1002);_worker (concurrent/futures/thread.py:81) 40",
        "main (x.py:1) 1",
    ])
    counts = tally(raw)
    assert counts == {"forward (ONNX Runtime)": 7, "JSON answer": 2, "multipart parsing": 3, OTHER: 1}


def test_the_committed_benchmarks_carry_the_blocks_the_docs_quote() -> None:
    """Docs pages include bench numbers by block name (pymdownx.snippets); the writer marks every block."""
    from snakes_web.tools.bench.report import with_sections

    committed = (Path(__file__).parent.parent / "docs" / "benchmarks.md").read_text()
    assert with_sections(committed) == committed  # as `make bench` writes it
    names = re.findall(r"^<!-- --8<-- \[start:([a-z0-9-]+)\] -->$", committed, flags=re.M)
    assert len(names) == len(set(names)) and {"method", "against-fastapi-the-same-predictor-behind"} <= set(names)


def test_every_block_is_marked_once_and_marking_twice_changes_nothing() -> None:
    from snakes_web.tools.bench.report import with_sections

    text = "# Benchmarks\n\nintro\n\n**Machine:** x\n\n**Method.** y\n| a |\n\n## Later run\n\nz\n\n## Later run\n\nw\n"
    marked = with_sections(text)
    assert with_sections(marked) == marked
    assert re.findall(r"\[start:([a-z0-9-]+)\]", marked) == ["machine", "method", "later-run", "later-run-2"]
    assert "<!-- --8<-- [start:method] -->\n**Method.** y\n| a |\n<!-- --8<-- [end:method] -->" in marked
    assert marked.startswith("# Benchmarks\n\nintro\n\n<!-- --8<-- [start:machine] -->")
