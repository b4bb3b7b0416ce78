"""The JSON API: the contract docs/guide.md (and docs/reference/http.md) gives for /api/v1/predict and /api/v1/model."""
from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import COLOURS, image_bytes

PREDICT = "/api/v1/predict"


def assert_problem(response: Any, status: int, detail_part: str) -> None:
    """Check the problem+json shape, the status and the explanation."""
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert set(body) - {"detected"} == {"type", "title", "status", "detail", "request_id"}
    assert body["status"] == status and body["type"].startswith("urn:snakes-web:problem:")
    assert detail_part.lower() in body["detail"].lower()
    assert body["request_id"] == response.headers["X-Request-ID"]


def test_an_upload_gets_every_class_sorted_and_the_model(upload: Any) -> None:
    response = upload(image_bytes(colour=COLOURS["green"]))
    assert response.status_code == 200
    body = response.get_json()
    labels = [p["label"] for p in body["predictions"]]
    assert labels[0] == "green" and sorted(labels) == sorted(COLOURS)
    probabilities = [p["probability"] for p in body["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert body["model"] == {"name": "fake-colours", "backend": "fake", "labels": 3, "input_size": [1, 1]}


@pytest.mark.parametrize("top, expected", [("1", 1), ("2", 2), ("99", 3)])
def test_top_limits_the_predictions(client: Any, top: str, expected: int) -> None:
    import io

    response = client.post(f"{PREDICT}?top={top}", data={"file": (io.BytesIO(image_bytes()), "a.png")})
    assert len(response.get_json()["predictions"]) == expected


@pytest.mark.parametrize("top", ["0", "-1", "two", "1.5"])
def test_a_bad_top_is_a_400(client: Any, top: str) -> None:
    import io

    response = client.post(f"{PREDICT}?top={top}", data={"file": (io.BytesIO(image_bytes()), "a.png")})
    assert_problem(response, 400, "top")


def test_a_url_in_a_form_field(client: Any, image_server: Any) -> None:
    image_server.routes["/blue.jpg"] = _image_route(image_bytes("JPEG", colour=COLOURS["blue"]), "image/jpeg")
    response = client.post(PREDICT, data={"url": image_server.url("/blue.jpg")})
    assert response.status_code == 200
    assert response.get_json()["predictions"][0]["label"] == "blue"


def test_a_url_in_a_json_body(client: Any, image_server: Any) -> None:
    image_server.routes["/red.png"] = _image_route(image_bytes(), "image/png")
    response = client.post(PREDICT, json={"url": image_server.url("/red.png")})
    assert response.status_code == 200
    assert response.get_json()["predictions"][0]["label"] == "red"


def test_the_model_endpoint_describes_the_model(client: Any) -> None:
    response = client.get("/api/v1/model")
    assert response.get_json() == {"name": "fake-colours", "backend": "fake", "input_size": [1, 1],
                                   "labels": 3, "vocab": ["red", "green", "blue"]}


# --- every error status of the contract ------------------------------------------------------

def _image_route(body: bytes, content_type: str, **kwargs: Any) -> Any:
    from tests.conftest import Route

    return Route(body=body, headers={"Content-Type": content_type}, **kwargs)


def test_nothing_sent_is_a_400(client: Any) -> None:
    assert_problem(client.post(PREDICT, data={}, content_type="multipart/form-data"), 400, "file")


def test_both_a_file_and_a_url_is_a_400(upload: Any) -> None:
    assert_problem(upload(image_bytes(), url="http://127.0.0.1:1/x.png"), 400, "not both")


@pytest.mark.parametrize("body", [[1, 2], {"url": 5}, {"link": "http://x"}, "http://x"])
def test_json_without_a_string_url_is_a_400(client: Any, body: Any) -> None:
    assert_problem(client.post(PREDICT, json=body), 400, '"url"')


def test_malformed_json_is_a_400(client: Any) -> None:
    response = client.post(PREDICT, data=b"{not json", content_type="application/json")
    assert_problem(response, 400, '"url"')


def test_an_empty_file_is_a_400(upload: Any) -> None:
    assert_problem(upload(b""), 400, "empty")


def test_a_body_over_the_limit_is_a_413(upload: Any) -> None:
    assert_problem(upload(b"\xff" * (3 * 1024 * 1024)), 413, "limit is 2 MB")


def test_an_image_with_too_many_pixels_is_a_413(app: Any, upload: Any) -> None:
    app.config["MAX_IMAGE_PIXELS"] = 1000
    assert_problem(upload(image_bytes(size=(100, 100))), 413, "megapixels")


def test_a_file_that_is_not_an_image_is_a_415(upload: Any) -> None:
    assert_problem(upload(b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", name="photo.jpg"), 415, "not an image")


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", "image/png"])
def test_a_body_that_is_neither_a_form_nor_json_is_a_415(client: Any, content_type: str) -> None:
    response = client.post(PREDICT, data=image_bytes(), content_type=content_type)
    assert_problem(response, 415, "multipart/form-data")


def test_a_truncated_image_is_a_422(upload: Any) -> None:
    whole = image_bytes("JPEG", size=(300, 200), colour=(1, 2, 3))
    assert_problem(upload(whole[: len(whole) // 3]), 422, "truncated or corrupt")


def test_a_url_whose_server_fails_is_a_502(client: Any, image_server: Any) -> None:
    response = client.post(PREDICT, json={"url": image_server.url("/missing.png")})
    assert_problem(response, 502, "answered 404")


def test_a_url_whose_server_is_too_slow_is_a_504(client: Any, image_server: Any) -> None:
    image_server.routes["/slow.png"] = _image_route(image_bytes(), "image/png", delay=3)
    assert_problem(client.post(PREDICT, json={"url": image_server.url("/slow.png")}), 504, "in time")


def test_a_url_that_is_not_an_image_is_a_415(client: Any, image_server: Any) -> None:
    image_server.routes["/page"] = _image_route(b"<html></html>", "text/html")
    assert_problem(client.post(PREDICT, json={"url": image_server.url("/page")}), 415, "text/html")


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_predict_wants_post(client: Any, method: str) -> None:
    response = getattr(client, method)(PREDICT)
    assert_problem(response, 405, "method")
    assert "POST" in response.headers["Allow"]


def test_an_unknown_api_path_is_a_json_404(client: Any) -> None:
    assert_problem(client.get("/api/v1/nope"), 404, "nothing")


def test_an_unexpected_error_is_a_500_without_internals(app: Any, upload: Any, caplog: Any) -> None:
    def broken(image: Any) -> Any:
        raise RuntimeError("secret internal detail /srv/model.pkl")

    app.config["PREDICTOR"].predict = broken
    response = upload(image_bytes())
    assert_problem(response, 500, "request id")
    assert b"secret" not in response.data and b"Traceback" not in response.data
    assert response.get_json()["request_id"] in caplog.text


def test_a_sane_incoming_request_id_is_echoed(client: Any) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"


def test_an_insane_incoming_request_id_is_replaced(client: Any) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "<script>" * 30})
    assert response.headers["X-Request-ID"].isalnum()


def test_uploads_are_never_written_to_disk(upload: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import tempfile

    def no_disk(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an upload went to a temporary file")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_disk)
    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", no_disk)
    noise = image_bytes("BMP", size=(600, 500), colour=(9, 9, 9)) + os.urandom(100)
    assert len(noise) > 600_000  # over Werkzeug's 500 KB spooling threshold
    assert upload(noise, name="big.bmp").status_code == 200


def test_a_nameless_file_part_with_data_is_still_an_upload(client: Any) -> None:
    import io

    response = client.post(PREDICT, data={"file": (io.BytesIO(image_bytes(colour=COLOURS["blue"])), "")})
    assert response.status_code == 200 and response.get_json()["predictions"][0]["label"] == "blue"
