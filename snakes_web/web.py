"""The HTML blueprint: the page with the form, and the server-rendered result."""
from __future__ import annotations

import base64
from typing import Any

from flask import Blueprint, current_app, render_template, request
from werkzeug.exceptions import RequestEntityTooLarge

from .classify import classify_request
from .errors import error_headers, log_server_error
from .exceptions import SnakesError
from .predictor import holder_of
from .results import NEGATIVE_LABEL, result_payload

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")


@bp.get("/")
def index() -> str:
    """Show the form, and which model answers."""
    return _page(model=holder_of(current_app).get().describe(), url="")


@bp.post("/")
def classify() -> tuple[str, int, dict[str, str]]:
    """Classify the posted photo or URL and render the result, or the form with the error."""
    model = holder_of(current_app).get().describe()
    try:
        classified = classify_request(current_app, request, allow_json=False, preview=True)
    except SnakesError as error:
        log_server_error(error)
        return _page(model=model, url=_posted_url(), error=error), error.status, error_headers(error)
    result = result_payload(classified.predictions, model)
    preview = base64.b64encode(classified.preview or b"").decode("ascii")
    return _page(model=model, url=_posted_url(), result=result, preview=preview,
                 feedback_token=classified.feedback_token), 200, {}


def _page(**context: Any) -> str:
    """Render the page with the settings its script and its notes need."""
    return render_template("index.html", unsure_below=current_app.config["UNSURE_BELOW"],
                           negative_label=NEGATIVE_LABEL, **context)


def _posted_url() -> str:
    """Return the posted URL field to show again in the form ("" when the body could not be read)."""
    try:
        return request.form.get("url", "")
    except RequestEntityTooLarge:
        return ""
