"""Security headers on every response, and debug mode kept off outside tests.

Pages carry no inline script or style, so the Content-Security-Policy can forbid both.
"""
from __future__ import annotations

import logging

from flask import Flask, Response

log = logging.getLogger(__name__)

#: The page's policy: everything from this origin only; images also as data:/blob: URLs (the
#: preview of the photo is a data: URL); no plugins, no <base>, forms post only here, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: Headers every response carries. no-referrer: nothing this app links to needs to know where a
#: visitor came from, and a page address should never leak to a third party.
ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def register_security_headers(app: Flask) -> None:
    """Add the security headers to every response, the CSP to every HTML one; force debug off."""
    keep_debug_off(app)
    # Flask hands every template the whole configuration (secret key, owner token, database URL) as
    # `config`: one careless edit from a leak. Templates get what their view passes, nothing more.
    app.jinja_env.globals.pop("config", None)

    @app.after_request
    def _security_headers(response: Response) -> Response:
        for name, value in ALWAYS.items():
            response.headers.setdefault(name, value)
        if response.mimetype == "text/html":
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response


def keep_debug_off(app: Flask) -> None:
    """Turn debug mode off unless the app is under test: FLASK_DEBUG=1 must not reach production."""
    if app.config.get("TESTING"):
        return
    if app.debug or app.config.get("DEBUG"):
        log.warning("debug mode was requested (DEBUG or FLASK_DEBUG); it is never on outside tests")
    app.debug = False
    app.config.update(DEBUG=False, PROPAGATE_EXCEPTIONS=False, TRAP_HTTP_EXCEPTIONS=False,
                      TRAP_BAD_REQUEST_ERRORS=False, EXPLAIN_TEMPLATE_LOADING=False)
