"""The prod image keeps feedback in /data: on a volume it outlives the container, read-only root and all."""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import free_port
from tests.container.conftest import DATA, PREFIX, predict_photo, run, tool, wait_healthy

pytestmark = pytest.mark.container


@pytest.fixture
def volume() -> Iterator[str]:
    """A named podman volume, removed afterwards."""
    name = f"{PREFIX}-feedback-{os.getpid()}"
    run(tool("podman"), "volume", "create", name)
    yield name
    run(tool("podman"), "volume", "rm", "-f", name, check=False)


def test_feedback_is_stored_on_the_data_volume_and_outlives_the_container(prod_image: str, container_name: str,
                                                                          volume: str) -> None:
    port = free_port()
    run(tool("podman"), "run", "-d", "--name", container_name, "--read-only", "--tmpfs", "/tmp",
        "-v", f"{volume}:/data", "-p", f"127.0.0.1:{port}:8000", prod_image)
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, container_name)
    receipt = predict_photo(base, "?feedback=1")["feedback_receipt"]
    stored = requests.post(f"{base}/api/v1/feedback", data={"receipt": receipt, "verdict": "confirm"},
                           files={"file": ("chelsea.jpg", (DATA / "chelsea.jpg").read_bytes(), "image/jpeg")},
                           timeout=30)
    assert stored.status_code == 201, stored.text
    run(tool("podman"), "rm", "-f", "-t", "5", container_name)
    listed = run(tool("podman"), "run", "--rm", "--read-only", "-v", f"{volume}:/data", prod_image,
                 "snakes-web", "feedback", "list")
    assert "1 entries" in listed.stdout and "sqlite:////data/snakes-web.db" in listed.stdout
    assert "not a snake" in listed.stdout and "confirmed" in listed.stdout
