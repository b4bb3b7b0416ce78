"""The feedback blueprint: "Is this right?" answered from the page (a form post) or the API.

A prediction that asks for it (the page always does; the API with ``?feedback=1``) carries a signed
receipt of the bytes it classified (``snakes_web.feedback.receipts``), made without the database and
without re-encoding anything. The answer brings the receipt and the photo back: the file again, the
page's preview, or the URL (fetched again under the same rules). Its receipt is checked before anything
is fetched or decoded; the photo must hash to what the receipt names; it is decoded through the same
gate and limits as a prediction and stored (``snakes_web.feedback.store``) within the quota and the
per-client rate limit (``snakes_web.feedback.ratelimit``, counting in the same database).

The database never slows a prediction: the receipt key is read when the app starts (a worker, before
it serves), and a prediction that finds no key yet answers without a receipt while a retry runs apart.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import threading
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Request, current_app, g, render_template, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from snakes_web.exceptions import (
    AlreadySent,
    BadRequest,
    NotFound,
    RateLimited,
    StorageUnavailable,
    UnsupportedMediaType,
)
from snakes_web.extensions import Slot
from snakes_web.feedback.database import Database
from snakes_web.feedback.ratelimit import storage_of
from snakes_web.feedback.receipts import OLD_TOKEN, KeptImage, Receipt, check_key, issue, keep_image, redeem
from snakes_web.feedback.store import ALREADY_SENT, VERDICTS, FeedbackStore, NewFeedback, Quota
from snakes_web.model.loader import holder_of
from snakes_web.model.predictor import Prediction, concurrency_of
from snakes_web.serving.gate import gate_of

from . import TEMPLATES
from .clients import client_key
from .errors import render_error, upload_too_large
from .inputs import FORMS, decode_image, read_image_data

log = logging.getLogger(__name__)
SECRET_NAME = "feedback-token-key"
MAX_OTHER = 100
MAX_RECEIPT = 4096
RETRY_AFTER_FAILURE = 30.0  # seconds before a database that would not open is tried again
STORAGE_DOWN = "Feedback cannot be stored right now. Please try again later."
NO_PHOTO = ("Send the photo back with the receipt: the same file as `file`, the page's preview as `image` "
            "(base64), or the same `url`.")
NOT_THAT_PHOTO = ("This is not the photo that was classified (its bytes differ from the receipt's): send "
                  "exactly the file that was sent for the prediction, or the same URL.")
#: Environment variables that say this process is one of several copies of the app.
REPLICA_SIGNS = {"DYNO": "a Heroku dyno", "KUBERNETES_SERVICE_HOST": "a Kubernetes pod",
                 "K_SERVICE": "a Cloud Run instance"}

bp = Blueprint("feedback", __name__, template_folder=TEMPLATES)


@dataclass
class Feedback:
    """The app's feedback parts: the store, its settings, the rate limit, and the receipt key (read once)."""

    store: FeedbackStore
    settings: Mapping[str, Any]
    limiter: Limiter | None = None
    refused: str = ""  # why feedback is off although FEEDBACK is on (said in the log and by the routes)
    _key: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _retrying: threading.Event = field(default_factory=threading.Event)
    _failed_at: float = -RETRY_AFTER_FAILURE

    @property
    def on(self) -> bool:
        """Tell whether this app asks for feedback at all."""
        return bool(self.settings["FEEDBACK"]) and not self.refused

    def key(self) -> str:
        """Return the receipt key: ``SECRET_KEY``, else the one kept in the database for every worker.

        Raises ``StorageUnavailable`` when the database cannot be opened or migrated (whatever the error:
        a driver's, Alembic's), and then, for a while, at once.
        """
        if not self._key:
            with self._lock:
                if not self._key:
                    if time.monotonic() - self._failed_at < RETRY_AFTER_FAILURE:
                        raise StorageUnavailable(STORAGE_DOWN)
                    try:
                        self._key = self.settings["SECRET_KEY"] or self.store.secret(SECRET_NAME)
                    except Exception as exc:  # noqa: BLE001 - any failure here must leave predictions alone
                        self._failed_at = time.monotonic()
                        log.warning("feedback is unavailable: the database %s cannot be opened (%s: %s); "
                                    "trying again in %.0f s", self.store.database.describe(),
                                    type(exc).__name__, exc, RETRY_AFTER_FAILURE)
                        raise StorageUnavailable(STORAGE_DOWN) from None
        return self._key

    def key_if_known(self) -> str | None:
        """Return the key for a prediction's receipt, never waiting: unknown yet, a retry runs in the background."""
        if self._key or not self.on:
            return self._key or None
        if time.monotonic() - self._failed_at >= RETRY_AFTER_FAILURE and not self._retrying.is_set():
            self._retrying.set()
            threading.Thread(target=self._retry, name="feedback-key", daemon=True).start()
        return None

    def _retry(self) -> None:
        """Try to read the key once (the background half of ``key_if_known``)."""
        try:
            self.key()
        except StorageUnavailable:
            pass
        finally:
            self._retrying.clear()

    @property
    def quota(self) -> Quota:
        """Return the storage quota."""
        return Quota(self.settings["FEEDBACK_MAX_ITEMS"], self.settings["FEEDBACK_MAX_BYTES"])


#: Where ``register_feedback`` keeps the app's ``Feedback``: ``feedback_of(app)``.
SLOT: Slot[Feedback] = Slot("snakes_feedback")
feedback_of = SLOT.of


def register_feedback(app: Flask, environ: Mapping[str, str] = os.environ) -> None:
    """Attach the store, the rate limit and the feedback routes (404 when feedback is off); read the key."""
    check_key(app.config["SECRET_KEY"])  # a short key is refused even with feedback off: it is a mistake either way
    store = FeedbackStore(Database.from_settings(app.config))
    service = Feedback(store, app.config, refused=replicas_without_a_shared_key(app.config, environ))
    SLOT.attach(app.extensions, service)
    app.register_blueprint(bp)
    if service.refused:
        log.error("%s", service.refused)
    if not service.on:
        return
    with contextlib.suppress(StorageUnavailable):  # logged; predictions answer without receipts until a retry
        service.key()  # now, before this worker serves: no prediction ever waits on the database for it
    storage, options = storage_of(app.config["RATE_LIMIT_STORAGE"], store.database)
    service.limiter = Limiter(client_key, app=app, storage_uri=storage, storage_options=options,
                              strategy="fixed-window", key_prefix="feedback",
                              swallow_errors=True)  # a database outage is the store's 503, not the limiter's 500
    # Flask-Limiter checks every request of the app for limits; only feedback's routes have any, so every
    # other request (a prediction above all) is let through before the limiter resolves anything for it.
    service.limiter.request_filter(_not_feedback)
    if app.config["FEEDBACK_RATE_LIMIT"].strip():
        # One count for the page's form and the API together (a blueprint limit would count each route apart).
        service.limiter.shared_limit(app.config["FEEDBACK_RATE_LIMIT"], scope="feedback", methods=["POST"])(bp)
    app.register_error_handler(RateLimitExceeded, _rate_limited)


def _not_feedback() -> bool:
    """Say whether the current request is outside feedback's routes (so no rate limit applies to it)."""
    return request.blueprint != bp.name


def replicas_without_a_shared_key(settings: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """Say why feedback must not run here ("" when it may): copies of the app, each with its own SQLite key."""
    if not settings["FEEDBACK"] or settings["SECRET_KEY"] or str(settings["DATABASE_URL"]).strip():
        return ""
    for name, what in REPLICA_SIGNS.items():
        if environ.get(name):
            return (f"Feedback is off: {name} says this is {what}, one of several copies of the app, but feedback "
                    f"is on over a local SQLite file with no SNAKES_SECRET_KEY, so each copy would sign receipts "
                    f"with its own key and refuse the others' (and a dyno loses the file at every restart). Set "
                    f"SNAKES_SECRET_KEY to one random value of 32+ characters for all copies and "
                    f"SNAKES_DATABASE_URL to a PostgreSQL database they share, or SNAKES_FEEDBACK=false.")
    return ""


# --- the receipt a prediction carries --------------------------------------------------------------

def feedback_receipt(app: Flask, digests: Sequence[str], predictions: list[Prediction]) -> str | None:
    """Return the signed receipt for this prediction, or None (feedback off, or its key not known yet)."""
    if not predictions:
        return None
    key = feedback_of(app).key_if_known()
    if key is None:
        return None
    return issue(key, digests, predictions, holder_of(app).get().describe()["name"])


def wants_receipts(app: Flask) -> bool:
    """Tell whether predictions here may carry receipts (feedback on and not refused)."""
    return feedback_of(app).on


# --- the answers -----------------------------------------------------------------------------------

@bp.post("/api/v1/feedback")
def api() -> tuple[dict[str, Any], int]:
    """Store a visitor's answer about a prediction (JSON, a form or multipart) and say what was stored."""
    return store_answer(current_app, request), 201


@bp.post("/feedback")
def page() -> str:
    """Store the answer posted by the page's form (no JavaScript needed) and thank the visitor."""
    return render_template("feedback_done.html", stored=store_answer(current_app, request))


def answer_fields(req: Request) -> dict[str, str]:
    """Read ``receipt``, ``verdict``, ``label``, ``other``, ``image`` and ``url`` from JSON or a form."""
    if req.is_json:
        body = req.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadRequest("The JSON body must be an object with a `receipt`, a `verdict` and the photo.")
        source: Mapping[str, Any] = body
    elif req.mimetype in FORMS:
        try:
            source = req.form
        except RequestEntityTooLarge:
            raise upload_too_large() from None
    else:
        raise UnsupportedMediaType('Send JSON like {"receipt": "…", "verdict": "confirm", "url": "…"}, '
                                   "or a form with the photo as `file`.")
    if "token" in source and "receipt" not in source:
        raise BadRequest(OLD_TOKEN)
    fields = {}
    for name in ("receipt", "verdict", "label", "other", "image", "url"):
        value = source.get(name)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"`{name}` must be a string.")
        fields[name] = (value or "").strip()
    return fields


def store_answer(app: Flask, req: Request) -> dict[str, Any]:
    """Check the receipt and the answer, then the photo against the receipt; keep it and say what was stored."""
    service = feedback_of(app)
    if not app.config["FEEDBACK"]:
        raise NotFound("Feedback is turned off on this server.")
    if service.refused:
        raise StorageUnavailable(service.refused)
    fields = answer_fields(req)
    if not fields["receipt"] or len(fields["receipt"]) > MAX_RECEIPT:
        raise BadRequest("Send the `feedback_receipt` the prediction's answer carried, as `receipt`.")
    receipt = redeem(service.key(), fields["receipt"], app.config["FEEDBACK_TOKEN_TTL"])
    verdict, label, other = judge(fields, receipt.predicted, holder_of(app).get().labels)
    _database(lambda: _refuse_a_second_answer(service.store, receipt))
    kept = keep_answered_photo(app, req, fields, receipt)
    entry = NewFeedback(receipt_nonce=receipt.nonce, verdict=verdict, predicted=receipt.predicted,
                        probability=receipt.probability, label=label, other=other, model=receipt.model,
                        image=kept.jpeg, width=kept.width, height=kept.height)
    stored_id = _database(lambda: service.store.add(entry, service.quota))
    return {"stored": True, "id": stored_id, "verdict": verdict, "predicted": receipt.predicted, "label": label,
            "other": other}


def _refuse_a_second_answer(store: FeedbackStore, receipt: Receipt) -> None:
    """Raise ``AlreadySent`` before any photo is fetched or decoded when this prediction was answered."""
    if store.answered(receipt.nonce):
        raise AlreadySent(ALREADY_SENT)


def _database(action: Any) -> Any:
    """Run a store call; a database failure becomes the 503 that says feedback cannot be stored now."""
    try:
        return action()
    except (SQLAlchemyError, OSError) as exc:
        log.error("feedback not stored (request %s): %s: %s", g.get("request_id", "-"), type(exc).__name__, exc)
        raise StorageUnavailable(STORAGE_DOWN) from None


def keep_answered_photo(app: Flask, req: Request, fields: Mapping[str, str], receipt: Receipt) -> KeptImage:
    """Take the photo the answer brings back, check it is the receipt's, and re-encode it for keeping.

    The bytes arrive (or are fetched) outside the inference gate; they are decoded inside it, under
    every limit a prediction has.
    """
    gate = gate_of(app)
    gate.check_room()
    data = answered_bytes(req, fields, app.config)
    if not receipt.matches(data):
        raise BadRequest(NOT_THAT_PHOTO)
    with gate.admitted(concurrency_of(holder_of(app).get()), app.config["PREDICTIONS_PER_WORKER"]):
        image = decode_image(data, app.config, min_side=app.config["FEEDBACK_IMAGE_SIDE"])
        return keep_image(image, app.config["FEEDBACK_IMAGE_SIDE"], app.config["FEEDBACK_IMAGE_BYTES"])


def answered_bytes(req: Request, fields: Mapping[str, str], settings: Mapping[str, Any]) -> bytes:
    """Return the photo an answer carries: ``image`` (base64: the page's preview), else ``file`` or ``url``."""
    if fields["image"]:
        try:
            return base64.b64decode(fields["image"], validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("`image` must be the photo's bytes in base64.") from None
    if not fields["url"] and not (req.mimetype == "multipart/form-data" and "file" in req.files):
        raise BadRequest(NO_PHOTO)
    return read_image_data(req, settings, allow_json=True)


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
    return render_error(RateLimited(f"That is a lot of feedback from one client ({exc.description}); "
                                    f"please wait {wait} s before sending more.", retry_after=wait))
