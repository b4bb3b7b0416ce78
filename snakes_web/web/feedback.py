"""The feedback blueprint: "Is this right?" answered from the page (a form post) or the API.

A prediction's answer carries a signed token with the re-encoded photo (``snakes_web.feedback.tokens``); only when
the visitor answers is the photo stored (``snakes_web.feedback.store``), within the quota and the per-client rate
limit (``snakes_web.feedback.ratelimit``: Flask-Limiter over the same database, so every worker shares the count).
"""
from __future__ import annotations

import logging
import threading
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Request, current_app, g, render_template, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from flask_limiter.util import get_remote_address
from PIL import Image
from sqlalchemy.exc import SQLAlchemyError

from snakes_web.exceptions import BadRequest, NotFound, RateLimited, StorageUnavailable, UnsupportedMediaType
from snakes_web.extensions import Slot
from snakes_web.feedback.database import Database
from snakes_web.feedback.ratelimit import SCHEME
from snakes_web.feedback.store import VERDICTS, FeedbackStore, NewFeedback, Quota
from snakes_web.feedback.tokens import KeptImage, issue, keep_image, redeem
from snakes_web.model.loader import holder_of
from snakes_web.model.predictor import Prediction

from . import TEMPLATES
from .errors import render_error
from .inputs import FORMS

log = logging.getLogger(__name__)
SECRET_NAME = "feedback-token-key"
MAX_OTHER = 100
MAX_TOKEN = 1_000_000
RETRY_AFTER_FAILURE = 30.0  # seconds before a database that would not open is tried again
STORAGE_DOWN = "Feedback cannot be stored right now. Please try again later."

bp = Blueprint("feedback", __name__, template_folder=TEMPLATES)


@dataclass
class Feedback:
    """The app's feedback parts: the store, its settings, and the token key (read once per process)."""

    store: FeedbackStore
    settings: Mapping[str, Any]
    limiter: Limiter | None = None
    _secret: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _failed_at: float = -RETRY_AFTER_FAILURE
    _warned: bool = False

    def secret(self) -> str:
        """Return the token key: ``SECRET_KEY``, else the one kept in the database for every worker.

        Raises ``StorageUnavailable`` when the database cannot be opened, and then, for a while, at once
        (a broken data folder must not cost every prediction a failed attempt).
        """
        if not self._secret:
            with self._lock:
                if not self._secret:
                    if time.monotonic() - self._failed_at < RETRY_AFTER_FAILURE:
                        raise StorageUnavailable(STORAGE_DOWN)
                    try:
                        self._secret = self.settings["SECRET_KEY"] or self.store.secret(SECRET_NAME)
                    except (SQLAlchemyError, OSError) as exc:
                        self._failed_at = time.monotonic()
                        if not self._warned:
                            self._warned = True
                            log.warning("feedback is unavailable: the database %s cannot be opened (%s: %s)",
                                        self.store.database.describe(), type(exc).__name__, exc)
                        raise StorageUnavailable(STORAGE_DOWN) from None
        return self._secret

    @property
    def quota(self) -> Quota:
        """Return the storage quota."""
        return Quota(self.settings["FEEDBACK_MAX_ITEMS"], self.settings["FEEDBACK_MAX_BYTES"])


#: Where ``register_feedback`` keeps the app's ``Feedback``: ``feedback_of(app)``.
SLOT: Slot[Feedback] = Slot("snakes_feedback")
feedback_of = SLOT.of


def register_feedback(app: Flask) -> None:
    """Attach the store, the rate limit and the feedback routes (which say 404 when feedback is off)."""
    store = FeedbackStore(Database.from_settings(app.config))
    service = Feedback(store, app.config)
    SLOT.attach(app.extensions, service)
    app.register_blueprint(bp)
    if not app.config["FEEDBACK"]:
        return
    storage = app.config["RATE_LIMIT_STORAGE"] or f"{SCHEME}://"
    options: dict[str, Any] = {} if app.config["RATE_LIMIT_STORAGE"] else {"database": store.database}
    service.limiter = Limiter(get_remote_address, app=app, storage_uri=storage, storage_options=options,
                              strategy="fixed-window", key_prefix="feedback",
                              swallow_errors=True)  # a database outage is the store's 503, not the limiter's 500
    if app.config["FEEDBACK_RATE_LIMIT"].strip():
        # One count for the page's form and the API together (a blueprint limit would count each route apart).
        service.limiter.shared_limit(app.config["FEEDBACK_RATE_LIMIT"], scope="feedback", methods=["POST"])(bp)
    app.register_error_handler(RateLimitExceeded, _rate_limited)


# --- the token a prediction carries ---------------------------------------------------------------

def kept_image(app: Flask, image: Image.Image) -> KeptImage | None:
    """Re-encode the classified image for a feedback token (None when feedback is off)."""
    if not app.config["FEEDBACK"]:
        return None
    return keep_image(image, app.config["FEEDBACK_IMAGE_SIDE"], app.config["FEEDBACK_IMAGE_BYTES"])


def feedback_token(app: Flask, predictions: list[Prediction], kept: KeptImage | None) -> str | None:
    """Return the signed token for this prediction, or None (feedback off, or its database unreachable)."""
    if kept is None or not predictions:
        return None
    service = feedback_of(app)
    try:
        secret = service.secret()
    except StorageUnavailable:  # the prediction still answers, without "Is this right?"
        return None
    return issue(secret, kept, predictions, holder_of(app).get().describe()["name"])


# --- the answers -----------------------------------------------------------------------------------

@bp.post("/api/v1/feedback")
def api() -> tuple[dict[str, Any], int]:
    """Store a visitor's answer about a prediction (JSON or a form) and say what was stored."""
    return store_answer(current_app, answer_fields(request)), 201


@bp.post("/feedback")
def page() -> str:
    """Store the answer posted by the page's form (no JavaScript needed) and thank the visitor."""
    return render_template("feedback_done.html", stored=store_answer(current_app, answer_fields(request)))


def answer_fields(req: Request) -> dict[str, str]:
    """Read ``token``, ``verdict``, ``label`` and ``other`` from a JSON object or a form."""
    if req.is_json:
        body = req.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadRequest("The JSON body must be an object with a `token` and a `verdict`.")
        source: Mapping[str, Any] = body
    elif req.mimetype in FORMS:
        source = req.form
    else:
        raise UnsupportedMediaType('Send JSON like {"token": "…", "verdict": "confirm"}, or a form.')
    fields = {}
    for name in ("token", "verdict", "label", "other"):
        value = source.get(name)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"`{name}` must be a string.")
        fields[name] = (value or "").strip()
    return fields


def store_answer(app: Flask, fields: Mapping[str, str]) -> dict[str, Any]:
    """Check the token and the answer, store it, and return what was stored."""
    if not app.config["FEEDBACK"]:
        raise NotFound("Feedback is turned off on this server.")
    if not fields["token"] or len(fields["token"]) > MAX_TOKEN:
        raise BadRequest("Send the `feedback_token` the prediction's answer carried, as `token`.")
    service = feedback_of(app)
    ticket = redeem(service.secret(), fields["token"], app.config["FEEDBACK_TOKEN_TTL"])
    verdict, label, other = judge(fields, ticket.predicted, holder_of(app).get().labels)
    entry = NewFeedback(token_digest=ticket.digest, verdict=verdict, predicted=ticket.predicted,
                        probability=ticket.probability, label=label, other=other, model=ticket.model,
                        image=ticket.image.jpeg, width=ticket.image.width, height=ticket.image.height)
    try:
        stored_id = service.store.add(entry, service.quota)
    except (SQLAlchemyError, OSError) as exc:
        log.error("feedback not stored (request %s): %s: %s", g.get("request_id", "-"), type(exc).__name__, exc)
        raise StorageUnavailable(STORAGE_DOWN) from None
    return {"stored": True, "id": stored_id, "verdict": verdict, "predicted": ticket.predicted, "label": label,
            "other": other}


def judge(fields: Mapping[str, str], predicted: str, labels: list[str]) -> tuple[str, str | None, str | None]:
    """Return (verdict, right label, the visitor's words) from the answer, or raise ``BadRequest``."""
    verdict = fields["verdict"] or ("correct" if fields["label"] else "")
    if verdict not in VERDICTS:
        raise BadRequest("`verdict` must be confirm (the model is right), correct (with a `label` from the "
                         "model's labels) or none (none of the model's labels; `other` may say what it is).")
    if verdict == "confirm":
        return "confirm", predicted, None
    if verdict == "correct":
        if fields["label"] not in labels:
            raise BadRequest("`label` must be one of the model's labels (GET /api/v1/model lists them).")
        return ("confirm" if fields["label"] == predicted else "correct"), fields["label"], None
    return "none", None, clean_words(fields["other"]) or None


def clean_words(text: str) -> str:
    """Return a visitor's free text as one line of printable characters, or raise when it is too long."""
    words = " ".join("".join(ch for ch in unicodedata.normalize("NFC", text)
                             if ch.isprintable() or ch.isspace()).split())
    if len(words) > MAX_OTHER:
        raise BadRequest(f"`other` may be at most {MAX_OTHER} characters.")
    return words


def _rate_limited(exc: RateLimitExceeded) -> Any:
    """Answer a breached rate limit as our 429, with Retry-After from the limit's window."""
    limiter = feedback_of(current_app).limiter
    limit = limiter.current_limit if limiter is not None else None
    wait = max(1, int(limit.reset_at - time.time())) if limit is not None else 60
    return render_error(RateLimited(f"That is a lot of feedback from one address ({exc.description}); "
                                    f"please wait {wait} s before sending more.", retry_after=wait))
