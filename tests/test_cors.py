"""CORS on /api/*: any origin by default (no credentials), or only the listed ones; preflights answered."""
from __future__ import annotations

from typing import Any

import pytest

from snakes_web import create_app
from snakes_web.config import ConfigError, load_settings
from tests.conftest import FakePredictor

PREFLIGHT = {"Origin": "https://frontend.example", "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type"}


def client_for(origins: str) -> Any:
    return create_app({"PREDICTOR": FakePredictor(), "CORS_ORIGINS": origins}).test_client()


def test_any_origin_by_default_without_credentials(client: Any) -> None:
    response = client.get("/api/v1/model", headers={"Origin": "https://frontend.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert response.headers["Access-Control-Expose-Headers"] == "X-Request-ID"


def test_a_preflight_is_answered_with_methods_headers_and_max_age(client: Any) -> None:
    response = client.options("/api/v1/predict", headers=PREFLIGHT)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "content-type" in response.headers["Access-Control-Allow-Headers"].lower()
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert response.headers["X-Request-ID"]


def test_a_preflight_for_an_unknown_path_is_answered_so_the_real_404_can_be_read(client: Any) -> None:
    assert client.options("/api/v1/typo", headers=PREFLIGHT).status_code == 204
    response = client.get("/api/v1/typo", headers={"Origin": "https://frontend.example"})
    assert response.status_code == 404 and response.headers["Access-Control-Allow-Origin"] == "*"


def test_errors_carry_cors_headers_so_frontends_can_read_them(client: Any) -> None:
    response = client.post("/api/v1/predict", json={"link": "x"}, headers={"Origin": "https://a.example"})
    assert response.status_code == 400 and response.headers["Access-Control-Allow-Origin"] == "*"


def test_pages_get_no_cors_headers(client: Any) -> None:
    response = client.get("/", headers={"Origin": "https://frontend.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_listed_origin_is_echoed_and_responses_vary_by_origin() -> None:
    client = client_for("https://a.example, https://frontend.example/")
    response = client.get("/api/v1/model", headers={"Origin": "https://frontend.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://frontend.example"
    assert "Origin" in response.headers["Vary"]
    preflight = client.options("/api/v1/predict", headers=PREFLIGHT)
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://frontend.example"
    assert "Origin" in preflight.headers["Vary"]


def test_an_unlisted_origin_gets_no_allow_headers_but_still_vary() -> None:
    client = client_for("https://a.example")
    response = client.get("/api/v1/model", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers and "Origin" in response.headers["Vary"]
    preflight = client.options("/api/v1/predict", headers={**PREFLIGHT, "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Methods" not in preflight.headers
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_with_the_wildcard_there_is_no_vary_on_origin(client: Any) -> None:
    assert "Origin" not in client.get("/api/v1/model", headers={"Origin": "https://x.example"}).vary


def test_an_empty_setting_turns_cors_off() -> None:
    response = client_for("").get("/api/v1/model", headers={"Origin": "https://frontend.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("raw", ["example.org", "https://a.example/path", "ftp://a.example"])
def test_a_value_that_is_not_an_origin_is_refused_at_start_up(raw: str) -> None:
    with pytest.raises(ConfigError, match="SNAKES_CORS_ORIGINS"):
        load_settings(environ={"SNAKES_CORS_ORIGINS": raw})
