"""The OpenAPI 3.1 document at /api/v1/openapi.json describes every route the app has, and a page shows it."""
from __future__ import annotations

import re
from typing import Any

from openapi_spec_validator import validate

from snakes_web import create_app
from snakes_web.web.openapi import document

IGNORED_METHODS = {"HEAD", "OPTIONS"}  # answered for every route by Flask and the CORS preflight


def served_routes(app: Any) -> set[tuple[str, str]]:
    """Return (path, method) for every route, Flask's <name> written as OpenAPI's {name}."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.endswith("static"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        routes |= {(path, method.lower()) for method in (rule.methods or set()) - IGNORED_METHODS}
    return routes


def test_the_document_is_valid_openapi_3_1(client: Any) -> None:
    body = client.get("/api/v1/openapi.json").get_json()
    validate(body)
    assert body["openapi"].startswith("3.1") and body == document()


def test_the_document_matches_the_routes_the_app_has(settings: dict[str, Any]) -> None:
    documented = {(path, method) for path, ops in document()["paths"].items() for method in ops}
    assert documented == served_routes(create_app({**settings, "METRICS_PORT": 0}))  # /metrics too, on request
    assert documented - served_routes(create_app(settings)) == {("/metrics", "get")}  # by default: its own port


def test_every_response_documents_the_request_id_header() -> None:
    for ops in document()["paths"].values():
        for op in ops.values():
            for response in op["responses"].values():
                assert response["headers"]["X-Request-ID"] == {"$ref": "#/components/headers/RequestId"}


def test_every_api_error_is_documented_as_problem_json() -> None:
    for path, ops in document()["paths"].items():
        for op in ops.values():
            for status, response in op["responses"].items():
                if status[0] in "45" and path.startswith("/api/"):
                    assert list(response["content"]) == ["application/problem+json"]


def test_predict_documents_every_status_of_the_readme() -> None:
    responses = document()["paths"]["/api/v1/predict"]["post"]["responses"]
    assert {"200", "400", "413", "415", "422", "502", "503", "504"} <= set(responses)


def test_the_reference_page_shows_every_endpoint_without_scripts(client: Any) -> None:
    response = client.get("/api/v1/docs")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    for path, ops in document()["paths"].items():
        for method in ops:
            assert f'<span class="method {method}">{method.upper()}</span> <code>{path}</code>' in page
    assert "<script" not in page and "<style" not in page and "style=" not in page
    assert "Problem" in page and "X-Request-ID" in page and "/api/v1/openapi.json" in page
