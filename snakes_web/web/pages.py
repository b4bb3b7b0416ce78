"""The HTML blueprint: the page with the form, and the server-rendered result."""
from __future__ import annotations

import base64
from typing import Any

from flask import Blueprint, current_app, render_template, request
from werkzeug.exceptions import RequestEntityTooLarge

from snakes_web.exceptions import BadRequest, MemoryBusy, SnakesError
from snakes_web.model.loader import holder_of

from . import STATIC, TEMPLATES
from .batch import classify_batch, is_batch
from .classify import Classified, classify_data, classify_request
from .errors import error_headers, log_server_error
from .examples import EXAMPLES, example_bytes
from .inputs import FORMS
from .results import NEGATIVE_LABEL, Doubt, ExplainRequest, answers_that_matter, result_payload

bp = Blueprint("web", __name__, template_folder=TEMPLATES, static_folder=STATIC,
               static_url_path="/static")


@bp.get("/")
def index() -> str:
    """Show the form, and which model answers."""
    return _page(model=holder_of(current_app).get().describe(), url="")


@bp.post("/")
def classify() -> tuple[str, int, dict[str, str]]:
    """Classify the posted photo(s), URL or example and render a card each, or the form with the error."""
    model = holder_of(current_app).get().describe()
    try:
        if is_batch(request):
            outcomes = classify_batch(current_app, request, preview=True, explain=_explain(), receipt=True)
            for item in outcomes:
                if isinstance(item, SnakesError):
                    log_server_error(item)
            cards = [_card(item, model) for item in outcomes]
        else:
            cards = [_card(_classify_one(), model)]
    except SnakesError as error:
        log_server_error(error)
        return _page(model=model, url=_posted_url(), error=error), error.status, error_headers(error)
    return _page(model=model, url=_posted_url(), cards=cards), 200, {}


def _explain() -> ExplainRequest | None:
    """Return the top class's heatmap request when the form's "where the model looked" box is ticked."""
    return ExplainRequest(None) if _form_field("explain") else None


def _explains_cheaply() -> bool:
    """Tell whether the model maps where it looked in the same pass (CAM), not by occlusion (many passes)."""
    return getattr(holder_of(current_app).get(), "explains_with", "") == "cam"


def _classify_one() -> Classified:
    """Classify the one posted photo or URL, or the example photo the visitor clicked."""
    example = _form_field("example")
    if example:
        data = example_bytes(example)
        if data is None:
            raise BadRequest("There is no example photo of that name.")
        return classify_data(current_app, data, preview=True, explain=_explain(), receipt=True)
    return classify_request(current_app, request, allow_json=False, preview=True, explain=_explain(), receipt=True)


def _card(item: Classified | SnakesError, model: dict[str, Any]) -> dict[str, Any]:
    """Return what one result card shows: the answer (or the problem) and the preview."""
    if isinstance(item, SnakesError):
        return {"error": item}
    result = result_payload(item.predictions, model, Doubt.of(current_app.config), heatmap=item.heatmap)
    shown, rest = answers_that_matter(result["predictions"], current_app.config["SHOW_ABOVE"])
    preview = base64.b64encode(item.preview or b"").decode("ascii")
    return {"result": result, "shown": shown, "rest": rest, "preview": preview, "receipt": item.receipt}


def _page(**context: Any) -> str:
    """Render the page with the settings its script and its notes need."""
    return render_template("index.html", unsure_below=current_app.config["UNSURE_BELOW"],
                           negative_label=NEGATIVE_LABEL, show_above=current_app.config["SHOW_ABOVE"],
                           max_files=current_app.config["MAX_FILES"], examples=EXAMPLES,
                           explain_by_default=_explains_cheaply(), **context)


def _posted_url() -> str:
    """Return the posted URL field to show again in the form ("" when the body could not be read)."""
    return _form_field("url")


def _form_field(name: str) -> str:
    """Return a posted form field: "" when absent, not a form, or not to be read (classify reports the 413/503)."""
    if request.mimetype not in FORMS:
        return ""
    try:
        return request.form.get(name, "")
    except (RequestEntityTooLarge, MemoryBusy):
        return ""
