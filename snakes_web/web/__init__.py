"""The web layer: the blueprints ``create_app`` registers and the middleware around them.

Pages (``pages``), the JSON API (``api``, ``batch``), feedback and the owner's page, OpenAPI, health
probes and metrics; errors rendered as HTML or problem+json (``errors``), security headers, CORS and
request ids. Each view parses the request (``inputs``), calls the imaging and model layers
(``classify``) and renders the same results for HTML and JSON (``results``). The only layer that
imports Flask's request machinery; nothing below it imports it.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent
#: The page templates and static files sit beside the factory (``snakes_web/templates``, ``/static``).
TEMPLATES = _PACKAGE / "templates"
STATIC = _PACKAGE / "static"
