"""The HTML blueprint: the page with the form, and the server-rendered result."""
from __future__ import annotations

import base64

from flask import Blueprint, current_app, render_template, request
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import log_server_error
from .exceptions import SnakesError
from .images import thumbnail_jpeg
from .inputs import read_image
from .predictor import holder_of, needed_side
from .results import result_payload

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")


@bp.get("/")
def index() -> str:
    """Show the form, and which model answers."""
    return render_template("index.html", model=holder_of(current_app).get().describe(), url="")


@bp.post("/")
def classify() -> tuple[str, int]:
    """Classify the posted photo or URL and render the result, or the form with the error."""
    predictor = holder_of(current_app).get()
    model = predictor.describe()
    try:
        image = read_image(request, current_app.config, allow_json=False, min_side=needed_side(predictor))
        predictions = predictor.predict(image)
    except SnakesError as error:
        log_server_error(error)
        return render_template("index.html", model=model, url=_posted_url(), error=error), error.status
    url = _posted_url()
    result = result_payload(predictions, model)
    preview = base64.b64encode(thumbnail_jpeg(image)).decode("ascii")
    return render_template("index.html", model=model, url=url, result=result, preview=preview,
                           unsure_below=current_app.config["UNSURE_BELOW"]), 200


def _posted_url() -> str:
    """Return the posted URL field to show again in the form ("" when the body could not be read)."""
    try:
        return request.form.get("url", "")
    except RequestEntityTooLarge:
        return ""
