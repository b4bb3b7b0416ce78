"""The inference gate and its semaphores, in one process: slots, the queue bound, the wait, the 503s."""
from __future__ import annotations

import io
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from snakes_web import create_app
from snakes_web.exceptions import GateLost, Overloaded
from snakes_web.serving import gate
from snakes_web.serving.gate import ADMITTED, RUNNING, GateSize, InferenceGate, size_of
from snakes_web.serving.semaphores import SharedSemaphores, ThreadSemaphores, create, remove
from snakes_web.serving.worker import Pace
from tests.conftest import COLOURS, FakePredictor, image_bytes


@pytest.fixture
def shared() -> Iterator[SharedSemaphores]:
    """A real System V semaphore set [admitted=3, running=1], removed after the test."""
    semid = create([3, 1])
    yield SharedSemaphores(semid)
    remove(semid)


def test_the_shared_semaphores_count_time_out_and_do_not_wait_when_told_not_to(shared: SharedSemaphores) -> None:
    assert shared.acquire(RUNNING, 0) and not shared.acquire(RUNNING, 0)
    started = time.monotonic()
    assert not shared.acquire(RUNNING, 0.3)
    assert 0.25 < time.monotonic() - started < 5
    shared.release(RUNNING)
    assert shared.value(RUNNING) == 1 and shared.value(ADMITTED) == 3


def test_a_waiting_thread_does_not_hold_the_gil(shared: SharedSemaphores) -> None:
    shared.acquire(RUNNING, 0)
    waiter = threading.Thread(target=shared.acquire, args=(RUNNING, 1.0))
    waiter.start()
    counted = 0
    while waiter.is_alive():  # this loop could not run at all if the wait held the GIL
        counted += 1
    assert counted > 1000


def test_a_process_that_dies_holding_units_gives_them_back(shared: SharedSemaphores) -> None:
    child = os.fork()
    if child == 0:  # the child takes every unit and is killed holding them
        mine = SharedSemaphores(shared.semid)
        mine.acquire(ADMITTED, None), mine.acquire(RUNNING, None)
        time.sleep(60)
        os._exit(0)
    deadline = time.monotonic() + 10
    while shared.value(RUNNING) != 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert shared.value(RUNNING) == 0 and shared.value(ADMITTED) == 2
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    assert shared.value(RUNNING) == 1 and shared.value(ADMITTED) == 3


@pytest.mark.parametrize("kind", ["threads", "shared"])
def test_a_full_queue_is_refused_at_once_and_a_long_wait_after_the_timeout(kind: str,
                                                                         shared: SharedSemaphores) -> None:
    size = GateSize(slots=1, queue=1, timeout=0.3)
    semaphores = ThreadSemaphores(size.values) if kind == "threads" else shared
    if kind == "shared":  # the fixture's set is [3, 1]: use one admitted unit up to match [2, 1]
        shared.acquire(ADMITTED, 0)
    gate_ = InferenceGate(semaphores, size)
    refusals: list[str] = []
    gate_.on_refused.append(refusals.append)
    release = threading.Event()

    def hold() -> None:
        with gate_.admitted():
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.1)
    waiter_outcome: list[str] = []

    def wait() -> None:
        try:
            with gate_.admitted():
                waiter_outcome.append("ran")
        except Overloaded:
            waiter_outcome.append("503")

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(Overloaded) as refused, gate_.admitted():  # one running, one waiting: the queue is full
        pass
    assert time.monotonic() - started < 0.2 and refused.value.retry_after >= 1
    waiter.join()
    assert waiter_outcome == ["503"] and refusals == ["queue-full", "timeout"]
    release.set()
    holder.join()
    with gate_.admitted():  # every unit came back
        pass
    assert semaphores.value(RUNNING) == 1


def test_a_backend_that_runs_one_prediction_at_a_time_gets_a_process_lock() -> None:
    gate_ = InferenceGate(ThreadSemaphores(size_of(2, 0, 1.0).values), size_of(2, 0, 1.0))
    inside, most = [0], [0]
    lock = threading.Lock()

    def predict() -> None:
        with gate_.admitted(concurrency=1):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=predict) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1  # two slots, but fastai's Learner.predict is never run twice at once


def most_at_once(gate_: InferenceGate, hold: float, preferred: int, threads: int = 4) -> int:
    """Run ``threads`` predictions of ``hold`` seconds through the gate at once; return the most inside together."""
    inside, most = [0], [0]
    lock = threading.Lock()

    def predict() -> None:
        with gate_.admitted(preferred=preferred):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(hold)
            with lock:
                inside[0] -= 1

    running = [threading.Thread(target=predict) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return most[0]


def test_a_worker_s_short_predictions_take_turns_but_a_long_one_never_keeps_a_free_slot_unused() -> None:
    """PREDICTIONS_PER_WORKER=1: ordinary predictions run one at a time in a process; one that holds its turn
    past PREFER_PATIENCE has the next run beside it, on the other slot, as with 0 (no preference)."""
    def two_slots() -> InferenceGate:
        return InferenceGate(ThreadSemaphores(size_of(2, 0, 5.0).values), size_of(2, 0, 5.0))

    assert most_at_once(two_slots(), 0.02, preferred=1) == 1
    assert most_at_once(two_slots(), 0.02, preferred=0) == 2
    gate_ = two_slots()
    started = time.monotonic()
    assert most_at_once(gate_, 1.0, preferred=1, threads=2) == 2  # the second waited its patience, then ran
    assert time.monotonic() - started < 1.0 + gate.PREFER_PATIENCE + 0.5


def test_an_overload_burst_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    gate_ = InferenceGate(ThreadSemaphores([0, 0]), GateSize(1, 0, 0.01))
    with caplog.at_level(logging.WARNING, logger="snakes_web.serving.gate"):
        for _ in range(50):
            with pytest.raises(Overloaded), gate_.admitted():
                pass
    assert len([record for record in caplog.records if "overloaded" in record.getMessage()]) == 1


class HeldPredictor(FakePredictor):
    """The colour fake, which waits for ``release`` before answering."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.started = threading.Event()

    def predict(self, image: Image.Image) -> Any:
        self.started.set()
        self.release.wait(10)
        return super().predict(image)


@pytest.mark.parametrize("path", ["/api/v1/predict", "/"])
def test_when_the_model_is_busy_and_the_queue_full_the_answer_is_503_with_retry_after(path: str) -> None:
    predictor = HeldPredictor()
    app = create_app({"PREDICTOR": predictor, "TESTING": True, "QUEUE_LENGTH": 1, "QUEUE_TIMEOUT": 10.0,
                      "METRICS_PORT": 0})  # /metrics in the app: there is no gunicorn master here
    png = image_bytes("PNG", colour=COLOURS["green"])

    def post() -> Any:
        return app.test_client().post(path, data={"file": (__import__("io").BytesIO(png), "g.png")})

    holder = threading.Thread(target=post)
    holder.start()
    assert predictor.started.wait(10)
    queued = threading.Thread(target=post)
    queued.start()
    deadline = time.monotonic() + 10
    while gate.gate_of(app).semaphores.value(ADMITTED) > 0:  # the second one waits for the slot
        assert time.monotonic() < deadline
        time.sleep(0.01)
    refused = post()
    predictor.release.set()
    holder.join(), queued.join()
    assert refused.status_code == 503 and refused.headers["Retry-After"].isdigit()
    if path.startswith("/api"):
        assert refused.mimetype == "application/problem+json"
        assert refused.get_json()["type"].endswith("overloaded")
    else:
        assert refused.mimetype == "text/html" and "busy" in refused.get_data(as_text=True)
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'snakes_overload_refusals_total{reason="queue-full"} 1.0' in metrics


# --- a set removed under the server (systemd RemoveIPC, ipcrm) --------------------------------------------

def test_a_removed_set_is_named_as_removed_never_as_busy_and_logged_once(shared: SharedSemaphores,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    semid = shared.semid
    gate_ = InferenceGate(shared, GateSize(1, 2, 0.5))
    assert gate_.gone() == ""
    remove(semid)
    for _ in range(3):
        with pytest.raises(GateLost) as lost:
            gate_.check_room()
        assert "busy" not in lost.value.detail and "restarting" in lost.value.detail
        with pytest.raises(GateLost), gate_.admitted():
            pass
    assert gate_.gone() == f"the semaphore set {semid} was removed (systemd RemoveIPC? an ipcrm?)"
    assert len([r for r in caplog.records if f"semaphore set {semid} was removed" in r.getMessage()]) == 1


def test_a_request_waiting_when_the_set_is_removed_is_told_at_once_and_the_one_running_finishes(
        shared: SharedSemaphores) -> None:
    gate_ = InferenceGate(shared, GateSize(1, 2, 10.0))
    running, finish = threading.Event(), threading.Event()
    outcomes: list[str] = []

    def run() -> None:
        with gate_.admitted():  # holds the only slot while the set goes; giving it back must not fail
            running.set()
            finish.wait(10)
        outcomes.append("ran")

    def wait() -> None:
        try:
            with gate_.admitted():
                outcomes.append("ran too")
        except GateLost:
            outcomes.append("lost")

    runner, waiter = threading.Thread(target=run), threading.Thread(target=wait)
    runner.start()
    assert running.wait(10)
    waiter.start()
    time.sleep(0.1)  # the waiter is in semtimedop, 10 s to go
    started = time.monotonic()
    remove(shared.semid)
    waiter.join(5)
    assert outcomes == ["lost"] and time.monotonic() - started < 2  # EIDRM wakes it, not the timeout
    finish.set()
    runner.join(5)
    assert outcomes == ["lost", "ran"]


def test_without_its_semaphores_readyz_and_predictions_answer_503_naming_the_cause(
        settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch, shared: SharedSemaphores) -> None:
    semid = shared.semid
    monkeypatch.setenv(gate.GATE_ENV, gate.handed(semid, GateSize(1, 2, 1.0)))  # as the gunicorn master hands it
    client = create_app(settings).test_client()
    assert client.get("/readyz").status_code == 200
    remove(semid)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["type"].endswith(":gate-lost")
    assert f"the semaphore set {semid} was removed (systemd RemoveIPC? an ipcrm?)" in ready.get_json()["detail"]
    for path in ("/api/v1/predict", "/"):
        answer = client.post(path, data={"file": (io.BytesIO(image_bytes()), "r.png")})
        text = answer.get_data(as_text=True)
        assert answer.status_code == 503 and answer.headers["Retry-After"].isdigit()
        assert "restarting" in text and "busy" not in text


@pytest.mark.parametrize(("received", "elapsed", "behind"), [
    (0, 4.9, False),          # inside the grace period
    (0, 5.1, True),           # nothing after the grace period
    (10240, 5.9, False),      # 10 KB in: one more second allowed at 10 KB/s
    (10240, 6.1, True),
    (10**9, 299.0, False),    # fast enough, but ...
    (10**9, 300.1, True),     # ... the whole request may take 300 s at most
])
def test_the_pace_cuts_a_request_that_falls_behind(received: int, elapsed: float, behind: bool) -> None:
    pace = Pace(min_rate=10240, grace=5, total=300)
    assert (pace.deadline(0.0, received) < elapsed) is behind


def test_the_default_pace_lets_a_phone_on_poor_3g_upload_10_mb() -> None:
    from snakes_web.config import load_settings
    from snakes_web.serving.worker import pace_from_settings

    pace = pace_from_settings(load_settings(environ={}))
    size, rate = 10 * 1024 * 1024, 50 * 1024  # 10 MB at ~50 KB/s: about 205 s
    assert all(pace.deadline(0.0, int(rate * t)) > t for t in range(1, int(size / rate) + 1))
