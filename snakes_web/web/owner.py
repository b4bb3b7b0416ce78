"""The owner page: recent feedback with thumbnails and the predicted-vs-corrected confusion table.

Off unless ``SNAKES_OWNER_TOKEN`` is set; off, a GET of /owner is answered exactly as one of an unknown
address (Werkzeug's 404, no headers of the page's own). On, it asks for that token as the password (HTTP
Basic, any user name) or as a bearer token, compared in constant time.

Failed sign-ins (a request with credentials that are not the token) are counted per client (IPv4, or
IPv6 /64, behind ``PROXY_HOPS`` proxies: ``clients.client_key``) and overall, in the storage the feedback
rate limit counts in, with the same ``limits`` fixed windows. Past either limit the page answers 429 to
every request, the right token included, until the window ends: otherwise a locked-out guesser would
learn which guess is right. Successful views count nothing, nor do requests without credentials (a
browser asks once before it sends them: a visit is not a guess). When the counts cannot be read or
written, the page stays shut (503), never open. Every answer under /owner says ``no-store`` and
``noindex``: the page shows visitors' photos.
"""
from __future__ import annotations

import base64
import hmac
import io
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from flask import Blueprint, Flask, Response, current_app, g, render_template, request
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from PIL import Image
from werkzeug.exceptions import NotFound as NoSuchPage

from snakes_web.exceptions import RateLimited, SnakesError, StorageUnavailable, Unauthorized
from snakes_web.extensions import Slot
from snakes_web.feedback.ratelimit import storage_of
from snakes_web.imaging.images import thumbnail_jpeg

from . import TEMPLATES
from .clients import client_key
from .errors import log_server_error, render_error
from .feedback import feedback_of

log = logging.getLogger(__name__)
T = TypeVar("T")

bp = Blueprint("owner", __name__, template_folder=TEMPLATES)
RECENT = 60
PATH = "/owner"
CHALLENGE = 'Basic realm="snakes-web owner", charset="UTF-8"'
#: Headers on every answer under /owner: visitors' photos must stay out of caches, search engines and
#: other sites' logs (Referrer-Policy is also sent everywhere by security.py; here it does not depend on it).
PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex, nofollow", "Referrer-Policy": "no-referrer"}
NEEDS_TOKEN = "This page is for the site's owner: give the owner token."
LOCKED_OUT = ("Too many failed sign-ins to the owner page, from this address or from everywhere. It is closed "
              "to every request, even with the right token, for the next {wait} s; try again after that.")
COUNTS_DOWN = ("The owner page cannot count sign-in attempts right now, so it stays closed. "
               "Please try again later.")
JSON_TYPES = ("application/problem+json", "application/json")


@dataclass(frozen=True)
class Throttle:
    """Failed sign-ins to the owner page, counted per client and overall in fixed windows."""

    counter: FixedWindowRateLimiter
    per_client: tuple[RateLimitItem, ...]
    overall: tuple[RateLimitItem, ...]

    def windows(self, client: str) -> list[tuple[RateLimitItem, tuple[str, ...]]]:
        """Return each limit with the identifiers this client's attempts are counted under."""
        return ([(item, ("owner", "client", client)) for item in self.per_client]
                + [(item, ("owner", "all")) for item in self.overall])

    def wait(self, client: str) -> int:
        """Return the seconds until ``client`` may try again: 0 now, else until the last spent window ends."""
        ends = [self.counter.get_window_stats(item, *ids).reset_time
                for item, ids in self.windows(client) if not self.counter.test(item, *ids)]
        return max(1, math.ceil(max(ends) - time.time())) if ends else 0

    def failed(self, client: str) -> None:
        """Count one failed sign-in by ``client`` in every window."""
        for item, ids in self.windows(client):
            self.counter.hit(item, *ids)


#: Where ``register_owner`` keeps the app's ``Throttle``.
SLOT: Slot[Throttle] = Slot("snakes_owner_throttle")


def register_owner(app: Flask) -> None:
    """Add /owner (a 404 unless the owner's token is configured), throttled and kept private when it is."""
    app.register_blueprint(bp)
    if app.config["OWNER_TOKEN"]:
        SLOT.attach(app.extensions, throttle_for(app))
        app.after_request(keep_private)


def throttle_for(app: Flask) -> Throttle:
    """Build the throttle over the storage the feedback rate limit uses (its database, or RATE_LIMIT_STORAGE)."""
    uri, options = storage_of(app.config["RATE_LIMIT_STORAGE"], feedback_of(app).store.database)
    return Throttle(FixedWindowRateLimiter(storage_from_string(uri, **options)),
                    limits_of(app.config["OWNER_RATE_LIMIT"]), limits_of(app.config["OWNER_GLOBAL_RATE_LIMIT"]))


def limits_of(text: str) -> tuple[RateLimitItem, ...]:
    """Read a ``limits`` string such as ``10/minute;50/day`` (empty: no limit)."""
    return tuple(parse_many(text)) if text.strip() else ()


def keep_private(response: Response) -> Response:
    """Mark every answer under /owner (the page, 401, 429, 503, 405) as not to be stored or indexed."""
    if request.path == PATH or request.path.startswith(PATH + "/"):
        response.headers.update(PRIVATE)
    return response


@bp.get(PATH)
def page() -> str:
    """Show the owner the recent feedback and the confusion between predicted and corrected labels."""
    if not current_app.config["OWNER_TOKEN"]:
        raise NoSuchPage()  # Werkzeug's, as for any unknown address: the page being off is not a tell
    admit(current_app)
    store = feedback_of(current_app).store
    confusion = store.confusion()
    predicted = sorted({p for p, _ in confusion})
    corrected = sorted({c for _, c in confusion})
    entries, size = store.usage()
    recent = [(row, thumbnail(row.image)) for row in store.recent(RECENT, with_images=True)]
    return render_template("owner.html", recent=recent, confusion=confusion, predicted=predicted,
                           corrected=corrected, entries=entries, size=size, where=store.database.describe(),
                           max_bytes=current_app.config["FEEDBACK_MAX_BYTES"],
                           max_items=current_app.config["FEEDBACK_MAX_ITEMS"])


def admit(app: Flask) -> None:
    """Return when the request carries the token within the limits; raise 429, 401 or 503 otherwise."""
    throttle, client = SLOT.of(app), client_key()
    wait = counted(lambda: throttle.wait(client))
    if wait:
        raise RateLimited(LOCKED_OUT.format(wait=wait), retry_after=wait)
    if authorised(app.config["OWNER_TOKEN"]):
        return
    if "Authorization" in request.headers:  # a guess, however malformed; none is a browser asking first
        counted(lambda: throttle.failed(client))
    raise Unauthorized(NEEDS_TOKEN)


def counted(action: Callable[[], T]) -> T:
    """Run one call on the throttle's storage; any failure of it shuts the page (503), never opens it."""
    try:
        return action()
    except Exception as exc:  # noqa: BLE001 - a database's, Redis's, a folder's: whatever it is, stay closed
        log.error("owner page closed (request %s): the sign-in counts are unavailable: %s: %s",
                  g.get("request_id", "-"), type(exc).__name__, exc)
        raise StorageUnavailable(COUNTS_DOWN) from None


def authorised(token: str) -> bool:
    """Tell whether the request carries ``token`` (never empty) as a Basic password or a Bearer token."""
    auth = request.authorization
    given = (auth.password if auth.type == "basic" else auth.token) if auth is not None else None
    return bool(token) and bool(given) and hmac.compare_digest(str(given).encode(), token.encode())


@bp.errorhandler(SnakesError)
def refused(error: SnakesError) -> Response:
    """Answer a refusal as problem+json to a client that asks for JSON, as the error page otherwise."""
    log_server_error(error)
    response = render_error(error, as_json=asks_for_json())
    if isinstance(error, Unauthorized):
        response.headers["WWW-Authenticate"] = CHALLENGE
    return response


def asks_for_json() -> bool:
    """Tell whether the client's Accept header prefers JSON to HTML (a script with the bearer token)."""
    return request.accept_mimetypes.best_match(("text/html", *JSON_TYPES)) in JSON_TYPES


def thumbnail(jpeg: bytes, side: int = 120) -> str:
    """Return a small JPEG of a stored photo as base64 for a data: URL."""
    with Image.open(io.BytesIO(jpeg)) as image:
        return base64.b64encode(thumbnail_jpeg(image, side, quality=75)).decode("ascii")
