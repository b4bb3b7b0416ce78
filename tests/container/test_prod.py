"""The prod image serves: on a loopback port, read-only, within a CPU and memory limit; and the
Procfile serves the same way from a plain `pip install -r requirements.txt` (Heroku without Docker)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port
from tests.container.conftest import ROOT, build_args, predict_photo, record, run, tool, wait_healthy

pytestmark = pytest.mark.container


def test_prod_serves_a_photo_on_port_8000_read_only_within_limits(prod_image: str, container_name: str) -> None:
    port = free_port()
    # Read-only root with a tmpfs /tmp (the metrics folder), one core and 512 MB, as a small instance.
    run(tool("podman"), "run", "-d", "--name", container_name, "--read-only", "--tmpfs", "/tmp",
        "--cpus", "1", "--memory", "512m", "-p", f"127.0.0.1:{port}:8000", prod_image)
    base = f"http://127.0.0.1:{port}"
    record("prod_first_healthz_seconds", round(wait_healthy(base, container_name), 2))
    answer = predict_photo(base)
    assert answer["predictions"][0]["label"] == "not a snake"
    assert answer["predictions"][0]["probability"] > 0.9
    assert answer["model"]["backend"] == "onnx" and answer["model"]["labels"] == 18
    assert requests.get(f"{base}/readyz", timeout=10).status_code == 200
    logs = run(tool("podman"), "logs", container_name)
    log = logs.stderr + logs.stdout
    # The sizing read the container's cgroup limits: one core, so one worker.
    assert re.search(r"onnx backend, 1 worker × 1 inference thread each \(1 cores, \d+ MB", log), log[-2000:]
    assert int(re.search(r"\(1 cores, (\d+) MB", log).group(1)) <= 512  # type: ignore[union-attr]


def test_the_image_healthcheck_passes_once_the_server_answers(prod_image: str, container_name: str) -> None:
    port = free_port()
    run(tool("podman"), "run", "-d", "--name", container_name, "-e", "PORT=8123",
        "-p", f"127.0.0.1:{port}:8123", prod_image)
    wait_healthy(f"http://127.0.0.1:{port}", container_name)  # $PORT moved the server to 8123
    assert run(tool("podman"), "healthcheck", "run", container_name, check=False).returncode == 0
    run(tool("podman"), "exec", container_name, "sh", "-c", "kill -STOP -1")  # every worker stops answering
    assert run(tool("podman"), "healthcheck", "run", container_name, check=False, timeout=60).returncode != 0


def test_the_procfile_serves_from_a_requirements_txt_install(prod_image: str, container_name: str,
                                                             tmp_path: Path) -> None:
    """Heroku's Python buildpack: a fresh Python, `pip install -r requirements.txt`, then the Procfile."""
    files = run("git", "ls-files", "--cached", "--others", "--exclude-standard").stdout.split()
    app = tmp_path / "app"
    for name in files:
        if (ROOT / name).is_file():
            (app / name).parent.mkdir(parents=True, exist_ok=True)
            (app / name).write_bytes((ROOT / name).read_bytes())
    (app / "models").mkdir(exist_ok=True)  # as `git add -f models/export.onnx` on a deploy branch
    run(tool("podman"), "create", "--name", container_name, prod_image)
    run(tool("podman"), "cp", f"{container_name}:/app/models/export.onnx", str(app / "models" / "export.onnx"))
    run(tool("podman"), "rm", container_name)
    process = (ROOT / "Procfile").read_text().strip().removeprefix("web:").strip()
    script = ("python -m venv /tmp/venv && . /tmp/venv/bin/activate && cd /build/app "
              "&& pip install -q -r requirements.txt && pip list --format freeze > /tmp/installed "
              f"&& du -sm /tmp/venv | cut -f1 > /tmp/venv-mb && exec sh -c {shlex.quote(process)}")
    port = free_port()
    run(tool("podman"), "run", "-d", "--name", container_name, "-v", f"{tmp_path}:/build", *_volume_flags(build_args()),
        "-e", "PORT=8000", "-e", "SNAKES_MODEL=models/export.onnx", "-p", f"127.0.0.1:{port}:8000",
        "python:3.11-slim", "sh", "-c", script)
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, container_name, seconds=600)
    assert predict_photo(base)["predictions"][0]["label"] == "not a snake"
    installed = run(tool("podman"), "exec", container_name, "cat", "/tmp/installed").stdout.lower()
    assert "onnxruntime==" in installed and "snakes-web==" in installed
    assert not re.search(r"^(torch|torchvision|fastai|nvidia-|triton)", installed, flags=re.M), installed
    venv_mb = int(run(tool("podman"), "exec", container_name, "cat", "/tmp/venv-mb").stdout)
    record("heroku_slug_venv_mb", venv_mb)
    assert venv_mb < 500  # Heroku's slug limit is 500 MB compressed: uncompressed, it is far below


def _volume_flags(args: list[str]) -> list[str]:
    """Return the ``-v SRC:DST`` pairs of the build flags (the local package sources, here)."""
    pairs: list[str] = []
    for flag, value in zip(args, args[1:], strict=False):
        if flag in ("-v", "--volume"):
            pairs += ["-v", value]
    return pairs

