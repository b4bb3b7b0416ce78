"""Slow and hostile networks, for real: gunicorn on loopback, raw sockets, a dripping image server.

What docs/serving.md promises: waiting (a slow upload, a slow URL) never
holds the model; a request that arrives too slowly is cut with a 408; overload is a fast 503 with
Retry-After; no request waits while an inference slot is free in any worker; HUP and a killed
worker lose no more than the killed worker's own requests. Outcomes are asserted (statuses, that
something was answered at all), with time limits generous enough for a busy machine; the timings
themselves are in the bench.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from snakes_web.serving.semaphores import SharedSemaphores
from tests.conftest import DATA, ImageServer, Route, image_bytes
from tests.held_app import MAGENTA
from tests.test_gunicorn import metrics_base, running_gunicorn

pytestmark = pytest.mark.slow
HELD_APP = "tests.held_app:create()"

#: The server's environment for these tests: a short grace so that slow requests are cut in seconds.
FAST_LIMITS = {"SNAKES_UPLOAD_GRACE": "1", "SNAKES_UPLOAD_MIN_RATE": "10240", "SNAKES_UPLOAD_TIMEOUT": "20",
               "SNAKES_ALLOW_PRIVATE_URLS": "true", "SNAKES_FETCH_TIMEOUT": "1"}


def environment(**extra: str) -> dict[str, str]:
    """Return this process's environment with the test limits and ``extra`` on top."""
    env = {**os.environ, **FAST_LIMITS, **extra}
    for name in ("SNAKES_WORKERS", "WEB_CONCURRENCY", "SNAKES_THREADS", "SNAKES_QUEUE_LENGTH"):
        if name not in extra:
            env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def onnx_server(default_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    log = tmp_path_factory.mktemp("slow-clients") / "gunicorn.log"
    with running_gunicorn(default_onnx, log, environ=environment()) as (base, process):
        yield {"base": base, "port": int(base.rsplit(":", 1)[1]), "log": log, "process": process}


def photo_upload(base: str, path: str = "/api/v1/predict", timeout: float = 30) -> requests.Response:
    """Post the cat photo as a normal, fast client would."""
    with (DATA / "chelsea.jpg").open("rb") as photo:
        return requests.post(base + path, files={"file": ("chelsea.jpg", photo, "image/jpeg")}, timeout=timeout)


def slow_upload(port: int, path: str = "/api/v1/predict", headers_only: bool = False,
                limit: float = 60) -> tuple[float, bytes]:
    """Send a request a byte a second (headers at once unless ``headers_only``); return how long and the answer."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
            f"Content-Length: 200000\r\n\r\n").encode()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
        to_drip = head if headers_only else b"--zz\r\n" + b"a" * 1000
        if not headers_only:
            sock.sendall(head)
        answer = b""
        for byte in to_drip:
            if time.monotonic() - started > limit:
                break
            with contextlib.suppress(OSError):  # the server shut its side: read what it said
                sock.send(bytes([byte]))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            answer += chunk
            if not chunk or answer.count(b"\r\n\r\n") and _complete(answer):
                break
        return time.monotonic() - started, answer


def _complete(answer: bytes) -> bool:
    """Tell whether ``answer`` holds a whole HTTP response (headers and Content-Length bytes)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    return length is not None and len(body) >= int(length.group(1))


def status_of(answer: bytes) -> int:
    """Return the status code of a raw HTTP answer (0 when there was none)."""
    return int(answer[9:12]) if answer.startswith(b"HTTP/1.") else 0


def body_of(answer: bytes) -> bytes:
    """Return the body of a raw HTTP answer."""
    return answer.partition(b"\r\n\r\n")[2]


# --- slow uploads are cut with a 408 ------------------------------------------------------------

def test_an_upload_that_trickles_is_cut_with_a_408_problem(onnx_server: dict[str, Any]) -> None:
    took, answer = slow_upload(onnx_server["port"])
    assert status_of(answer) == 408, answer[:200]
    problem = json.loads(body_of(answer))
    assert problem["status"] == 408 and problem["type"].endswith("request-timeout") and problem["request_id"]
    assert b"application/problem+json" in answer.split(b"\r\n\r\n")[0]
    assert took < 15  # grace 1 s at 10 KB/s: cut within seconds, not at the 20 s total


def test_an_upload_to_the_page_that_trickles_gets_the_page_with_a_408(onnx_server: dict[str, Any]) -> None:
    _, answer = slow_upload(onnx_server["port"], path="/")
    assert status_of(answer) == 408, answer[:200]
    assert b"text/html" in answer.split(b"\r\n\r\n")[0] and b"too slowly" in body_of(answer)


def test_headers_that_trickle_get_a_408_problem(onnx_server: dict[str, Any]) -> None:
    took, answer = slow_upload(onnx_server["port"], headers_only=True)
    assert status_of(answer) == 408, answer[:200]
    assert json.loads(body_of(answer))["status"] == 408
    assert took < 15


def test_the_worker_that_cut_a_slow_upload_serves_on(onnx_server: dict[str, Any]) -> None:
    for _ in range(3):
        assert status_of(slow_upload(onnx_server["port"])[1]) == 408
    assert photo_upload(onnx_server["base"]).json()["predictions"][0]["label"] == "not a snake"
    text = onnx_server["log"].read_text()
    assert "Traceback" not in text and len(re.findall(r"Booting worker", text)) == 2  # nobody restarted


def test_clients_that_never_close_their_side_do_not_hold_up_the_others(onnx_server: dict[str, Any]) -> None:
    """gthread lingers up to 2 s for each client to close after the answer, on its main loop; ours does it on
    the connection's own thread, or 60 such clients would stall both workers' accepting for a minute."""
    base, port = onnx_server["base"], onnx_server["port"]
    hogs = []
    try:
        for _ in range(60):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            hogs.append(sock)  # answered, then never closed by us
        started = time.monotonic()
        for _ in range(10):
            assert requests.get(f"{base}/healthz", timeout=30).status_code == 200
        assert time.monotonic() - started < 10  # with the main loop lingering: over 30 s
    finally:
        for sock in hogs:
            sock.close()


# --- waiting never holds the model ---------------------------------------------------------------

def test_normal_uploads_are_answered_while_32_slow_uploads_and_32_slow_urls_are_held(
        default_onnx: Path, tmp_path: Path, image_server: ImageServer) -> None:
    """The issue's target: 32 + 32 slow clients held, 20 normal uploads all answered; the slow ones end 408 / 504."""
    image_server.routes["/drip.jpg"] = Route(image_bytes("JPEG", (300, 300)), headers={"Content-Type": "image/jpeg"},
                                             drip=1.0)
    env = environment(SNAKES_UPLOAD_GRACE="8", SNAKES_FETCH_TIMEOUT="3")
    with running_gunicorn(default_onnx, tmp_path / "gunicorn.log", environ=env) as (base, _), \
            ThreadPoolExecutor(max_workers=64) as pool:
        port = int(base.rsplit(":", 1)[1])
        uploads = [pool.submit(slow_upload, port) for _ in range(32)]
        urls = [pool.submit(requests.post, f"{base}/api/v1/predict", json={"url": image_server.url("/drip.jpg")},
                            timeout=60) for _ in range(32)]
        deadline = time.monotonic() + 20
        while image_server.hits.count("/drip.jpg") < 32:  # every slow URL is being fetched
            assert time.monotonic() < deadline, f"only {image_server.hits.count('/drip.jpg')} slow URLs started"
            time.sleep(0.05)
        normal = []
        for _ in range(20):
            started = time.monotonic()
            response = photo_upload(base, timeout=30)
            normal.append((response.status_code, time.monotonic() - started))
        assert not any(future.done() for future in uploads)  # still held while the normal ones were served
        assert [status for status, _ in normal] == [200] * 20
        assert max(seconds for _, seconds in normal) < 5  # generous: the bench measures p99 (< 1 s)
        assert Counter(status_of(future.result()[1]) for future in uploads) == {408: 32}
        assert Counter(future.result().status_code for future in urls) == {504: 32}


def test_a_busy_slot_in_one_worker_never_holds_up_a_request_while_another_slot_is_free(
        default_onnx: Path, tmp_path: Path) -> None:
    """Fairness: a held prediction takes one of two slots; every other request, in either worker, uses the other."""
    env = environment(SNAKES_TEST_HOLD_SECONDS="6")
    with running_gunicorn(default_onnx, tmp_path / "gunicorn.log", environ=env, app=HELD_APP) as (base, _), \
            ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(requests.post, f"{base}/api/v1/predict", timeout=60,
                           files={"file": ("m.png", image_bytes("PNG", colour=MAGENTA))})
        time.sleep(1)  # the magenta prediction now sleeps in one slot of one worker
        started = time.monotonic()
        for _ in range(12):  # about half land on the holding worker: each would wait for it with per-worker slots
            assert photo_upload(base).status_code == 200
        assert time.monotonic() - started < 5 and not held.done()
        assert held.result().status_code == 200


# --- overload is a fast 503 ----------------------------------------------------------------------

def test_when_every_slot_is_held_a_request_gets_503_with_retry_after_when_its_wait_runs_out(
        default_onnx: Path, tmp_path: Path) -> None:
    env = environment(SNAKES_TEST_HOLD_SECONDS="6", SNAKES_QUEUE_TIMEOUT="1")
    with running_gunicorn(default_onnx, tmp_path / "gunicorn.log", environ=env, app=HELD_APP) as (base, _), \
            ThreadPoolExecutor(max_workers=2) as pool:
        held = [pool.submit(requests.post, f"{base}/api/v1/predict", timeout=60,
                            files={"file": ("m.png", image_bytes("PNG", colour=MAGENTA))}) for _ in range(2)]
        time.sleep(1.5)  # both slots are held now
        started = time.monotonic()
        refused = photo_upload(base)
        assert refused.status_code == 503 and refused.headers["Retry-After"].isdigit()
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert refused.json()["type"].endswith("overloaded")
        assert time.monotonic() - started < 4  # the 1 s queue timeout, not the 6 s hold
        page = photo_upload(base, path="/")
        assert page.status_code == 503 and "text/html" in page.headers["Content-Type"] and "busy" in page.text
        assert [future.result().status_code for future in held] == [200, 200]
        metrics = requests.get(f"{metrics_base(base)}/metrics", timeout=10).text
        assert re.search(r'snakes_overload_refusals_total\{reason="timeout"\} 2\.0', metrics), metrics


def test_64_clients_in_flight_get_answers_or_fast_503s_and_the_server_is_healthy_a_second_later(
        onnx_server: dict[str, Any]) -> None:
    base = onnx_server["base"]
    data = (DATA / "chelsea.jpg").read_bytes()
    seen: Counter[int] = Counter()
    lock = threading.Lock()

    def client() -> None:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            response = requests.post(f"{base}/api/v1/predict", files={"file": ("c.jpg", data)}, timeout=60)
            with lock:
                seen[response.status_code] += 1
            if response.status_code == 503:
                assert response.headers["Retry-After"].isdigit()
                assert response.json()["type"].endswith("overloaded")

    with ThreadPoolExecutor(max_workers=64) as pool:
        for future in [pool.submit(client) for _ in range(64)]:
            future.result()
    assert set(seen) <= {200, 503} and seen[200] > 0 and seen[503] > 0, seen
    time.sleep(1)
    assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
    assert photo_upload(base, timeout=10).status_code == 200
    metrics = requests.get(f"{metrics_base(base)}/metrics", timeout=10).text
    refused = float(re.search(r'snakes_overload_refusals_total\{reason="queue-full"\} (\S+)', metrics).group(1))  # type: ignore[union-attr]
    assert refused >= seen[503]  # every 503 counted (earlier tests may have added their own)
    text = onnx_server["log"].read_text()
    assert text.count("overloaded: answering 503") <= 2  # one line per burst per worker, not per request
    assert "503 overloaded (request" not in text


# --- reloads and crashes -------------------------------------------------------------------------

def keep_uploading(base: str, stop: threading.Event, outcomes: list[str]) -> None:
    """Upload the photo again and again until ``stop``; note each outcome."""
    while not stop.is_set():
        try:
            outcomes.append(str(photo_upload(base, timeout=30).status_code))
        except requests.RequestException as exc:
            outcomes.append(type(exc).__name__)


def test_a_graceful_reload_under_load_loses_no_request(default_onnx: Path, tmp_path: Path) -> None:
    log = tmp_path / "gunicorn.log"
    with running_gunicorn(default_onnx, log, environ=environment()) as (base, process):
        stop, outcomes = threading.Event(), []  # type: ignore[var-annotated]
        clients = [threading.Thread(target=keep_uploading, args=(base, stop, outcomes)) for _ in range(4)]
        for thread in clients:
            thread.start()
        time.sleep(1)
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while len(re.findall(r"model loaded in worker", log.read_text())) < 4:  # two new workers are up
            assert time.monotonic() < deadline, "the reload did not bring up new workers"
            time.sleep(0.2)
        time.sleep(1)
        stop.set()
        for thread in clients:
            thread.join()
    assert outcomes and set(outcomes) == {"200"}, Counter(outcomes)
    [semid] = re.findall(r"semaphore set (\d+)", log.read_text())  # made once, at the first start ...
    assert SharedSemaphores.exists(int(semid)) is False  # ... and removed on exit, even after the reload


def test_a_killed_worker_loses_only_its_own_requests_and_gives_its_slots_back(
        default_onnx: Path, tmp_path: Path) -> None:
    """SIGKILL a worker while it holds a slot: it is replaced, and both slots work again (the kernel undid its hold)."""
    log = tmp_path / "gunicorn.log"
    env = environment(SNAKES_TEST_HOLD_SECONDS="3", SNAKES_QUEUE_TIMEOUT="1")
    with running_gunicorn(default_onnx, log, environ=env, app=HELD_APP) as (base, _), \
            ThreadPoolExecutor(max_workers=2) as pool:
        doomed = pool.submit(requests.post, f"{base}/api/v1/predict", timeout=60,
                             files={"file": ("m.png", image_bytes("PNG", colour=MAGENTA))})
        deadline = time.monotonic() + 20
        while not (holding := re.findall(r"holding a slot in worker (\d+)", log.read_text())):
            assert time.monotonic() < deadline, "the held prediction never started"
            time.sleep(0.05)
        os.kill(int(holding[0]), signal.SIGKILL)
        with pytest.raises(requests.ConnectionError):
            doomed.result()  # the killed worker's own request is lost ...
        deadline = time.monotonic() + 30
        while len(re.findall(r"model loaded in worker", log.read_text())) < 3:  # ... and it is replaced
            assert time.monotonic() < deadline, "the killed worker was not replaced"
            time.sleep(0.2)
        held = [pool.submit(requests.post, f"{base}/api/v1/predict", timeout=60,
                            files={"file": ("m.png", image_bytes("PNG", colour=MAGENTA))}) for _ in range(2)]
        # Both slots free again: two held predictions run at once, none waits past the 1 s queue timeout.
        assert [future.result().status_code for future in held] == [200, 200]
        assert photo_upload(base).status_code == 200

