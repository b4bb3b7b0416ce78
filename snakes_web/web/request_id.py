"""A request id on every response (taken from the request's X-Request-ID when it is sane)."""
from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

HEADER = "X-Request-ID"
#: What a request id taken from the client must look like (the OpenAPI document says the same).
SANE_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
_SANE = re.compile(SANE_PATTERN)


def register_request_ids(app: Flask) -> None:
    """Give each request an id in ``g.request_id`` and echo it in the response."""

    @app.before_request
    def _assign() -> None:
        incoming = request.headers.get(HEADER, "")
        g.request_id = incoming if _SANE.match(incoming) else uuid.uuid4().hex

    @app.after_request
    def _echo(response: Response) -> Response:
        response.headers[HEADER] = g.get("request_id", "")
        return response
