"""The loop closes: feedback exported by `snakes-web feedback export` trains with `snakes-web train`."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import pytest

from snakes_web import create_app
from snakes_web.tools.cli import main
from snakes_web.web.feedback import feedback_of
from tests.conftest import FakePredictor
from tests.training_data import COLOURS, held_out_photos, make_colour_dataset


def run(*argv: str) -> tuple[int, str]:
    """Run `snakes-web ...` and return its exit status and what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = main(list(argv))
    return status, out.getvalue()


def give_feedback(client: Any) -> int:
    """Classify held-out photos with the page's API and say what each really is; return how many."""
    count = 0
    for label, photo in held_out_photos(seed=7, per_class=4):
        data = io.BytesIO()
        photo.save(data, format="JPEG")
        data.seek(0)
        jpeg = data.getvalue()
        body = client.post("/api/v1/predict?feedback=1", data={"file": (data, "p.jpg")}).get_json()
        receipt = body["feedback_receipt"]
        answer = client.post("/api/v1/feedback", data={"receipt": receipt, "verdict": "correct", "label": label,
                                                       "file": (io.BytesIO(jpeg), "p.jpg")})
        assert answer.status_code == 201
        count += 1
    receipt = client.post("/api/v1/predict?feedback=1", data={"file": (io.BytesIO(jpeg), "p.jpg")}).get_json()
    assert client.post("/api/v1/feedback", data={"receipt": receipt["feedback_receipt"], "verdict": "none",
                                                 "other": "a lizard", "file": (io.BytesIO(jpeg), "p.jpg")}
                       ).status_code == 201
    return count


@pytest.mark.slow
def test_exported_feedback_trains_with_the_originals(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    app = create_app({"PREDICTOR": FakePredictor(), "DATABASE_URL": url, "FEEDBACK_RATE_LIMIT": ""})
    corrections = give_feedback(app.test_client())
    feedback_of(app).store.database.dispose()
    photos = make_colour_dataset(tmp_path / "photos", per_class=10)

    status, said = run("feedback", "--database-url", url, "export", str(photos))
    assert status == 0 and f"Wrote {corrections + 1} photo(s)" in said
    for label in COLOURS:
        assert len(list((photos / label).glob("feedback-*.jpg"))) == 4  # beside the originals

    pkl = tmp_path / "model" / "export.pkl"
    status, said = run("train", str(photos), "-o", str(pkl), "--size", "32", "--epochs", "1", "--frozen-epochs", "0",
                       "--seed", "0", "--min-per-class", "5", "-q")
    assert status == 0, said
    counts = re.search(r"^3 classes, (\d+) training and (\d+) validation images", said, flags=re.M)
    assert counts and int(counts.group(1)) + int(counts.group(2)) == 3 * 10 + corrections  # "none" left out
    assert pkl.is_file() and "Validation accuracy" in said
