"""The README's promises about set-up hold: two make targets, and CI runs exactly the test one."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^make test\b", readme, flags=re.M)
    commands = [line for line in (ROOT / ".ci/run").read_text().splitlines()
                if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert commands[-1] == "make test"
    # Before it, at most one step: install Debian's Chromium for the browser tests when it is missing.
    assert all(line.startswith("[ -x /usr/bin/chromium ] ||") and "apt-get install -y" in line
               for line in commands[:-1]) and len(commands) <= 2


def test_the_makefile_has_the_two_commands_and_a_torch_index_variable() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)
    assert re.search(r"^TORCH_INDEX_URL \?=\s*$", makefile, flags=re.M)
    assert "TORCH_INDEX_URL" in (ROOT / "README.md").read_text()
