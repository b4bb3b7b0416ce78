"""snakes-web: serve a fastai image classifier as a web page and a JSON API.

This module is the factory only. The layers below it, each a sub-package that imports only those under
it: ``web`` (blueprints and middleware), ``feedback`` and ``serving`` (gunicorn), ``model`` (image →
predictions), ``imaging`` (bytes or URL → image), then ``config``, ``exceptions``, ``extensions``.
``tools`` (the command line) sits on top and may use them all.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from .version import __version__

__all__ = ["__version__", "create_app"]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Assemble the app: settings, the predictor, request ids, errors, then the blueprints."""
    from snakes_web.config import load_settings

    app = Flask(__name__, static_folder=None)
    app.config.from_mapping(load_settings(overrides=config))
    register_limits(app)
    register_predictor(app)
    register_gate(app)
    register_budget(app)
    register_shutdown(app)
    register_metrics(app)
    register_request_ids(app)
    register_bodies(app)
    register_cors(app)
    register_error_handlers(app)
    register_security_headers(app)
    register_blueprints(app)
    register_feedback(app)
    register_proxies(app)
    return app


def register_limits(app: Flask) -> None:
    """Cap request bodies and form parts (Werkzeug answers 413 past them); keep uploads in memory."""
    from snakes_web.web import multipart
    from snakes_web.web.inputs import InMemoryRequest

    multipart.install()  # the boundary found with bytes.find, not a regex scan of the last 64 KB
    app.request_class = InMemoryRequest
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_UPLOAD_BYTES"]
    # Text fields: a URL, not a novel. Werkzeug's multipart decoder also checks this against each
    # 64 KB chunk it reads plus the bytes it holds back, file parts included: at 64 KB every upload
    # over 64 KB got a 413. Twice the chunk size caps text fields and lets files through. The largest
    # field we send ourselves, the page's 320 px preview posted back by its script, stays under 100 KB of
    # base64 whatever FEEDBACK_IMAGE_* say (tests/test_feedback.py); url-encoded forms (the page without
    # JavaScript) are not held to this by Werkzeug at all, only to MAX_CONTENT_LENGTH.
    app.config["MAX_FORM_MEMORY_SIZE"] = 256 * 1024
    app.config["MAX_FORM_PARTS"] = 16 + app.config["MAX_FILES"]  # a batch of photos is one part each


def register_predictor(app: Flask) -> None:
    """Attach the one predictor holder; the model itself loads on first use in each worker."""
    from snakes_web.model.loader import PredictorHolder, attach

    attach(app.extensions, PredictorHolder(app.config, predictor=app.config.get("PREDICTOR")))


def register_gate(app: Flask) -> None:
    """Attach the inference gate: the slots gunicorn's master shares between workers, else this process's."""
    import os

    from snakes_web.serving.gate import attach, gate_from_environment, size_of

    size = size_of(1, app.config["QUEUE_LENGTH"], app.config["QUEUE_TIMEOUT"])
    attach(app.extensions, gate_from_environment(os.environ, size))


def register_budget(app: Flask) -> None:
    """Attach the worker's input budget: the bytes request bodies and downloads may hold at once (503 past it)."""
    from snakes_web.serving.budget import InputBudget, attach, budget_size

    attach(app.extensions, InputBudget(budget_size(app.config)))


def register_bodies(app: Flask) -> None:
    """Take each request's body from the input budget before it is read (after request ids: a 503 carries one)."""
    from snakes_web.web.bodies import register_bodies as register

    register(app)


def register_shutdown(app: Flask) -> None:
    """Attach the server's stop flag (raised on SIGTERM under gunicorn: /readyz then answers 503)."""
    from snakes_web.serving.shutdown import attach, server_flag

    attach(app.extensions, server_flag())


def register_metrics(app: Flask) -> None:
    """Count and time requests and the model, served at /metrics (first, so it times everything)."""
    if app.config["METRICS"]:
        from snakes_web.web.metrics import register_metrics as register

        register(app)


def register_cors(app: Flask) -> None:
    """Let the configured browser origins call /api/* (after request ids, so preflights carry one)."""
    from snakes_web.web.cors import register_cors as register

    register(app)


def register_request_ids(app: Flask) -> None:
    """Tag every request and response with an id."""
    from snakes_web.web.request_id import register_request_ids as register

    register(app)


def register_error_handlers(app: Flask) -> None:
    """Render every error as problem+json or HTML from the same information."""
    from snakes_web.web.errors import register_error_handlers as register

    register(app)


def register_security_headers(app: Flask) -> None:
    """Send security headers (CSP on pages) with every response; keep debug mode off."""
    from snakes_web.web.security import register_security_headers as register

    register(app)


def register_feedback(app: Flask) -> None:
    """Ask "Is this right?" under results: the feedback store, its rate limit and routes, the owner page."""
    from snakes_web.web.feedback import register_feedback as register
    from snakes_web.web.owner import register_owner

    register(app)
    register_owner(app)


def register_proxies(app: Flask) -> None:
    """Believe ``PROXY_HOPS`` proxies about the client's address (last: the outermost layer sees the headers first)."""
    from snakes_web.web.clients import register_proxies as register

    register(app)


def register_blueprints(app: Flask) -> None:
    """Register the HTML pages, the JSON API, its OpenAPI document and the health probes."""
    from snakes_web.web import api, health, openapi, pages

    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(health.bp)
