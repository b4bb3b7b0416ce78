"""The Dockerfile: hadolint-clean, and its prod image small, non-root and without torch."""
from __future__ import annotations

import pytest

from tests.container.conftest import record, run, tool

pytestmark = pytest.mark.container

#: The issue's target for the prod image, in MB as podman and docker print sizes (10^6 bytes): 350 until the
#: feedback database (issue 18) added SQLAlchemy, psycopg with its libpq, Alembic: 371 MB measured then.
PROD_MAX_MB = 380


def test_hadolint_finds_no_error_in_the_dockerfile() -> None:
    run(tool("hadolint"), "--failure-threshold", "error", "Dockerfile")


def test_the_prod_image_is_at_most_380_mb(prod_image: str) -> None:
    size = int(run(tool("podman"), "image", "inspect", prod_image, "--format", "{{.Size}}").stdout)
    record("prod_image_mb", round(size / 1e6))
    assert size <= PROD_MAX_MB * 1_000_000, f"prod image is {size / 1e6:.0f} MB"


def test_the_prod_image_runs_as_a_non_root_user(prod_image: str) -> None:
    user = run(tool("podman"), "image", "inspect", prod_image, "--format", "{{.Config.User}}").stdout.strip()
    assert user == "10001:10001"
    uid = run(tool("podman"), "run", "--rm", "--no-healthcheck", prod_image, "id", "-u").stdout.strip()
    assert uid.isdigit() and int(uid) != 0


def test_the_prod_image_has_no_torch_and_no_fastai(prod_image: str) -> None:
    for module in ("torch", "torchvision", "fastai"):
        result = run(tool("podman"), "run", "--rm", "--no-healthcheck", prod_image, "python", "-c", f"import {module}",
                     check=False)
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, module
    installed = set(run(tool("podman"), "run", "--rm", "--no-healthcheck", prod_image, "python", "-c", LIST)
                    .stdout.split())
    assert {"snakes-web", "onnxruntime", "gunicorn", "flask", "pillow", "numpy"} <= installed
    assert not {name for name in installed if name.startswith(("torch", "fastai", "nvidia", "triton"))}
    assert installed.isdisjoint({"onnx", "onnxscript", "pip", "setuptools"})


#: Prints the distributions installed in the image's Python (its venv), one lower-case name a line.
LIST = ("import importlib.metadata as m; "
        "print('\\n'.join(sorted(d.metadata['Name'].lower().replace('_', '-') for d in m.distributions())))")


def test_the_prod_image_has_a_healthcheck_on_healthz_and_no_build_tools(prod_image: str) -> None:
    healthcheck = run(tool("podman"), "image", "inspect", prod_image, "--format", "{{json .Config.Healthcheck}}").stdout
    assert "/healthz" in healthcheck and "PORT" in healthcheck
    assert run(tool("podman"), "run", "--rm", "--no-healthcheck", prod_image, "sh", "-c", "command -v gcc",
               check=False).returncode != 0


def test_the_dev_image_has_the_training_stack_git_and_jupyter(dev_image: str) -> None:
    record("dev_image_mb", round(int(run(tool("podman"), "image", "inspect", dev_image, "--format", "{{.Size}}")
                                     .stdout) / 1e6))
    script = ("import fastai, torch, torchvision, ipykernel, pytest, onnx; import snakes_web, pathlib; "
              "print(pathlib.Path(snakes_web.__file__).parent)")
    out = run(tool("podman"), "run", "--rm", dev_image, "python", "-c", script).stdout.strip()
    assert out == "/app/snakes_web"  # the editable install: the mounted project is what runs
    run(tool("podman"), "run", "--rm", dev_image, "sh", "-c",
        "git --version && ruff --version && mypy --version && test -x /opt/venv/bin/python "
        "&& test -s /opt/models/export.onnx && snakes-web --help >/dev/null")
