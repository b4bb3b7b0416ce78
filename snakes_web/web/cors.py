"""CORS for the JSON API: which browser origins may call /api/*, and the answer to their preflights.

A small module rather than flask-cors: flask-cors (6.0) leaves out ``Vary: Origin`` when a single
origin is listed, and answers preflights only for paths that exist (a typo then shows up in the
browser as a CORS failure instead of our 404 problem). The whole policy fits on one screen.
"""
from __future__ import annotations

from flask import Flask, Response, request

from snakes_web.config import split_origins

API_PREFIX = "/api/"
ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Content-Type, X-Request-ID"
EXPOSE_HEADERS = "X-Request-ID"
MAX_AGE_SECONDS = 600  # Chromium caps preflight caching at 2 hours, Firefox at 24; 10 minutes is plenty


def register_cors(app: Flask) -> None:
    """Answer preflights and add CORS headers on /api/* for the configured origins."""
    origins = frozenset(split_origins(app.config["CORS_ORIGINS"]))
    if not origins:
        return
    any_origin = "*" in origins

    def allowed(origin: str | None) -> str | None:
        """Return the Access-Control-Allow-Origin value for ``origin``, or None when it is not allowed."""
        if any_origin:
            return "*"
        return origin if origin and origin.rstrip("/") in origins else None

    @app.before_request
    def _preflight() -> Response | None:
        if (request.method == "OPTIONS" and request.path.startswith(API_PREFIX)
                and "Access-Control-Request-Method" in request.headers):
            response = Response(status=204)
            del response.headers["Content-Type"]
            if allowed(request.headers.get("Origin")):
                response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
                response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
                response.headers["Access-Control-Max-Age"] = str(MAX_AGE_SECONDS)
            return response
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        if not request.path.startswith(API_PREFIX):
            return response
        if not any_origin:
            response.vary.add("Origin")  # the answer depends on who asks: caches must keep them apart
        allow_origin = allowed(request.headers.get("Origin"))
        if allow_origin:
            response.headers["Access-Control-Allow-Origin"] = allow_origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        return response
