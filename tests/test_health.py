"""Probes: /healthz says the process is up, /readyz that the model is loaded and has predicted."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from snakes_web import create_app


def test_healthz_answers(client: Any) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_runs_one_prediction(app: Any, client: Any) -> None:
    fake = app.config["PREDICTOR"]
    response = client.get("/readyz")
    assert response.get_json() == {"status": "ready", "model": "fake-colours"}
    client.get("/readyz")
    assert fake.calls == 1  # warmed up once, not on every probe


def test_readyz_is_503_without_leaking_the_path_when_the_model_is_missing(tmp_path: Path,
                                                                         caplog: Any) -> None:
    missing = tmp_path / "secret-dir" / "export.pkl"
    client = create_app({"MODEL": str(missing)}).test_client()
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert "secret-dir" not in response.get_data(as_text=True)
    assert str(missing) in caplog.text  # the operator sees it in the log
