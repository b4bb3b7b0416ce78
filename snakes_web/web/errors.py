"""The one error handler: the same information rendered as problem+json under /api, HTML elsewhere."""
from __future__ import annotations

import logging

from flask import Flask, Response, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.exceptions import MethodNotAllowed as WerkzeugMethodNotAllowed

from snakes_web.exceptions import (
    BadRequest,
    GateLost,
    ModelLoadError,
    ModelUnavailable,
    Overloaded,
    PayloadTooLarge,
    ShuttingDown,
    SnakesError,
    problem_document,
)

log = logging.getLogger(__name__)

# Werkzeug's own HTTP errors, said in our words (their defaults talk about "the server").
_HTTP_DETAILS = {
    404: "There is nothing at this address.",
    405: "This address does not accept that method.",
    415: "That content type is not accepted here.",
}
_HTTP_SLUGS = {404: "not-found", 405: "method-not-allowed", 413: "too-large",
               415: "unsupported-media-type"}


def register_error_handlers(app: Flask) -> None:
    """Route every exception a request can raise to one renderer."""
    app.register_error_handler(SnakesError, _handle_snakes_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(ModelLoadError, _handle_model_load_error)
    app.register_error_handler(Exception, _handle_unexpected)


def as_snakes_error(exc: HTTPException) -> SnakesError:
    """Translate a Werkzeug HTTP error into our hierarchy's terms."""
    if isinstance(exc, RequestEntityTooLarge):
        return upload_too_large()
    error = SnakesError(_HTTP_DETAILS.get(exc.code or 500, exc.description or exc.name))
    error.status, error.title = exc.code or 500, exc.name
    error.slug = _HTTP_SLUGS.get(error.status, exc.name.lower().replace(" ", "-"))
    return error


def upload_too_large() -> PayloadTooLarge:
    """Build the error for a request body, or one of its form fields, over its limit."""
    from flask import current_app

    limit = current_app.config["MAX_UPLOAD_BYTES"]
    if request.content_length is not None and request.content_length <= limit:
        # The body fits: Werkzeug stopped at a text field over MAX_FORM_MEMORY_SIZE or too many parts.
        return PayloadTooLarge("The form has a text field that is too long, or too many fields.")
    return PayloadTooLarge(f"The upload is too large; the limit is {limit / (1024 * 1024):g} MB.")


def problem(error: SnakesError) -> dict[str, object]:
    """Return the RFC 9457 problem document for ``error``, with this request's id."""
    return problem_document(error, g.get("request_id", ""))


def render_error(error: SnakesError, as_json: bool | None = None) -> Response:
    """Render ``error`` as problem+json (by default for API paths; ``as_json`` decides), as an HTML page otherwise."""
    if wants_json() if as_json is None else as_json:
        response = jsonify(problem(error))
        response.mimetype = "application/problem+json"
    else:
        response = Response(render_template("error.html", error=error), mimetype="text/html")
    response.status_code = error.status
    response.headers.update(error_headers(error))
    return response


def error_headers(error: SnakesError) -> dict[str, str]:
    """Return the headers an error's answer carries besides its body (``Retry-After`` on overload)."""
    retry_after = getattr(error, "retry_after", None)
    return {"Retry-After": str(retry_after)} if retry_after else {}


def wants_json() -> bool:
    """Tell whether this request is for the JSON API rather than the HTML pages."""
    return request.path.startswith("/api/") or request.path in {"/healthz", "/readyz"}


def log_server_error(error: SnakesError) -> None:
    """Log a 5xx we answer on purpose (a remote server failed, no model) with the request id.

    Overload is the exception: the gate logs it once per burst, not once per refused request; and so is
    a stopping server's /readyz, which the worker logs once when the drain starts, and a lost gate, which
    the gate logs once when it finds its semaphores gone.
    """
    if error.status >= 500 and not isinstance(error, Overloaded | ShuttingDown | GateLost):
        log.warning("%s %s (request %s): %s", error.status, error.slug, g.get("request_id", "-"), error.detail)


def _handle_snakes_error(exc: SnakesError) -> Response:
    log_server_error(exc)
    return render_error(exc)


def _handle_http_exception(exc: HTTPException) -> Response:
    response = render_error(as_snakes_error(exc))
    if isinstance(exc, WerkzeugMethodNotAllowed) and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def _handle_model_load_error(exc: ModelLoadError) -> Response:
    # The message names a server path: log it, never send it.
    log.error("model unavailable (request %s): %s", g.get("request_id", "-"), exc)
    return render_error(ModelUnavailable("The model is not available right now. Try again later."))


def _is_broken_body(exc: Exception) -> bool:
    """Tell whether ``exc`` is the WSGI server failing to read a malformed body (bad chunking…)."""
    try:
        from gunicorn.http.errors import NoMoreData, ParseException
    except ImportError:  # another server: its own errors reach the generic 500
        return False
    return isinstance(exc, ParseException | NoMoreData)


def _handle_unexpected(exc: Exception) -> Response:
    if _is_broken_body(exc):  # the client's fault, not ours: a 400 and one log line
        log.info("malformed request body (request %s): %s", g.get("request_id", "-"), type(exc).__name__)
        return render_error(BadRequest("The request body is malformed."))
    log.exception("unexpected error (request %s)", g.get("request_id", "-"))
    error = SnakesError("Something went wrong on our side. Quote the request id if you report it.")
    return render_error(error)
