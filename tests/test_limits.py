"""Request limits and error paths: the right status in both blueprints, and nothing internal leaks."""
from __future__ import annotations

import logging
from typing import Any

import pytest
import requests
from PIL import Image
from werkzeug.test import encode_multipart

from tests.conftest import Route, image_bytes

PREDICT = "/api/v1/predict"
BOTH = ["/api/v1/predict", "/"]


def post_form(client: Any, path: str, fields: dict[str, Any]) -> Any:
    """Post ``fields`` as multipart, encoded here so the body is exactly what the test says."""
    boundary, body = encode_multipart(fields)
    return client.post(path, data=body, content_type=f"multipart/form-data; boundary={boundary}")


def status_and_text(response: Any) -> tuple[int, str]:
    """Return the status and the explanation, from problem+json or from the page."""
    if response.mimetype == "application/problem+json":
        return response.status_code, response.get_json()["detail"]
    assert response.mimetype == "text/html"
    return response.status_code, response.get_data(as_text=True)


@pytest.mark.parametrize("path", BOTH)
def test_a_text_field_over_the_form_memory_limit_is_a_413(client: Any, path: str) -> None:
    status, text = status_and_text(post_form(client, path, {"url": "http://x/" + "a" * 300_000}))
    assert status == 413 and "field that is too long" in text


@pytest.mark.parametrize("path", BOTH)
def test_too_many_form_parts_is_a_413(client: Any, path: str) -> None:
    fields = {f"field{i}": "x" for i in range(40)}
    status, text = status_and_text(post_form(client, path, fields))
    assert status == 413 and "too many fields" in text


@pytest.mark.parametrize("path", BOTH)
def test_a_body_over_the_upload_limit_is_a_413_in_json_and_html(upload: Any, path: str) -> None:
    response = upload(b"\0" * (3 * 1024 * 1024), path=path)
    status, text = status_and_text(response)
    assert status == 413 and "limit is 2 MB" in text
    assert response.mimetype == ("application/problem+json" if path.startswith("/api") else "text/html")


@pytest.mark.parametrize("path", BOTH)
def test_a_url_over_the_length_limit_is_a_400(client: Any, path: str) -> None:
    status, text = status_and_text(post_form(client, path, {"url": "http://example.org/" + "a" * 3000}))
    assert status == 400 and "longer than 2048" in text


def test_a_json_url_over_the_length_limit_is_a_400(client: Any) -> None:
    response = client.post(PREDICT, json={"url": "http://example.org/" + "a" * 3000})
    assert response.status_code == 400 and "longer than" in response.get_json()["detail"]


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_a_wrong_method_on_the_api_is_a_405_problem(client: Any, method: str) -> None:
    response = getattr(client, method)(PREDICT)
    assert response.status_code == 405 and response.mimetype == "application/problem+json"
    assert response.headers["Allow"]


@pytest.mark.parametrize("content_type", ["text/plain", "text/xml", "application/x-www-form-urlencodedx",
                                          "image/jpeg", "application/octet-stream"])
def test_a_wrong_content_type_on_the_api_is_a_415_problem(client: Any, content_type: str) -> None:
    response = client.post(PREDICT, data=b"whatever", content_type=content_type)
    assert response.status_code == 415 and response.mimetype == "application/problem+json"


def test_a_wrong_method_on_the_page_is_an_html_405(client: Any) -> None:
    response = client.delete("/")
    assert response.status_code == 405 and response.mimetype == "text/html"


# --- nothing internal leaks ---------------------------------------------------------------------

SECRET = "/srv/secret/internal/path.py line 42"
LEAKS = ("/srv/secret", "Traceback", "line 42", 'File "', "PIL.", "urllib3", "HTTPConnectionPool")


def assert_no_leak(response: Any) -> None:
    text = response.get_data(as_text=True)
    for leak in LEAKS:
        assert leak not in text, leak


@pytest.mark.parametrize("path", BOTH)
@pytest.mark.parametrize("error", [OSError, ValueError, SyntaxError, RuntimeError, MemoryError, KeyError])
def test_a_pillow_failure_with_a_path_in_its_message_does_not_leak(
        upload: Any, monkeypatch: pytest.MonkeyPatch, path: str, error: type[Exception]) -> None:
    def open_fails(*args: Any, **kwargs: Any) -> Any:
        raise error(f"cannot identify image file {SECRET}")

    monkeypatch.setattr(Image, "open", open_fails)
    response = upload(image_bytes(), path=path)
    assert response.status_code in {413, 415, 422, 500}
    assert_no_leak(response)


@pytest.mark.parametrize("path", BOTH)
@pytest.mark.parametrize("error", [requests.ConnectionError, requests.Timeout, requests.TooManyRedirects,
                                   requests.exceptions.SSLError, requests.exceptions.InvalidURL,
                                   requests.exceptions.ChunkedEncodingError, OSError])
def test_a_requests_failure_with_internals_in_its_message_does_not_leak(
        client: Any, monkeypatch: pytest.MonkeyPatch, path: str, error: type[Exception]) -> None:
    def get_fails(*args: Any, **kwargs: Any) -> Any:
        raise error(f"HTTPConnectionPool(host='10.0.0.1', port=80): Max retries ({SECRET})")

    monkeypatch.setattr(requests.Session, "get", get_fails)
    response = post_form(client, path, {"url": "http://127.0.0.1:9/a.png"})  # never dialled: get fails
    assert response.status_code in {500, 502, 504}
    assert_no_leak(response)


def test_a_remote_server_error_page_is_not_echoed(client: Any, image_server: Any) -> None:
    image_server.routes["/x.png"] = Route(f"<h1>{SECRET}</h1>".encode(), status=500)
    response = client.post(PREDICT, json={"url": image_server.url("/x.png")})
    assert response.status_code == 502
    assert_no_leak(response)


@pytest.mark.parametrize("path", BOTH)
@pytest.mark.parametrize("route, status", [
    (Route(b"no", status=500), 502), (Route(image_bytes(), headers={"Content-Type": "image/png"}, delay=3), 504),
])
def test_every_5xx_is_logged_with_the_request_id_it_answers_with(
        client: Any, image_server: Any, caplog: pytest.LogCaptureFixture, path: str, route: Route,
        status: int) -> None:
    image_server.routes["/x.png"] = route
    with caplog.at_level(logging.WARNING, logger="snakes_web"):
        response = post_form(client, path, {"url": image_server.url("/x.png")})
    assert response.status_code == status
    request_id = response.headers["X-Request-ID"]
    assert any(request_id in record.getMessage() and str(status) in record.getMessage()
               for record in caplog.records)
    if path == "/":
        assert request_id in response.get_data(as_text=True)  # the page shows the id to quote


def test_an_unexpected_500_page_shows_the_request_id(app: Any, upload: Any,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    def broken(image: Any) -> Any:
        raise ZeroDivisionError(SECRET)

    app.config["PREDICTOR"].predict = broken
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = upload(image_bytes(), path="/")
    # The page view catches only our typed errors, so this reaches the one handler: HTML 500.
    assert response.status_code == 500 and response.mimetype == "text/html"
    assert response.headers["X-Request-ID"] in response.get_data(as_text=True)
    assert response.headers["X-Request-ID"] in caplog.text
    assert_no_leak(response)


@pytest.mark.parametrize("path", BOTH)
def test_a_body_the_server_cannot_parse_is_a_400_not_a_500(client: Any, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture, path: str) -> None:
    from gunicorn.http.errors import InvalidChunkSize

    from snakes_web.web import inputs

    def broken_chunking(*args: Any, **kwargs: Any) -> Any:
        raise InvalidChunkSize(b"zz")  # what gunicorn raises while the app reads a bad chunked body

    monkeypatch.setattr(inputs, "_file_and_url", broken_chunking)
    response = post_form(client, path, {"url": "http://example.org/a.png"})
    status, text = status_and_text(response)
    assert status == 400 and "malformed" in text
    assert "Traceback" not in caplog.text
