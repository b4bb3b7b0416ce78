"""The README's promises about set-up hold: two make targets, and CI runs exactly the check ones (lint, tests)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_ci_runs_the_readme_test_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^make test\b", readme, flags=re.M)
    assert re.search(r"^make test-container\b", readme, flags=re.M)
    assert re.search(r"^make lint\b", readme, flags=re.M)
    assert re.search(r"^make docs\b", readme, flags=re.M)
    commands = [line for line in (ROOT / ".ci/run").read_text().splitlines()
                if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert commands[-4:] == ["make lint", "make docs", "make test", "make test-container"]
    # Before them, only set-up: Debian's Chromium for the browser tests, Debian's PostgreSQL for the
    # feedback tests and HAProxy for the container suite when they are missing, and podman (with the tools
    # and base image of the container kit beside the clone) for the container suite.
    chromium, postgres, haproxy, podman = commands[:-4]
    assert chromium.startswith("[ -x /usr/bin/chromium ] ||") and "apt-get install -y" in chromium
    assert postgres.startswith("command -v initdb >/dev/null ||") and "install -y -qq postgresql;" in postgres
    assert haproxy.startswith("[ -x /usr/sbin/haproxy ] ||") and "apt-get install -y -qq haproxy" in haproxy
    assert podman == "bash ../shared/container/setup-podman.sh -q"


def test_make_test_leaves_the_container_suite_to_make_test_container() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test-container:", makefile, flags=re.M)
    assert "-m container tests/container" in makefile
    assert '-m "not container and not gpu"' in (ROOT / "setup.cfg").read_text()


def test_make_test_leaves_the_gpu_training_to_make_test_gpu() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test-gpu:", makefile, flags=re.M) and "-m gpu tests/test_gpu.py" in makefile


def test_the_makefile_has_the_two_commands_and_a_torch_index_variable() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)
    assert re.search(r"^TORCH_INDEX_URL \?=\s*$", makefile, flags=re.M)
    assert "TORCH_INDEX_URL" in (ROOT / "README.md").read_text()
