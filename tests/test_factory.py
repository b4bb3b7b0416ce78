"""The factory assembles; it loads no model, and importing the package imports no torch."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from snakes_web import create_app
from snakes_web.model.loader import holder_of


def test_the_test_mapping_reaches_the_config(app: Any) -> None:
    assert app.config["TESTING"] is True and app.config["ALLOW_PRIVATE_URLS"] is True


def test_creating_the_app_loads_no_model(tmp_path: Path) -> None:
    app = create_app({"MODEL": str(tmp_path / "absent.pkl")})  # absent: loading would fail
    assert not holder_of(app).loaded


def test_both_blueprints_share_one_predictor(app: Any, client: Any, upload: Any) -> None:
    from tests.conftest import image_bytes

    upload(image_bytes())
    upload(image_bytes(), path="/")
    assert app.config["PREDICTOR"].calls == 2
    assert {"web", "api"} <= set(app.blueprints)


def test_importing_the_app_does_not_import_torch_or_fastai() -> None:
    code = ("import sys, wsgi; from snakes_web import create_app; "
            "print(sorted(m for m in ('torch', 'fastai') if m in sys.modules))")
    root = Path(__file__).parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         check=True, env={"SNAKES_MODEL": "/nonexistent.pkl", "PATH": "/usr/bin"})
    assert out.stdout.strip() == "[]"


def test_debug_is_off() -> None:
    assert create_app({}).debug is False
