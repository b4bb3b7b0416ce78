"""Feedback on real gunicorn: two workers × many threads lose nothing; SIGKILL mid-burst loses nothing stored.

Both on SQLite (one file, several processes writing) and PostgreSQL. The model is the fake colour model
(tests/feedback_app.py): what is measured is storing, not inference.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import io
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image
from sqlalchemy import func, select

from snakes_web.feedback.database import Database, rate_limits
from snakes_web.feedback.receipts import digest, issue
from snakes_web.feedback.store import FeedbackStore
from snakes_web.model.predictor import ranked
from tests.conftest import free_port
from tests.test_gunicorn import ROOT, wait_ready

pytestmark = pytest.mark.slow
SECRET = "the key every worker shares in these tests"


@contextlib.contextmanager
def feedback_server(tmp_path: Path, database_url: str, workers: int = 2, threads: int = 16
                    ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run gunicorn (own process group, so a test can SIGKILL all of it) on the database; yield its URL."""
    model = tmp_path / "fake.onnx"
    model.write_bytes(b"")  # gunicorn.conf.py checks the file exists; the fake model answers
    log = tmp_path / "gunicorn.log"
    env = {**os.environ, "SNAKES_MODEL": str(model), "SNAKES_DATABASE_URL": database_url, "SNAKES_SECRET_KEY": SECRET,
           "SNAKES_THREADS": str(threads), "SNAKES_FEEDBACK_RATE_LIMIT": "100000/minute", "SNAKES_LOG_LEVEL": "warning",
           # An answer's photo is decoded through the inference gate, like a prediction: room for the whole
           # burst to wait there, since what is tested is storing, not the gate's 503 (tests/test_gate.py).
           "SNAKES_QUEUE_LENGTH": "64", "SNAKES_QUEUE_TIMEOUT": "60"}
    env.pop("PORT", None)
    env.pop("WEB_CONCURRENCY", None)
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), "--log-level", "info", "--access-logformat", "pid=%(p)s %(r)s %(s)s",
             "tests.feedback_app:create()"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process, log, workers=workers)
        yield base, process
    finally:
        (tmp_path / "access.log").write_text(log.read_text())
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
        else:  # SIGKILLed: the master could not remove what it made, so the test does
            clean_up_after(log.read_text())


def clean_up_after(log: str) -> None:
    """Remove the gate's semaphore set and the metrics folder a killed master left behind."""
    from snakes_web.serving import semaphores

    for semid in re.findall(r"semaphore set (\d+)", log):
        semaphores.remove(int(semid))
    for folder in re.findall(r"Prometheus multiprocess folder (\S+)", log):
        shutil.rmtree(folder, ignore_errors=True)


def _photo() -> bytes:
    """Return the photo every answer of these tests is about (a photo-sized JPEG)."""
    out = io.BytesIO()
    Image.effect_noise((320, 240), 40).convert("RGB").save(out, format="JPEG", quality=90)
    return out.getvalue()


PHOTO = _photo()


def tokens(count: int) -> list[str]:
    """Mint ``count`` receipts for PHOTO with the servers' key, as their predictions would."""
    return [issue(SECRET, [digest(PHOTO)], ranked(["red", "green", "blue"], [0.7, 0.2, 0.1]), "fake-colours")
            for _ in range(count)]


def send(base: str, token: str) -> tuple[int, int | None]:
    """Post one confirmation with its photo; return (status, stored id), status 0 when the connection failed."""
    try:
        response = requests.post(f"{base}/api/v1/feedback", data={"receipt": token, "verdict": "confirm"},
                                 files={"file": ("photo.jpg", PHOTO, "image/jpeg")}, timeout=60)
    except requests.RequestException:
        return 0, None
    return response.status_code, response.json().get("id") if response.status_code == 201 else None


def opened(database_url: str) -> FeedbackStore:
    """Open the database afresh, as a new server would."""
    return FeedbackStore(Database.from_settings({"DATABASE_URL": database_url, "DATA_DIR": ""}))


def test_two_workers_with_many_threads_lose_nothing(tmp_path: Path, database_url: str) -> None:
    with feedback_server(tmp_path, database_url) as (base, _):
        # One real round trip first: a prediction answered by one worker, its feedback by whichever.
        predicted = requests.post(f"{base}/api/v1/predict?feedback=1", files={"file": ("p.jpg", PHOTO)}, timeout=30)
        assert send(base, predicted.json()["feedback_receipt"])[0] == 201
        burst = tokens(160)
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            outcomes = list(pool.map(lambda t: send(base, t), burst))
    assert [status for status, _ in outcomes].count(201) == len(burst), outcomes
    writers = set(re.findall(r"pid=<(\d+)> POST /api/v1/feedback", (tmp_path / "access.log").read_text()))
    assert len(writers) == 2  # both workers wrote
    ids = {i for _, i in outcomes}
    store = opened(database_url)
    try:
        assert len(ids) == len(burst) and ids <= store.ids() and store.count() == len(burst) + 1
        assert store.usage()[0] == len(burst) + 1
        with store.database.engine.begin() as connection:  # the rate limit counted every one, across workers
            assert connection.execute(select(func.sum(rate_limits.c.count))).scalar() == len(burst) + 1
    finally:
        store.database.dispose()


def test_sigkill_mid_burst_loses_nothing_that_was_stored(tmp_path: Path, database_url: str) -> None:
    stored: list[int] = []
    lock = threading.Lock()
    enough = threading.Event()

    def post(token: str) -> int:
        status, stored_id = send(base, token)
        if stored_id is not None:
            with lock:
                stored.append(stored_id)
                if len(stored) >= 40:
                    enough.set()
        return status

    with feedback_server(tmp_path, database_url) as (base, process):
        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            futures = [pool.submit(post, token) for token in tokens(240)]
            assert enough.wait(120), "the burst never got going"
            os.killpg(process.pid, signal.SIGKILL)  # the master and both workers, mid-write
            statuses = [f.result() for f in futures]
        process.wait(timeout=30)
    assert 40 <= len(stored) < 240 and statuses.count(0) > 0  # it really was cut short
    if database_url.startswith("sqlite"):
        path = database_url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path)) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    store = opened(database_url)
    try:
        assert set(stored) <= store.ids()  # every "stored" answer is in the database
        assert store.usage()[0] == store.count()  # and the quota's count agrees with the rows
        assert store.secret("after")  # it still takes writes
    finally:
        store.database.dispose()
