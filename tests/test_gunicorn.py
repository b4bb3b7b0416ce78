"""End to end: real gunicorn on loopback, two workers, each loading the model once after the fork."""
from __future__ import annotations

import contextlib
import os
import re
import runpy
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import requests

from snakes_web.serving.semaphores import SharedSemaphores
from tests.conftest import DATA, free_port, image_bytes

ROOT = Path(__file__).parent.parent


#: The metrics port of each server these helpers started, by its app port.
METRICS_PORTS: dict[int, int] = {}


def metrics_base(base: str) -> str:
    """Return the base URL of the metrics port of the server at ``base`` (started by ``start_gunicorn``)."""
    return f"http://127.0.0.1:{METRICS_PORTS[int(base.rsplit(':', 1)[1])]}"


def start_gunicorn(model: Path, log: Path, port: int, workers: int = 2,
                   environ: Mapping[str, str] | None = None, app: str = "wsgi:app") -> subprocess.Popen[bytes]:
    """Start gunicorn with the project's config on 127.0.0.1:port (in ``environ``, default ours)."""
    env = {**(os.environ if environ is None else environ), "SNAKES_MODEL": str(model)}
    env.pop("PORT", None)
    env.pop("WEB_CONCURRENCY", None)
    env.setdefault("SNAKES_DRAIN_SECONDS", "0")  # faster: no balancer to wait for when a test stops it (SIGTERM)
    env.setdefault("SNAKES_METRICS_PORT", str(free_port()))  # the master's /metrics, one port per server
    METRICS_PORTS[port] = int(env["SNAKES_METRICS_PORT"])
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), app], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


@contextlib.contextmanager
def running_gunicorn(model: Path, log: Path, workers: int = 2, environ: Mapping[str, str] | None = None,
                     app: str = "wsgi:app") -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run gunicorn on a free loopback port until the block ends; yield its base URL once it is ready."""
    port = free_port()
    process = start_gunicorn(model, log, port, workers=workers, environ=environ, app=app)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process, log, workers=workers)
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_ready(base: str, process: subprocess.Popen[bytes], log: Path, workers: int,
               seconds: float = 120) -> None:
    """Wait until every worker has logged its model load and /readyz answers."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "gunicorn exited"
        try:
            loaded = len(re.findall(r"model loaded in worker", log.read_text()))
            if loaded >= workers and requests.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise AssertionError("gunicorn did not become ready")


@pytest.fixture(scope="module")
def server(default_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, int]]:
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    with running_gunicorn(default_model_path, log) as (base, process):
        yield base, log, process.pid


def test_a_photo_is_classified_over_http(server: tuple[str, Path, int]) -> None:
    base, _, _ = server
    with (DATA / "chelsea.jpg").open("rb") as photo:
        response = requests.post(f"{base}/api/v1/predict", files={"file": photo}, timeout=60)
    assert response.status_code == 200
    body = response.json()
    assert body["predictions"][0]["label"] == "not a snake" and len(body["predictions"]) == 18


def test_the_page_classifies_a_posted_photo(server: tuple[str, Path, int]) -> None:
    base, _, _ = server
    with (DATA / "coffee.jpg").open("rb") as photo:
        response = requests.post(base + "/", files={"file": ("coffee.jpg", photo, "image/jpeg")}, timeout=60)
    assert response.status_code == 200 and "text/html" in response.headers["Content-Type"]
    assert "Not a snake" in response.text and response.text.count("<meter") == 18


def test_the_access_log_carries_the_request_id(server: tuple[str, Path, int]) -> None:
    base, log, _ = server
    response = requests.post(f"{base}/api/v1/predict", files={"file": ("x.txt", b"plain text")}, timeout=30)
    assert response.status_code == 415
    request_id = response.headers["X-Request-ID"]
    deadline = time.monotonic() + 10  # gunicorn writes the access line just after the response
    while f"rid={request_id}" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"rid={request_id}" in log.read_text()


def test_each_worker_loaded_the_model_once_and_the_master_never(server: tuple[str, Path, int]) -> None:
    base, log, master = server
    for _ in range(6):  # traffic to both workers must not load anything again
        assert requests.get(f"{base}/api/v1/model", timeout=30).status_code == 200
    pids = [int(pid) for pid in re.findall(r"model loaded in worker (\d+)", log.read_text())]
    assert len(pids) == 2 and len(set(pids)) == 2 and master not in pids


def test_progress_bars_stay_out_of_the_log(server: tuple[str, Path, int]) -> None:
    base, log, _ = server
    with (DATA / "coffee.jpg").open("rb") as photo:
        requests.post(f"{base}/api/v1/predict", files={"file": photo}, timeout=60)
    text = log.read_text()
    assert "%|" not in text and "Warning" not in text and "Traceback" not in text


def test_a_missing_model_stops_start_up_with_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "export.pkl"
    log = tmp_path / "log"
    process = start_gunicorn(missing, log, free_port())
    assert process.wait(timeout=60) != 0
    text = log.read_text()
    assert "Traceback" not in text
    [line] = [line for line in text.splitlines() if "cannot start" in line]
    assert str(missing) in line and "SNAKES_MODEL" in line


def test_an_unreadable_model_stops_start_up_with_one_clear_line(tmp_path: Path) -> None:
    broken = tmp_path / "export.pkl"
    broken.write_bytes(b"\x80\x04 definitely not a learner")
    log = tmp_path / "log"
    process = start_gunicorn(broken, log, free_port(), workers=1)
    assert process.wait(timeout=120) != 0
    text = log.read_text()
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if "cannot start" in line]
    assert lines and all(str(broken) in line and "SNAKES_MODEL" in line for line in lines)


def test_a_bad_setting_stops_start_up_with_one_clear_line(tmp_path: Path) -> None:
    log = tmp_path / "log"
    env = {**os.environ, "SNAKES_WORKERS": "lots"}
    with log.open("wb") as out:
        code = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind",
                               f"127.0.0.1:{free_port()}", "wsgi:app"], cwd=ROOT, env=env, stdout=out,
                              stderr=subprocess.STDOUT, timeout=60).returncode
    text = log.read_text()
    assert code != 0 and "Traceback" not in text
    [line] = [line for line in text.splitlines() if "cannot start" in line]
    assert "SNAKES_WORKERS='lots'" in line


def test_a_short_secret_key_stops_start_up_with_one_clear_line_that_does_not_repeat_it(tmp_path: Path) -> None:
    log = tmp_path / "log"
    model = tmp_path / "fake.onnx"
    model.write_bytes(b"")  # there, so that only the key can stop start-up before a worker is forked
    env = {**os.environ, "SNAKES_SECRET_KEY": "hunter2-is-too-short", "SNAKES_MODEL": str(model)}
    with log.open("wb") as out:
        code = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind",
                               f"127.0.0.1:{free_port()}", "wsgi:app"], cwd=ROOT, env=env, stdout=out,
                              stderr=subprocess.STDOUT, timeout=60).returncode
    text = log.read_text()
    assert code != 0 and "Traceback" not in text and "hunter2" not in text
    [line] = [line for line in text.splitlines() if "cannot start" in line]
    assert "SNAKES_SECRET_KEY" in line and "secrets.token_urlsafe(32)" in line


def test_a_semaphore_set_removed_under_the_server_is_made_anew_and_serving_resumes(tmp_path: Path) -> None:
    """systemd's RemoveIPC (or an ipcrm) deletes the gate's set: 503s that say so, never "busy", then recovery."""
    model = tmp_path / "fake.onnx"
    model.write_bytes(b"")  # gunicorn.conf.py checks the file exists; the fake colour model answers
    log = tmp_path / "gunicorn.log"
    with running_gunicorn(model, log, workers=2, app="tests.feedback_app:create()") as (base, _):
        [semid] = re.findall(r"semaphore set (\d+)", log.read_text())
        subprocess.run(["ipcrm", "-s", semid], check=True)
        answers: list[requests.Response] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            answers += [requests.get(f"{base}/readyz", timeout=30),
                        requests.post(f"{base}/api/v1/predict", files={"file": ("r.png", image_bytes())}, timeout=30)]
            if [a.status_code for a in answers[-2:]] == [200, 200]:  # only a worker on a new set can say 200
                break
            time.sleep(0.1)
        text = log.read_text()
        assert [a.status_code for a in answers[-2:]] == [200, 200], text
        refused = [a.json() for a in answers if a.status_code != 200]
        assert all(r["status"] == 503 and r["type"].endswith(":gate-lost") for r in refused)
        [new] = re.findall(r"made semaphore set (\d+)", text)
        assert new != semid and SharedSemaphores.exists(int(new))
        named = [line for line in text.splitlines() if f"semaphore set {semid} was removed" in line]
        assert 1 <= len(named) <= 3  # once by the master, at most once by each worker: not once per request
        assert "Traceback" not in text
    assert not SharedSemaphores.exists(int(new))  # the master removed the set it made, on exit


def test_the_config_follows_port_and_keeps_threads_within_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "5123")
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    monkeypatch.setenv("SNAKES_TORCH_THREADS", "0")  # 0: the config fills it in; restored after
    monkeypatch.delenv("SNAKES_BIND", raising=False)
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert conf["bind"] == ["0.0.0.0:5123"] and conf["workers"] == 2 and conf["preload_app"] is False
    cores = len(os.sched_getaffinity(0))
    assert conf["workers"] * int(os.environ["SNAKES_TORCH_THREADS"]) <= max(cores, conf["workers"])


def test_without_port_it_listens_on_loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAKES_TORCH_THREADS", "0")
    for name in ("PORT", "SNAKES_BIND"):
        monkeypatch.delenv(name, raising=False)
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["bind"] == ["127.0.0.1:8000"]


def test_the_procfile_runs_gunicorn_with_the_config_on_port() -> None:
    line = (ROOT / "Procfile").read_text().strip()
    assert line.startswith("web: gunicorn -c gunicorn.conf.py") and "--bind 0.0.0.0:$PORT" in line
    assert line.endswith("wsgi:app")
