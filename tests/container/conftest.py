"""The container suite's helpers: podman, the build flags, images built once a session, timings.

Builds use ``PODMAN_BUILD_FLAGS`` (``make test-container`` fills it from the kit's
/etc/ctrkit/podman-build-flags) and ``TORCH_INDEX_URL`` (the Makefile variable: empty means the
configured pip index, as for ``make run``). A missing tool is a failure, never a skip.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).parent.parent.parent
DATA = ROOT / "tests" / "data"
#: Where the container kit (../shared/container/setup-podman.sh) installs podman-compose, docker compose
#: and hadolint; looked in after $PATH.
KIT_BIN = Path("/opt/ctrkit/venv/bin")
TIMINGS = ROOT / "test-artifacts" / "container-timings.json"
PREFIX = "snakes-web-test"


def tool(name: str) -> str:
    """Return the path of a command-line tool, or fail saying how to get it."""
    found = shutil.which(name) or (str(KIT_BIN / name) if (KIT_BIN / name).exists() else None)
    if not found:
        pytest.fail(f"{name} not found: run ../shared/container/setup-podman.sh (see docs/deployment.md)")
    return found


def run(*args: str, timeout: float = 600, check: bool = True, env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output; fail with the output's tail when ``check`` and it fails."""
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        pytest.fail(f"{shlex.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def build_args() -> list[str]:
    """Return the flags every build of the suite gets (podman's and compose's alike, so caches match)."""
    return [*shlex.split(os.environ.get("PODMAN_BUILD_FLAGS", "")),
            "--build-arg", f"TORCH_INDEX_URL={os.environ.get('TORCH_INDEX_URL', '')}"]


def record(name: str, value: float | int | str) -> None:
    """Keep a measured number in test-artifacts/container-timings.json."""
    TIMINGS.parent.mkdir(exist_ok=True)
    numbers = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    numbers[name] = value
    TIMINGS.write_text(json.dumps(numbers, indent=2, sort_keys=True) + "\n")


def build(target: str) -> str:
    """Build one stage of the Dockerfile, tagged snakes-web-test:<target>; return the tag."""
    tag = f"{PREFIX}:{target}"
    started = time.monotonic()
    run(tool("podman"), "build", "--pull=never", *build_args(), "--target", target, "-t", tag, ".", timeout=1800)
    record(f"build_{target}_seconds", round(time.monotonic() - started, 1))
    return tag


def wait_healthy(base: str, container: str, seconds: float = 120) -> float:
    """Wait until ``base``/healthz answers 200; return how long it took. Fail with the log if it never does."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                return time.monotonic() - started
        except requests.ConnectionError:
            pass
        state = run(tool("podman"), "inspect", "--format", "{{.State.Running}}", container, check=False)
        if state.stdout.strip() != "true":
            break
        time.sleep(0.2)
    logs = run(tool("podman"), "logs", container, check=False)
    pytest.fail(f"{container} never answered /healthz:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")


def predict_photo(base: str, query: str = "") -> dict:  # type: ignore[type-arg]
    """POST the cat photo to the API (``query``: e.g. ``?feedback=1``) and return its JSON answer."""
    with (DATA / "chelsea.jpg").open("rb") as photo:
        response = requests.post(f"{base}/api/v1/predict{query}",
                                 files={"file": ("chelsea.jpg", photo, "image/jpeg")}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def prod_image() -> str:
    """The prod stage (builds base on the way)."""
    return build("prod")


@pytest.fixture(scope="session")
def dev_image(prod_image: str) -> str:
    """The dev stage (after prod, so base comes from the cache)."""
    return build("dev")


@pytest.fixture
def container_name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A name for a container this test starts; the container is removed afterwards, whatever happens."""
    name = f"{PREFIX}-{request.node.name.replace('_', '-')[:40]}-{os.getpid()}"
    yield name
    run(tool("podman"), "rm", "-f", "-t", "5", name, check=False)
