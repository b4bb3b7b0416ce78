"""The owner page: recent feedback with thumbnails and the predicted-vs-corrected confusion table.

Off unless ``SNAKES_OWNER_TOKEN`` is set; then it asks for that token as the password (HTTP Basic, any
user name) or as a bearer token, compared in constant time.
"""
from __future__ import annotations

import base64
import hmac
import io

from flask import Blueprint, Flask, Response, current_app, render_template, request
from PIL import Image

from snakes_web.exceptions import NotFound, Unauthorized
from snakes_web.imaging.images import thumbnail_jpeg

from . import TEMPLATES
from .errors import render_error
from .feedback import feedback_of

bp = Blueprint("owner", __name__, template_folder=TEMPLATES)
RECENT = 60


def register_owner(app: Flask) -> None:
    """Add /owner (a 404 unless the owner's token is configured)."""
    app.register_blueprint(bp)


@bp.get("/owner")
def page() -> Response | str:
    """Show the recent feedback and the confusion between predicted and corrected labels."""
    if not current_app.config["OWNER_TOKEN"]:
        raise NotFound("There is nothing at this address.")
    if not authorised(current_app.config["OWNER_TOKEN"]):
        response = render_error(Unauthorized("This page is for the site's owner: give the owner token."))
        response.headers["WWW-Authenticate"] = 'Basic realm="snakes-web owner", charset="UTF-8"'
        return response
    store = feedback_of(current_app).store
    confusion = store.confusion()
    predicted = sorted({p for p, _ in confusion})
    corrected = sorted({c for _, c in confusion})
    entries, size = store.usage()
    recent = [(row, thumbnail(row.image)) for row in store.recent(RECENT, with_images=True)]
    return render_template("owner.html", recent=recent, confusion=confusion, predicted=predicted,
                           corrected=corrected, entries=entries, size=size,
                           where=store.database.describe(), settings=current_app.config)


def authorised(token: str) -> bool:
    """Tell whether the request carries ``token`` as a Basic password or a Bearer token."""
    auth = request.authorization
    given = (auth.password if auth.type == "basic" else auth.token) if auth is not None else None
    return bool(given) and hmac.compare_digest(str(given).encode(), token.encode())


def thumbnail(jpeg: bytes, side: int = 120) -> str:
    """Return a small JPEG of a stored photo as base64 for a data: URL."""
    with Image.open(io.BytesIO(jpeg)) as image:
        return base64.b64encode(thumbnail_jpeg(image, side, quality=75)).decode("ascii")
