"""Graceful shutdown, for real: gunicorn gets SIGTERM while it holds a prediction and has answers to give.

What docs/deployment.md promises in "Scale out": on SIGTERM /readyz answers 503 at once, the server goes on
answering for SNAKES_DRAIN_SECONDS, then stops listening, finishes what it admitted and exits; a
reload (SIGHUP) is not a stop, so /readyz stays 200 through it.
"""
from __future__ import annotations

import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from snakes_web import create_app
from snakes_web.serving.shutdown import StopFlag, attach, raise_on_sigterm
from tests.conftest import image_bytes
from tests.held_app import MAGENTA
from tests.test_gunicorn import running_gunicorn
from tests.test_slow_clients import HELD_APP, environment, photo_upload

DRAIN = 3


def test_a_raised_stop_flag_turns_readyz_to_a_503_problem_and_leaves_healthz_alone(settings: dict[str, Any]) -> None:
    app = create_app(settings)
    flag = StopFlag()
    attach(app.extensions, flag)
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    flag.set()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"].endswith(":shutting-down")
    assert response.headers["Retry-After"] == "1"
    assert client.get("/healthz").status_code == 200


def test_the_flag_is_shared_with_a_forked_child_and_raised_by_sigterm() -> None:
    import os

    flag = StopFlag()
    previous = signal.getsignal(signal.SIGTERM)
    seen: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        raise_on_sigterm(flag)
        child = os.fork()
        if child == 0:  # the child waits for the parent's flag, as a worker reads the master's
            deadline = time.monotonic() + 10
            while not flag.is_set() and time.monotonic() < deadline:
                time.sleep(0.01)
            os._exit(0 if flag.is_set() else 1)
        os.kill(os.getpid(), signal.SIGTERM)
        _, status = os.waitpid(child, 0)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [signal.SIGTERM]  # the handler that was there before still ran
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.slow
def test_sigterm_turns_readyz_to_503_at_once_serves_through_the_drain_and_finishes_what_it_admitted(
        default_onnx: Path, tmp_path: Path) -> None:
    log = tmp_path / "gunicorn.log"
    env = environment(SNAKES_DRAIN_SECONDS=str(DRAIN), SNAKES_GRACEFUL_TIMEOUT="20", SNAKES_TEST_HOLD_SECONDS="6")
    with running_gunicorn(default_onnx, log, environ=env, app=HELD_APP) as (base, process), \
            ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(requests.post, f"{base}/api/v1/predict", timeout=60,
                           files={"file": ("m.png", image_bytes("PNG", colour=MAGENTA))})
        deadline = time.monotonic() + 20
        while "holding a slot" not in log.read_text():
            assert time.monotonic() < deadline, "the held prediction never started"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        # At once: the first /readyz after the signal is a 503 (the master raised the flag first) ...
        ready = requests.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["type"].endswith(":shutting-down")
        # ... while the server still answers everything else, telling each client to reconnect.
        assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
        during = photo_upload(base)
        assert during.status_code == 200 and during.headers["Connection"] == "close"
        assert process.poll() is None
        # After the drain it stops listening (refused, not accepted and left unanswered) ...
        deadline = time.monotonic() + DRAIN + 15
        while True:
            try:
                requests.get(f"{base}/healthz", timeout=2)
            except requests.ConnectionError:
                break
            assert time.monotonic() < deadline, "the server never stopped listening"
            time.sleep(0.1)
        assert process.poll() is None  # ... while the held prediction is still running ...
        answer = held.result()
        assert answer.status_code == 200  # ... which it finishes,
        assert answer.json()["predictions"][0]["label"]
        assert process.wait(timeout=30) == 0  # and then it exits, cleanly (not killed at the timeout)
    text = log.read_text()
    assert len(re.findall(r"snakes-web: stopping: /readyz answers 503", text)) == 2  # each worker drained
    assert "shutting-down" not in text  # the 503s of /readyz are not logged one by one


@pytest.mark.slow
def test_a_reload_is_not_a_stop_readyz_stays_200_throughout(default_onnx: Path, tmp_path: Path) -> None:
    log = tmp_path / "gunicorn.log"
    env = environment(SNAKES_DRAIN_SECONDS=str(DRAIN))
    with running_gunicorn(default_onnx, log, environ=env) as (base, process):
        process.send_signal(signal.SIGHUP)
        statuses = []
        deadline = time.monotonic() + 30
        while len(re.findall(r"model loaded in worker", log.read_text())) < 4:  # two new workers are up
            assert time.monotonic() < deadline, "the reload did not bring up new workers"
            statuses.append(requests.get(f"{base}/readyz", timeout=10).status_code)
        statuses += [requests.get(f"{base}/readyz", timeout=10).status_code for _ in range(20)]
        assert set(statuses) == {200}, statuses
        assert "stopping: /readyz answers 503" not in log.read_text()
