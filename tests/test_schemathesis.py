"""Property-based fuzzing of the API from its own OpenAPI document (Schemathesis, in process, fake model).

Every generated request must get an answer that is not a 5xx and that the document describes: status,
content type, headers (X-Request-ID) and body schema. No URL is ever fetched: name resolution is
replaced by a refusal, so the fuzzer's random hosts never leave the machine.
"""
from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from snakes_web import create_app
from snakes_web.exceptions import BadRequest
from tests.conftest import COLOURS, FakePredictor, image_bytes

# Small limits keep each example fast; the fake model keeps inference out of the picture.
app = create_app({"PREDICTOR": FakePredictor(), "MAX_UPLOAD_BYTES": 256 * 1024, "FETCH_TIMEOUT": 0.5})
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every host name before any connection is tried."""
    import snakes_web.imaging.fetch as fetch

    def refuse(host: str, port: int, timeout: float | None = None) -> Any:
        raise BadRequest("The host name of that URL does not resolve.")

    monkeypatch.setattr(fetch, "resolve", refuse)


@schema.parametrize()
@settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_every_answer_matches_the_document(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


@pytest.mark.parametrize("body, media_type, query", [
    ({"file": image_bytes(colour=COLOURS["green"])}, "multipart/form-data", None),
    ({"file": image_bytes("JPEG", size=(300, 200))}, "multipart/form-data", {"top": 2}),
    ({"file": b"%PDF-1.4 not an image"}, "multipart/form-data", None),
    ({"url": "https://example.org/snake.jpg"}, "application/json", None),
])
def test_real_images_and_known_errors_match_the_document(body: dict[str, Any], media_type: str,
                                                         query: dict[str, Any] | None) -> None:
    """Random bytes are never an image, so the fuzzer alone would never see a 200: send some on purpose."""
    case = schema["/api/v1/predict"]["POST"].Case(body=body, media_type=media_type, query=query)
    case.call_and_validate(checks=CHECKS)
