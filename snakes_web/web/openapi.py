"""The API described once: the OpenAPI 3.1 document at /api/v1/openapi.json and the reference page built from it.

The reference page is rendered on the server from the same dictionary (Jinja, static CSS), so it needs
no JavaScript, no CDN and no second copy of the description, and it reads the same with scripts off.
"""
from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, render_template
from markupsafe import Markup, escape

from snakes_web.feedback.store import VERDICTS
from snakes_web.imaging.fetch import MAX_URL_LENGTH
from snakes_web.imaging.images import ACCEPTED_WORDS
from snakes_web.version import __version__

from . import TEMPLATES
from .feedback import MAX_OTHER
from .request_id import SANE_PATTERN

bp = Blueprint("openapi", __name__, template_folder=TEMPLATES)

JSON = "application/json"
PROBLEM = "application/problem+json"


def _ref(name: str) -> dict[str, str]:
    """Point at a schema in components."""
    return {"$ref": f"#/components/schemas/{name}"}


def _problem(description: str, retry_after: bool = False) -> dict[str, Any]:
    """Describe an error response: problem+json with the request id header (and ``Retry-After``)."""
    headers: dict[str, Any] = {"X-Request-ID": {"$ref": "#/components/headers/RequestId"}}
    if retry_after:
        headers["Retry-After"] = {"description": "Seconds to wait before retrying (when `overloaded`).",
                                  "schema": {"type": "integer", "minimum": 1}}
    return {"description": description, "headers": headers, "content": {PROBLEM: {"schema": _ref("Problem")}}}


def _ok(description: str, media_type: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Describe a successful response with the request id header."""
    return {"description": description, "headers": {"X-Request-ID": {"$ref": "#/components/headers/RequestId"}},
            "content": {media_type: {"schema": schema}}}


def _html(description: str) -> dict[str, Any]:
    """Describe an HTML page response."""
    return _ok(description, "text/html", {"type": "string"})


def _page_or_problem(description: str) -> dict[str, Any]:
    """Describe an error answered as a page, or as problem+json to a client that asks for JSON."""
    response = _problem(description, retry_after=True)
    response["content"]["text/html"] = {"schema": {"type": "string"}}
    return response


_REQUEST_ID_PARAM = {"$ref": "#/components/parameters/RequestId"}
_URL = {"type": "string", "maxLength": MAX_URL_LENGTH, "description": "An http(s) URL of an image.",
        "examples": ["https://example.org/snake.jpg"]}
_FILE = {"type": "string", "contentMediaType": "application/octet-stream",
         "description": f"An image file ({ACCEPTED_WORDS}); the format is read from the bytes."}

_PREDICT_ERRORS = {
    "400": _problem("No file and no URL, both, an empty file, bad JSON, a bad `top` or `explain`, or a URL that is not "
                    "http(s), does not resolve, or points to a private address."),
    "408": _problem("The request arrived too slowly (below the minimum rate after the grace period, or over "
                    "the total time limit); send it again on a better connection."),
    "413": _problem("The upload, the download or the image's pixel count is over its limit, or more photos "
                    "than `SNAKES_MAX_FILES` came in one request."),
    "415": _problem("The file is not an image we decode (the problem's `detected` field may say what it is), "
                    "the URL is not an image, or the body is neither a form nor JSON."),
    "422": _problem("The image is truncated or corrupt."),
    "500": _problem("Something went wrong on the server; quote the request id."),
    "502": _problem("The image URL's server failed or could not be reached."),
    "503": _problem("The model could not be loaded (`model-unavailable`), or the server is busy "
                    "(`overloaded`: too many requests wait for the model); retry after `Retry-After` seconds.",
                    retry_after=True),
    "504": _problem("The image URL's server was too slow."),
}


# --- issue 18: feedback ---
_FEEDBACK_FIELDS = {
    "receipt": {"type": "string", "maxLength": 4096,
                "description": "The `feedback_receipt` of the prediction's answer (`POST /api/v1/predict?feedback=1`;"
                               " valid for `SNAKES_FEEDBACK_TOKEN_TTL` seconds, answered once)."},
    "verdict": {"type": "string", "enum": list(VERDICTS),
                "description": "`confirm`: the top prediction is right; `correct`: the right one is `label`; "
                               "`none`: none of the model's labels (`other` may say what it is)."},
    "label": {"type": "string", "description": "For `correct`: one of the model's labels (`GET /api/v1/model`)."},
    "other": {"type": "string", "maxLength": MAX_OTHER, "description": "For `none`: what it is, in your words."},
}
_PHOTO_AGAIN = ("The photo comes back with the answer, exactly as classified (the receipt names its SHA-256): "
                "`file` (multipart: the same bytes), `url` (the same address, fetched again under the same rules) "
                "or `image` (base64: the result page's preview).")
_FEEDBACK_BODY = {"type": "object", "description": _PHOTO_AGAIN, "required": ["receipt", "verdict"],
                  "properties": {**_FEEDBACK_FIELDS, "url": _URL,
                                 "image": {"type": "string", "contentEncoding": "base64"}}}
_FEEDBACK_MULTIPART = {"type": "object", "description": _PHOTO_AGAIN, "required": ["receipt", "verdict"],
                       "properties": {**_FEEDBACK_FIELDS, "url": _URL, "file": _FILE,
                                      "image": {"type": "string", "contentEncoding": "base64"}}}
_FEEDBACK_MULTIPART_CONTENT = {"schema": _FEEDBACK_MULTIPART,
                               "encoding": {"file": {"contentType": "image/*, application/octet-stream"}}}
_FEEDBACK_ERRORS = {
    "400": _problem("No or a bad receipt (not ours, or too old; an old-style `token` is refused, saying so), an "
                    f"unknown `verdict`, a `label` that is not one of the model's, `other` over {MAX_OTHER} "
                    "characters, no photo, or a photo that is not the one the receipt was given for."),
    "404": _problem("Feedback is turned off on this server (`SNAKES_FEEDBACK=false`)."),
    "409": _problem("Feedback on this prediction was already stored (`already-sent`): each receipt is answered "
                    "once, however it is encoded."),
    "413": _problem("The body, the download or the photo's pixels are over their limits."),
    "415": _problem("The body is neither JSON nor a form, or the photo is not an image we decode."),
    "422": _problem("The photo is truncated or corrupt."),
    "429": _problem("This client sent more feedback than `SNAKES_FEEDBACK_RATE_LIMIT` allows (`rate-limited`); "
                    "retry after `Retry-After` seconds.", retry_after=True),
    "500": _problem("Something went wrong on the server; quote the request id."),
    "503": _problem("The feedback database cannot be reached or feedback is misconfigured "
                    "(`storage-unavailable`), or the server is busy (`overloaded`, `memory-busy`).",
                    retry_after=True),
    "507": _problem("The feedback store is full (`quota-full`: `SNAKES_FEEDBACK_MAX_ITEMS` or "
                    "`SNAKES_FEEDBACK_MAX_BYTES`); nothing was stored."),
}


def document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of every route the app serves."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "snakes-web",
            "version": __version__,
            "summary": "Which snake is this, or is it not a snake? An image classifier over HTTP.",
            "description": (
                "Send a photo (or the URL of one) and get every class of the loaded model with its "
                "probability, most likely first. Errors are `application/problem+json` (RFC 9457). "
                "Every response carries `X-Request-ID` (yours, when you send a sane one). Browsers on "
                "the origins in `SNAKES_CORS_ORIGINS` (default any) may call `/api/*`; `X-Request-ID` "
                "is exposed to them."),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": "api", "description": "The JSON API for programs and other sites' frontends."},
            {"name": "pages", "description": "The HTML pages people use."},
            {"name": "operations", "description": "Probes and metrics for whoever runs the server."},
        ],
        "paths": {
            "/api/v1/predict": {"post": {
                "tags": ["api"], "operationId": "predict", "summary": "Classify an image file or an image URL",
                "description": "Send exactly one of a file (`multipart/form-data` field `file`) or a URL "
                               "(form field `url`, or JSON `{\"url\": ...}`). Or send several photos at once: "
                               "several `file` parts, or several `url` fields (not both kinds), at most "
                               "`SNAKES_MAX_FILES` (default 8) and the whole body under `SNAKES_MAX_UPLOAD_BYTES`; "
                               "the answer is then `BatchResult`, one entry per photo in the order sent, a photo "
                               "that failed being its own problem document (the others still get answers).",
                "parameters": [
                    {"name": "top", "in": "query", "required": False,
                     "description": "Return only the `top` most likely classes (all when absent).",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {"name": "explain", "in": "query", "required": False,
                     "description": "Add a `heatmap` of where the model looked: `top` for the most likely class, "
                                    "or one of the model's labels (`GET /api/v1/model`). Exact class activation "
                                    "maps where the network allows it (global pooling then a linear layer), "
                                    "occlusion otherwise (then it costs about 50 forward passes). Absent: no "
                                    "heatmap, and no extra cost.",
                     "schema": {"type": "string", "examples": ["top", "horned viper"]}},
                    {"name": "feedback", "in": "query", "required": False,
                     "description": "`1`: add a `feedback_receipt` to the answer (to each answer of a batch), "
                                    "for \"Is this right?\" (`POST /api/v1/feedback`). A few hundred bytes; "
                                    "absent: no receipt and no extra cost.",
                     "schema": {"type": "string", "enum": ["1", "0", "true", "false"]}},
                    _REQUEST_ID_PARAM],
                "requestBody": {"required": True, "content": {
                    "multipart/form-data": {"schema": {
                        "type": "object", "properties": {
                            "file": {"oneOf": [_FILE, {"type": "array", "items": _FILE, "minItems": 1,
                                                       "maxItems": 64}]},
                            "url": {"oneOf": [_URL, {"type": "array", "items": _URL, "minItems": 1,
                                                     "maxItems": 64}]}},
                        "description": "Either `file` or `url`, not both; several of one kind for a batch."},
                        "encoding": {"file": {"contentType": "image/*, application/octet-stream"}}},
                    "application/x-www-form-urlencoded": {"schema": {
                        "type": "object", "properties": {"url": _URL}, "required": ["url"]}},
                    JSON: {"schema": {"type": "object", "properties": {"url": _URL}, "required": ["url"]}},
                }},
                "responses": {"200": _ok("Every class (or the top `k`), most likely first, and the model; "
                                         "for several photos, one such result (or problem) each.",
                                         JSON, {"oneOf": [_ref("PredictResult"), _ref("BatchResult")]}),
                              **_PREDICT_ERRORS},
            }},
            "/api/v1/feedback": {"post": {
                "tags": ["api"], "operationId": "feedback", "summary": "Say whether a prediction was right",
                "description": "Only now is the photo stored (re-encoded, no metadata): send the prediction's "
                               "`feedback_receipt` with `confirm`, `correct` and a `label`, or `none`, and the "
                               "photo again. The receipt is checked before anything is fetched or decoded.",
                "parameters": [_REQUEST_ID_PARAM],
                "requestBody": {"required": True, "content": {
                    JSON: {"schema": _FEEDBACK_BODY},
                    "application/x-www-form-urlencoded": {"schema": _FEEDBACK_BODY},
                    "multipart/form-data": _FEEDBACK_MULTIPART_CONTENT}},
                "responses": {"201": _ok("Stored.", JSON, _ref("FeedbackStored")), **_FEEDBACK_ERRORS},
            }},
            "/api/v1/model": {"get": {
                "tags": ["api"], "operationId": "model", "summary": "Describe the loaded model and its labels",
                "parameters": [_REQUEST_ID_PARAM],
                "responses": {"200": _ok("The model.", JSON, _ref("ModelInfo")),
                              "503": _PREDICT_ERRORS["503"]},
            }},
            "/api/v1/openapi.json": {"get": {
                "tags": ["api"], "operationId": "openapi", "summary": "This document",
                "parameters": [_REQUEST_ID_PARAM],
                "responses": {"200": _ok("The OpenAPI 3.1 document.", JSON, {"type": "object"})},
            }},
            "/api/v1/docs": {"get": {
                "tags": ["api"], "operationId": "docs", "summary": "This document as an HTML page",
                "parameters": [_REQUEST_ID_PARAM],
                "responses": {"200": _html("The API reference.")},
            }},
            "/": {
                "get": {"tags": ["pages"], "operationId": "page", "summary": "The page with the form",
                        "parameters": [_REQUEST_ID_PARAM],
                        "responses": {"200": _html("The form, the model and its labels."),
                                      "503": _html("The model could not be loaded.")}},
                "post": {"tags": ["pages"], "operationId": "classifyPage",
                         "summary": "Classify a posted photo or URL and render the result (works without JavaScript)",
                         "parameters": [_REQUEST_ID_PARAM],
                         "requestBody": {"required": True, "content": {
                             "multipart/form-data": {"schema": {
                                 "type": "object", "properties": {"file": _FILE, "url": _URL}}},
                             "application/x-www-form-urlencoded": {"schema": {
                                 "type": "object", "properties": {"url": _URL}}}}},
                         "responses": {"200": _html("The result page."),
                                       "4XX": _html("The form again, with the problem explained."),
                                       "5XX": _html("The form again, with the problem explained.")}},
            },
            "/feedback": {"post": {
                "tags": ["pages"], "operationId": "feedbackPage",
                "summary": "The result page's \"Is this right?\" form (works without JavaScript)",
                "parameters": [_REQUEST_ID_PARAM],
                "requestBody": {"required": True, "content": {
                    "application/x-www-form-urlencoded": {"schema": _FEEDBACK_BODY},
                    "multipart/form-data": _FEEDBACK_MULTIPART_CONTENT}},
                "responses": {"200": _html("Thank you: what was stored."),
                              "4XX": _html("The problem explained (429 and 507 as for the API)."),
                              "5XX": _html("The problem explained.")},
            }},
            "/owner": {"get": {
                "tags": ["pages"], "operationId": "owner",
                "summary": "The owner page: recent feedback and the predicted-vs-corrected table",
                "description": "404 unless `SNAKES_OWNER_TOKEN` is set; then that token is the password (HTTP "
                               "Basic, any user) or a Bearer token.",
                "parameters": [_REQUEST_ID_PARAM],
                "responses": {"200": _html("Recent feedback with thumbnails, and the confusion table."),
                              "401": _html("No or a wrong token."),
                              "404": _html("The page is off."),
                              "429": _page_or_problem("Too many failed sign-ins from this client or from "
                                                      "everyone (`SNAKES_OWNER_RATE_LIMIT`, "
                                                      "`SNAKES_OWNER_GLOBAL_RATE_LIMIT`): refused, the right "
                                                      "token too, until `Retry-After`."),
                              "503": _page_or_problem("The sign-in counts cannot be read: the page stays shut.")},
            }},
            "/healthz": {"get": {
                "tags": ["operations"], "operationId": "healthz", "summary": "Liveness: the process serves requests",
                "parameters": [_REQUEST_ID_PARAM],
                "responses": {"200": _ok("Alive.", JSON, _ref("Health"))},
            }},
            "/readyz": {"get": {
                "tags": ["operations"], "operationId": "readyz",
                "summary": "Readiness: the model is loaded and has made one prediction",
                "parameters": [_REQUEST_ID_PARAM],
                "responses": {"200": _ok("Ready.", JSON, _ref("Ready")), "503": _problem(
                    "The model could not be loaded (`model-unavailable`), the server got SIGTERM and is "
                    "draining (`shutting-down`: send new requests elsewhere), or this worker's inference "
                    "semaphores were removed (`gate-lost`: it is being replaced).", retry_after=True)},
            }},
            "/metrics": {"get": {
                "tags": ["operations"], "operationId": "metrics", "summary": "Prometheus metrics, summed over workers",
                "description": "Only with `SNAKES_METRICS_PORT=0`. By default gunicorn's master serves them on "
                               "that port (9464), never on the app's.",
                "parameters": [_REQUEST_ID_PARAM],
                "responses": {"200": _ok("Prometheus text format.", "text/plain", {"type": "string"}),
                              "404": _html("Not on this port: scrape `SNAKES_METRICS_PORT`.")},
            }},
        },
        "components": {
            "parameters": {"RequestId": {
                "name": "X-Request-ID", "in": "header", "required": False,
                "description": "Your id for this request; echoed back when it matches the pattern, else replaced.",
                "schema": {"type": "string", "pattern": SANE_PATTERN}}},
            "headers": {"RequestId": {
                "description": "The id of this request, also in the access log and in problem documents.",
                "required": True, "schema": {"type": "string", "pattern": SANE_PATTERN}}},
            "schemas": {
                "Prediction": {"type": "object", "required": ["label", "probability"], "properties": {
                    "label": {"type": "string", "examples": ["horned viper"]},
                    "probability": {"type": "number", "minimum": 0, "maximum": 1}}},
                "ModelSummary": {"type": "object", "required": ["name", "backend", "labels"], "properties": {
                    "name": {"type": "string"}, "backend": {"type": "string", "examples": ["fastai"]},
                    "labels": {"type": "integer", "minimum": 1, "description": "How many classes the model has."},
                    "input_size": {"type": ["array", "null"], "items": {"type": "integer"},
                                   "description": "[height, width] the model sees, when known."},
                    "multi_label": {"const": True, "description": "Present for a multi-label model (sigmoid, "
                                                                  "fastai's MultiCategoryBlock): see `threshold`."},
                    "threshold": {"type": "number", "minimum": 0, "maximum": 1,
                                  "description": "Multi-label models: a label is named when its probability "
                                                 "is above this (fastai's `predict`)."}}},
                "PredictResult": {"type": "object", "required": ["predictions", "verdict", "says", "model"],
                                  "properties": {
                    "predictions": {"type": "array", "items": _ref("Prediction"),
                                    "description": "Most likely first (after the deployment prior, when one is "
                                                   "set: see `priors` in `GET /api/v1/model`)."},
                    "verdict": {"enum": ["sure", "unsure", "could-be"],
                                "description": "How sure the answer is. `could-be`: the top answer is \"not a "
                                               "snake\" but a snake species reached `SNAKES_COULD_BE_ABOVE` (see "
                                               "`could_be`); `unsure`: the top probability is under "
                                               "`SNAKES_UNSURE_BELOW`; else `sure`."},
                    "says": {"type": "string", "examples": ["Probably not a snake — but it could be a sea snake "
                                                            "(8%)."],
                             "description": "The verdict in one sentence, as the page says it."},
                    "could_be": _ref("Prediction"),
                    "about": {"type": "object", "additionalProperties": _ref("LabelEntry"),
                              "description": "What the answer's labels mean (the top one, and the `could_be` "
                                             "species), from the model's labels file; absent without one."},
                    "model": _ref("ModelSummary"),
                    "heatmap": _ref("Heatmap"),
                    "labels": {"type": "array", "items": {"type": "string"},
                               "description": "Multi-label models only: every label whose probability is above "
                                              "the model's `threshold` (possibly none), as fastai's `predict` "
                                              "names them."},
                    "feedback_receipt": {"type": "string",
                                         "description": "Only with `?feedback=1`: send it, with the photo, to "
                                                        "`POST /api/v1/feedback` to say whether this was right "
                                                        "(absent when feedback is off or not available now)."}}},
                "BatchResult": {"type": "object", "required": ["results"], "properties": {
                    "results": {"type": "array", "description": "One entry per photo, in the order sent.",
                                "items": {"oneOf": [_ref("PredictResult"), _ref("Problem")]}}}},
                "Heatmap": {
                    "type": "object", "required": ["label", "method", "png", "grid", "box"],
                    "description": "Where the model looked for one class (only with `?explain=`). `png` is "
                                   "ready to lay over the photo: the photo's shape, the heatmap on the part the "
                                   "model saw (after its resize and crop), clear elsewhere, coloured from dark "
                                   "purple (least) to pale yellow (most). `grid` is what it was drawn from.",
                    "properties": {
                        "label": {"type": "string"},
                        "method": {"type": "string", "enum": ["cam", "occlusion"],
                                   "description": "`cam`: exact class activation map; `occlusion`: how much "
                                                  "covering each region lowers the class's probability."},
                        "png": {"type": "string", "pattern": "^data:image/png;base64,",
                                "description": "A PNG data URL, for an `<img src>` over the photo."},
                        "grid": {"type": "array", "items": {"type": "array", "items": {
                                     "type": "number", "minimum": 0, "maximum": 1}},
                                 "description": "Rows top to bottom, 0 (least) to 1 (most)."},
                        "box": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
                                "description": "Where the grid lies on the photo: left, top, right, bottom "
                                               "as fractions of its width and height."}}},
                "FeedbackStored": {"type": "object", "required": ["stored", "id", "verdict", "predicted"],
                                   "properties": {
                                       "stored": {"const": True}, "id": {"type": "integer"},
                                       "verdict": _FEEDBACK_FIELDS["verdict"],
                                       "predicted": {"type": "string", "description": "The model's top label."},
                                       "label": {"type": ["string", "null"],
                                                 "description": "The right label; null for `none`."},
                                       "other": {"type": ["string", "null"]}}},
                "ModelInfo": {"allOf": [_ref("ModelSummary"), {
                    "type": "object", "required": ["vocab"], "properties": {
                        "vocab": {"type": "array", "items": {"type": "string"},
                                  "description": "Every label, in the model's order."},
                        "priors": {"type": ["object", "null"], "properties": {
                            "training": {"type": "object", "additionalProperties": {"type": "number"}},
                            "deployment": {"type": "object", "additionalProperties": {"type": "number"}},
                            "source": {"type": "string"}},
                            "description": "The class priors the probabilities are corrected for (label shift): "
                                           "the training prior, the deployment prior and where it was set; "
                                           "null when the model's own probabilities are served."},
                        "labels_file": {"type": ["object", "null"], "properties": {
                            "origin": {"type": "string"}, "sources": {"type": "array", "items": {"type": "string"}},
                            "entries": {"type": "object", "additionalProperties": _ref("LabelEntry")}},
                            "description": "The model's labels file: where it was read, its sources, every entry."}
                    }}]},
                "LabelEntry": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string", "examples": ["Sea snake"]},
                    "scientific_name": {"type": "string", "examples": ["Hydrophiinae"]},
                    "description": {"type": "string"},
                    "warning": {"enum": ["none", "harmless", "caution", "venomous"],
                                "description": "`venomous`: the page shows \"Venomous — keep your distance\"; "
                                               "`caution`: \"Can bite or injure — do not handle\"."},
                    "link": {"type": "string", "format": "uri"}}},
                "Problem": {"type": "object", "required": ["type", "title", "status", "detail", "request_id"],
                            "properties": {
                                "type": {"type": "string", "examples": ["urn:snakes-web:problem:too-large"]},
                                "title": {"type": "string"},
                                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                                "detail": {"type": "string", "description": "A plain explanation for people."},
                                "request_id": {"type": "string"},
                                "detected": {"type": "string", "examples": ["application/pdf"],
                                             "description": "For 415: the media type the file was "
                                                            "recognised as instead, when it was."}}},
                "Health": {"type": "object", "required": ["status"],
                           "properties": {"status": {"const": "ok"}}},
                "Ready": {"type": "object", "required": ["status", "model"],
                          "properties": {"status": {"const": "ready"}, "model": {"type": "string"}}},
            },
        },
    }


@bp.get("/api/v1/openapi.json")
def openapi_json() -> dict[str, Any]:
    """Serve the OpenAPI document."""
    return document()


@bp.get("/api/v1/docs")
def reference() -> str:
    """Render the OpenAPI document as a readable page."""
    doc = document()
    return render_template("api_docs.html", doc=doc, resolve=lambda node: resolve(doc, node), type_of=type_of,
                           prose=prose)


def prose(text: str) -> Markup:
    """Escape ``text`` and show its `backticked` parts as code, as the document's Markdown means."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (``#/components/...``) to what it points at."""
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def type_of(schema: dict[str, Any]) -> str:
    """Say a schema's type in a few words: "array of Prediction", "string (binary)", "integer ≥ 1"."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[1]
    if "const" in schema:
        return f'"{schema["const"]}"'
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if "items" in schema:
        kind = f"{kind} of {type_of(schema['items'])}"
    if "contentMediaType" in schema:
        kind = f"{kind} (binary)"
    if "minimum" in schema:
        kind = f"{kind} ≥ {schema['minimum']}"
    return str(kind)
