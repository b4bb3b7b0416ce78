"""Pinned, reproducible installs: the venv holds exactly constraints.txt's versions, and the internals we
extend (gunicorn's worker, urllib3's pools) are in the range they were tested against."""
from __future__ import annotations

import configparser
import importlib.metadata
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from snakes_web.imaging.fetch import TESTED_URLLIB3
from snakes_web.serving.worker import TESTED_GUNICORN

ROOT = Path(__file__).parent.parent
LOCK = ROOT / "constraints.txt"
REFRESH = "run `make lock` (uv pip compile) and commit constraints.txt, or reinstall with `make clean test`"


def locked() -> dict[str, str]:
    """Return constraints.txt as {distribution name: version}."""
    pins = {}
    for line in LOCK.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)(\[[^\]]*\])?==([^\s;#]+)", line)
        if match:
            pins[canonical(match.group(1))] = match.group(3)
    return pins


def canonical(name: str) -> str:
    """Normalise a distribution name as PyPI does (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(name: str) -> SpecifierSet:
    """Return setup.cfg's install_requires specifier for ``name``."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    for line in config["options"]["install_requires"].splitlines():
        line = line.split("#")[0].strip()
        if line and canonical(Requirement(line).name) == name:
            return Requirement(line).specifier
    raise AssertionError(f"{name} is not in setup.cfg's install_requires")


def test_every_installed_distribution_the_lock_names_has_the_locked_version() -> None:
    pins = locked()
    assert {"flask", "gunicorn", "urllib3", "onnxruntime", "fastai", "torch", "pytest"} <= set(pins)
    installed = {canonical(dist.metadata["Name"]): dist.version for dist in importlib.metadata.distributions()}
    moved = {name: (pins[name], installed[name]) for name in pins
             if name in installed and Version(installed[name]).public != Version(pins[name]).public}
    assert not moved, f"installed versions differ from constraints.txt (locked, installed): {moved}; {REFRESH}"
    missing = {name for name in ("flask", "gunicorn", "urllib3", "onnxruntime", "pytest") if name not in installed}
    assert not missing


def test_gunicorn_and_urllib3_are_in_the_range_the_worker_and_the_fetcher_were_tested_against() -> None:
    for name, tested, user in (("gunicorn", TESTED_GUNICORN, "serving/worker.py (gthread's internals)"),
                               ("urllib3", TESTED_URLLIB3, "imaging/fetch.py (PoolManager._new_pool, _new_conn)")):
        version = importlib.metadata.version(name)
        assert version in SpecifierSet(tested), (
            f"{name} {version} is outside {tested}, the range {user} was tested against: test it, then widen "
            f"the range there and in setup.cfg, or install the locked version ({REFRESH})")
        assert declared(name) == SpecifierSet(tested), f"setup.cfg must allow exactly {tested} for {name}"
        assert locked()[name] in SpecifierSet(tested)


def test_the_lock_is_used_by_make_the_dockerfile_and_heroku() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert makefile.count("$(PIN) ") >= 4 and "PIN := -c constraints.txt" in makefile
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")  # continuation lines joined
    install = re.compile(r"pip (--python \S+ )?install .*(-r |torch==)")
    installs = [line for line in dockerfile.splitlines() if install.search(line)]
    assert len(installs) == 4 and all("-c /tmp/requirements/constraints.txt" in line for line in installs), installs
    assert "-c constraints.txt" in (ROOT / "requirements.txt").read_text().splitlines()
    assert "!constraints.txt" in (ROOT / ".dockerignore").read_text().splitlines()
