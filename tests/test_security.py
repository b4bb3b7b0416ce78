"""Security headers on every response, a CSP the pages actually satisfy, and debug mode never on."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from snakes_web import create_app
from snakes_web.web.security import CONTENT_SECURITY_POLICY
from tests.conftest import image_bytes

TEMPLATES = Path(__file__).parent.parent / "snakes_web" / "templates"
EXPECTED_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                "frame-ancestors 'none'")


def test_the_policy_is_the_agreed_one() -> None:
    assert CONTENT_SECURITY_POLICY == EXPECTED_CSP


def pages(client: Any, upload: Any) -> dict[str, Any]:
    """Every kind of HTML response: the form, a result, a form with an error, a 404, a 405, a 413."""
    return {
        "form": client.get("/"),
        "result": upload(image_bytes(), path="/"),
        "error": upload(b"%PDF-1.4", path="/"),
        "404": client.get("/nowhere"),
        "405": client.put("/"),
        "413": upload(b"\0" * (3 * 1024 * 1024), path="/"),
    }


def test_every_page_carries_the_csp_and_the_other_headers(client: Any, upload: Any) -> None:
    for name, response in pages(client, upload).items():
        assert response.mimetype == "text/html", name
        assert response.headers["Content-Security-Policy"] == EXPECTED_CSP, name
        assert response.headers["X-Content-Type-Options"] == "nosniff", name
        assert response.headers["Referrer-Policy"] == "no-referrer", name
        assert response.headers["X-Frame-Options"] == "DENY", name


@pytest.mark.parametrize("method, path", [("get", "/api/v1/model"), ("get", "/healthz"),
                                          ("post", "/api/v1/predict"), ("get", "/static/style.css"),
                                          ("get", "/api/v1/nowhere")])
def test_every_other_response_is_nosniff_and_unframeable(client: Any, method: str, path: str) -> None:
    with getattr(client, method)(path) as response:  # closed: the stylesheet is a file stream
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "Content-Security-Policy" not in response.headers


def test_rendered_pages_have_no_inline_script_or_style(client: Any, upload: Any) -> None:
    for name, response in pages(client, upload).items():
        html = response.get_data(as_text=True)
        assert "<style" not in html.lower(), name
        assert not re.search(r"\sstyle\s*=", html, re.IGNORECASE), name
        assert not re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE), name  # onclick= and friends
        assert "javascript:" not in html.lower(), name
        for script in re.findall(r"<script\b[^>]*>", html, re.IGNORECASE):
            assert "src=" in script, name  # only scripts from files


def test_templates_have_no_inline_script_or_style() -> None:
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert "<style" not in text and not re.search(r"\sstyle\s*=", text), template.name
        assert all("src=" in tag for tag in re.findall(r"<script\b[^>]*>", text)), template.name


def test_every_image_on_a_page_is_allowed_by_the_policy(upload: Any) -> None:
    html = upload(image_bytes(), path="/").get_data(as_text=True)
    sources = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert sources and all(src.startswith(("data:", "/")) for src in sources)


# --- debug mode ---------------------------------------------------------------------------------

def test_flask_debug_in_the_environment_does_not_turn_debug_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASK_DEBUG", "1")
    app = create_app({})
    assert app.debug is False and app.config["DEBUG"] is False
    assert app.config["PROPAGATE_EXCEPTIONS"] is False


def test_debug_in_the_config_is_overridden_outside_tests() -> None:
    assert create_app({"DEBUG": True}).debug is False


def test_tests_may_still_use_debug() -> None:
    assert create_app({"DEBUG": True, "TESTING": True}).debug is True


def test_an_error_under_flask_debug_shows_no_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import FakePredictor

    monkeypatch.setenv("FLASK_DEBUG", "1")
    predictor = FakePredictor()

    def broken(image: Any) -> Any:
        raise RuntimeError("/srv/secret/model.pkl exploded")

    predictor.predict = broken  # type: ignore[method-assign]
    app = create_app({"PREDICTOR": predictor})
    import io

    response = app.test_client().post("/api/v1/predict", data={"file": (io.BytesIO(image_bytes()), "a.png")})
    assert response.status_code == 500
    assert b"Traceback" not in response.data and b"/srv/secret" not in response.data


def test_no_template_is_handed_the_configuration(tmp_path: Any) -> None:
    from flask import template_rendered

    from tests.conftest import FakePredictor

    secret = "s" * 40
    app = create_app({"PREDICTOR": FakePredictor(), "TESTING": True, "SECRET_KEY": secret,
                      "DATA_DIR": str(tmp_path / "data")})
    seen: list[dict[str, Any]] = []
    template_rendered.connect(lambda sender, template, context, **extra: seen.append(context), app, weak=False)
    page = app.test_client().get("/").get_data(as_text=True)
    assert seen and all("config" not in context for context in seen) and secret not in page
    assert "config" not in app.jinja_env.globals
