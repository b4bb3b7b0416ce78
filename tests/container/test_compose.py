"""docker-compose.yml, the dev container and heroku.yml: valid, and the dev service really serves the
mounted project."""
from __future__ import annotations

import json
import os
import re
import shlex
import time
import uuid
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import free_port
from tests.container.conftest import PREFIX, ROOT, build_args, predict_photo, record, run, tool, wait_healthy

pytestmark = pytest.mark.container

PROJECT = f"{PREFIX}-{os.getpid()}"


def compose_config(*files: str) -> dict[str, Any]:
    """Return the Compose model as `docker compose config` normalises it."""
    args = [arg for name in files for arg in ("-f", name)]
    return json.loads(run(tool("docker"), "compose", *args, "config", "--format", "json").stdout)  # type: ignore[no-any-return]


def test_docker_compose_validates_the_files() -> None:
    run(tool("docker"), "compose", "config", "-q")
    run(tool("docker"), "compose", "-f", "docker-compose.yml", "-f", ".devcontainer/docker-compose.yml", "config", "-q")


def test_compose_has_dev_and_prod_on_loopback_ports_that_do_not_clash() -> None:
    services = compose_config("docker-compose.yml")["services"]
    assert set(services) == {"dev", "prod"}
    assert {name: service["build"]["target"] for name, service in services.items()} == {"dev": "dev", "prod": "prod"}
    published = [service["ports"][0]["published"] for service in services.values()]
    assert len(set(published)) == 2
    assert all(service["ports"][0]["host_ip"] == "127.0.0.1" for service in services.values())
    assert all(service["shm_size"] == str(2 * 1024**3) for service in services.values())
    mount = services["dev"]["volumes"][0]
    assert (mount["type"], mount["source"], mount["target"]) == ("bind", str(ROOT), "/app")
    assert ".:/app:delegated" in yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["dev"]["volumes"]


def test_the_dev_container_compose_file_overrides_only_the_command() -> None:
    plain = compose_config("docker-compose.yml")["services"]
    merged = compose_config("docker-compose.yml", ".devcontainer/docker-compose.yml")["services"]
    assert merged["dev"].pop("command") == ["sleep", "infinity"]
    plain["dev"].pop("command", None)
    assert merged == plain


#: The properties of devcontainer.json (the Dev Container specification's devContainer.base.schema.json
#: and its Docker Compose part) that this project uses or could, with their types; any other key fails.
DEVCONTAINER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["dockerComposeFile", "service", "workspaceFolder"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "dockerComposeFile": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "service": {"type": "string"},
        "runServices": {"type": "array", "items": {"type": "string"}},
        "workspaceFolder": {"type": "string"},
        "shutdownAction": {"enum": ["none", "stopCompose"]},
        "overrideCommand": {"type": "boolean"},
        "forwardPorts": {"type": "array", "items": {"oneOf": [
            {"type": "integer", "minimum": 0, "maximum": 65535},
            {"type": "string", "pattern": "^([a-z0-9-]+):(\\d{1,5})$"}]}},
        "portsAttributes": {"type": "object", "additionalProperties": {"type": "object", "properties": {
            "label": {"type": "string"},
            "onAutoForward": {"enum": ["notify", "openBrowser", "openBrowserOnce", "openPreview", "silent", "ignore"]}},
            "additionalProperties": False}},
        "remoteUser": {"type": "string"},
        "postCreateCommand": {"type": ["string", "array", "object"]},
        "customizations": {"type": "object", "properties": {"vscode": {
            "type": "object", "additionalProperties": False, "properties": {
                "settings": {"type": "object"},
                "extensions": {"type": "array",
                               "items": {"type": "string", "pattern": "^[a-z0-9-]+\\.[a-z0-9-]+$"}}}}}},
    },
}


def test_devcontainer_json_is_valid_and_matches_the_compose_dev_service() -> None:
    config = json.loads((ROOT / ".devcontainer" / "devcontainer.json").read_text())
    jsonschema.validate(config, DEVCONTAINER_SCHEMA)
    assert config["dockerComposeFile"] == ["../docker-compose.yml", "docker-compose.yml"]
    assert all((ROOT / ".devcontainer" / name).is_file() for name in config["dockerComposeFile"])
    assert config["service"] == "dev" and config["runServices"] == ["dev"]
    dev = compose_config("docker-compose.yml")["services"]["dev"]
    assert config["workspaceFolder"] == dev["volumes"][0]["target"] == "/app"
    vscode = config["customizations"]["vscode"]
    assert vscode["settings"]["python.defaultInterpreterPath"] == "/opt/venv/bin/python"
    assert {"ms-python.python", "ms-toolsai.jupyter"} <= set(vscode["extensions"])


def test_heroku_yml_builds_the_prod_stage_and_the_procfile_listens_on_port() -> None:
    manifest = yaml.safe_load((ROOT / "heroku.yml").read_text())
    assert manifest["build"]["docker"]["web"] == {"dockerfile": "Dockerfile", "target": "prod"}
    assert "run" not in manifest  # the image's CMD: gunicorn on $PORT
    assert re.fullmatch(r"web: gunicorn -c gunicorn\.conf\.py --bind 0\.0\.0\.0:\$PORT wsgi:app",
                        (ROOT / "Procfile").read_text().strip())
    assert (ROOT / "requirements.txt").read_text().split("\n#")[-1].strip().splitlines()[-1] == "."


def test_the_dev_service_serves_the_mounted_project(dev_image: str) -> None:
    """`podman-compose up dev`: the server inside answers, /app is this checkout, and training runs there."""
    compose = [tool("podman-compose"), "-p", PROJECT, "--podman-build-args", shlex.join(build_args())]
    port = free_port()
    marker = ROOT / f".container-test-{uuid.uuid4().hex}"
    try:
        run(*compose, "up", "-d", "--build", "dev", env={"DEV_PORT": str(port)}, timeout=1800)
        container = run(tool("podman"), "ps", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}",
                        "--filter", "label=com.docker.compose.service=dev").stdout.split()
        assert len(container) == 1
        base = f"http://127.0.0.1:{port}"
        record("dev_first_healthz_seconds", round(wait_healthy(base, container[0]), 2))
        assert predict_photo(base)["predictions"][0]["label"] == "not a snake"
        marker.write_text("written on the host\n")
        seen = run(tool("podman"), "exec", container[0], "cat", f"/app/{marker.name}").stdout
        assert seen == "written on the host\n"
        shm = run(tool("podman"), "exec", container[0], "df", "-k", "/dev/shm").stdout.split("\n")[1].split()
        assert int(shm[1]) >= 2 * 1024 * 1024 - 1024  # 2 GB, in KB
        _train_and_predict_inside(container[0])
        os.utime(ROOT / "snakes_web" / "web" / "health.py")  # an edit, as far as the reloader can tell
        assert _logs_until(container[0], "health.py modified"), "gunicorn --reload did not see the edit"
        wait_healthy(base, container[0])
    finally:
        marker.unlink(missing_ok=True)
        run(*compose, "down", "-t", "5", check=False, env={"DEV_PORT": str(port)}, timeout=300)
    left = run(tool("podman"), "ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}").stdout
    assert left.strip() == ""


def _train_and_predict_inside(container: str) -> None:
    """`snakes-web train` with data-loader workers (they need the 2 GB /dev/shm), then `predict`, in dev."""
    make = ("from pathlib import Path; from tests.training_data import make_colour_dataset; "
            "make_colour_dataset(Path('/tmp/photos'), per_class=8, classes=('red', 'blue'))")
    exec_ = (tool("podman"), "exec", "-w", "/app", container)
    run(*exec_, "/opt/venv/bin/python", "-c", make)
    started = time.monotonic()
    trained = run(*exec_, "snakes-web", "train", "/tmp/photos", "-o", "/tmp/out/model.pkl", "--onnx", "-q",
                  "--size", "32", "--epochs", "1", "--frozen-epochs", "1", "--min-per-class", "4",
                  "--num-workers", "2", timeout=900)
    record("dev_train_tiny_seconds", round(time.monotonic() - started, 1))
    assert re.search(r"^Validation accuracy: ", trained.stdout, flags=re.M), trained.stdout[-2000:]
    predicted = run(*exec_, "snakes-web", "predict", "/tmp/out/model.onnx", "/tmp/photos/red/0.jpg").stdout
    assert re.match(r"/tmp/photos/red/0\.jpg: (red|blue) \d", predicted), predicted


def _logs_until(container: str, text: str, seconds: float = 60) -> bool:
    """Wait until ``text`` shows in the container's log; return whether it did."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        logs = run(tool("podman"), "logs", container, check=False)
        if text in logs.stdout + logs.stderr:
            return True
        time.sleep(0.5)
    return False
