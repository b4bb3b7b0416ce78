"""docker/requirements.py: the Dockerfile installs exactly setup.cfg's requirements, by stage."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.test_packaging import requirement_names, setup_cfg

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "docker" / "requirements.py"


def listed(*extras: str) -> list[str]:
    """Run the script as the Dockerfile does and return its lines."""
    out = subprocess.run([sys.executable, str(SCRIPT), str(ROOT / "setup.cfg"), *extras],
                         capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def test_prod_gets_install_requires_and_nothing_else() -> None:
    serving = listed()
    assert requirement_names("\n".join(serving)) == requirement_names(setup_cfg()["options"]["install_requires"])
    assert not requirement_names("\n".join(serving)) & {"torch", "torchvision", "fastai", "onnx"}


def test_base_adds_the_fastai_extra_and_dev_the_expanded_test_and_dev_extras() -> None:
    assert {"torch", "torchvision", "fastai", "onnx", "flask"} <= requirement_names("\n".join(listed("fastai")))
    dev = requirement_names("\n".join(listed("dev")))
    assert {"fastai", "torch", "pytest", "ruff", "mypy", "flask"} <= dev  # %(test)s and %(fastai)s expanded
    assert not any(line.startswith(("#", "%")) or not line.strip() for line in listed("dev"))
