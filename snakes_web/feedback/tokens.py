"""The feedback token: a prediction's answer carries its re-encoded photo, signed, so any worker can store it.

Nothing is written when a photo is classified. The answer carries a token: the photo re-encoded as a
small JPEG (no EXIF, GPS, ICC or any other metadata: the pixels only), the model's top label and
probability, the model's name, and a timestamp, signed with HMAC-SHA256 (itsdangerous, Flask's own
signing library). Whichever worker or replica gets the feedback checks the signature and the age and
stores what the token carries: no sticky sessions, no pending uploads anywhere, and feedback can only
name a photo this server classified and a prediction it made.

No Flask here: the web layer passes the settings and the secret.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from PIL import Image

from snakes_web.exceptions import BadRequest
from snakes_web.model.predictor import Prediction

SALT = "snakes-web feedback token"
QUALITIES = (85, 70, 55)


@dataclass(frozen=True)
class KeptImage:
    """A photo re-encoded for keeping: JPEG bytes and their size."""

    jpeg: bytes
    width: int
    height: int


@dataclass(frozen=True)
class Ticket:
    """What a valid token says: the photo, what the model made of it, and the token's own digest."""

    image: KeptImage
    predicted: str
    probability: float
    model: str
    digest: str


def keep_image(image: Image.Image, side: int, max_bytes: int) -> KeptImage:
    """Re-encode ``image`` as a JPEG of at most ``side`` pixels and ``max_bytes`` bytes, pixels only."""
    while True:
        small = image.convert("RGB")
        # Every prediction pays for this (the token is in every answer): bilinear, after thumbnail's
        # integer reduce, costs half of Lanczos (1 MP photo, 576 → 512 px: 3.2 against 6.0 ms) and at
        # these mild ratios looks the same. A 12 MP phone photo, draft-decoded to 504 px, is not resized.
        small.thumbnail((side, side), Image.Resampling.BILINEAR)
        clean = Image.frombytes("RGB", small.size, small.tobytes())  # a fresh image: no info, no EXIF, no ICC
        for quality in QUALITIES:
            out = io.BytesIO()
            clean.save(out, format="JPEG", quality=quality, optimize=True)
            if out.tell() <= max_bytes or side <= 64:
                return KeptImage(out.getvalue(), *clean.size)
        side = side * 3 // 4


def _signer(secret: str) -> TimestampSigner:
    """Return the signer of feedback tokens for ``secret``."""
    return TimestampSigner(secret, salt=SALT, digest_method=hashlib.sha256)


def issue(secret: str, kept: KeptImage, predictions: list[Prediction], model: str) -> str:
    """Return the signed token for this photo and its top prediction."""
    best = predictions[0]
    # n: the same photo classified twice in one second is still two predictions, two tokens.
    meta = {"p": best.label, "q": round(float(best.probability), 6), "m": model, "w": kept.width, "h": kept.height,
            "n": secrets.token_hex(8)}
    payload = _b64(json.dumps(meta, separators=(",", ":")).encode()) + b"." + _b64(kept.jpeg)
    return _signer(secret).sign(payload).decode("ascii")


def redeem(secret: str, token: str, max_age: int) -> Ticket:
    """Check ``token``'s signature and age; return what it carries, or raise ``BadRequest``."""
    try:
        payload = _signer(secret).unsign(token.encode("ascii"), max_age=max_age)
        meta_part, image_part = payload.split(b".")
        meta = json.loads(_unb64(meta_part))
        image = KeptImage(_unb64(image_part), int(meta["w"]), int(meta["h"]))
        ticket = Ticket(image, str(meta["p"]), float(meta["q"]), str(meta["m"]),
                        hashlib.sha256(token.encode("ascii")).hexdigest())
    except SignatureExpired:
        raise BadRequest("This result is too old to give feedback on; classify the photo again.") from None
    except (BadSignature, ValueError, KeyError, TypeError, UnicodeError):
        raise BadRequest("The feedback token is not one this server issued.") from None
    return ticket


def _b64(data: bytes) -> bytes:
    """Encode URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(data: bytes) -> bytes:
    """Decode URL-safe base64 without padding."""
    return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
