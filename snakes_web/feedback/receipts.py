"""The feedback receipt: a few hundred signed bytes that say "this server classified these bytes as X".

Nothing is written, and nothing is re-encoded, when a photo is classified. An answer that asks for it
carries a receipt: the SHA-256 of the exact bytes classified (and, on the page, of the preview it shows),
the model's top label and probability, the model's name and a random nonce, with the time, signed with
HMAC-SHA256 (itsdangerous, Flask's own signing library). Only when a visitor answers does the photo
travel again, beside its receipt: whichever worker or replica gets it checks the signature, the age and
the photo's hash before anything is decoded, then keeps a small re-encoded copy (``keep_image``). No
sticky sessions and no pending uploads anywhere; feedback can only name bytes this server classified
and a prediction it made, and the nonce (unique in the store) lets each prediction be answered once.

No Flask here: the web layer passes the settings and the key.
"""
from __future__ import annotations

import base64
import hashlib
import io
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from PIL import Image

from snakes_web.config import ConfigError
from snakes_web.exceptions import BadRequest
from snakes_web.model.predictor import Prediction

SALT = "snakes-web feedback receipt"
QUALITIES = (85, 70, 55)
#: What an old client that still sends a PR-18 ``token`` is told (it carried the photo; receipts do not).
OLD_TOKEN = ("This looks like a feedback token from an older version of this server. Ask for a receipt "
             "(POST /api/v1/predict?feedback=1) and send it back as `receipt`, with the photo.")
#: Fewest bytes a key set in ``SECRET_KEY`` may have: as many as the HMAC-SHA256 that signs with it.
MIN_KEY_BYTES = 32
MAKE_A_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


@dataclass(frozen=True)
class KeptImage:
    """A photo re-encoded for keeping: JPEG bytes and their size."""

    jpeg: bytes
    width: int
    height: int


@dataclass(frozen=True)
class Receipt:
    """What a valid receipt says: which bytes were classified, what the model made of them, and its nonce."""

    digests: tuple[str, ...]
    predicted: str
    probability: float
    model: str
    nonce: str

    def matches(self, data: bytes) -> bool:
        """Tell whether ``data`` are the bytes (or the preview) this receipt was given for."""
        return digest(data) in self.digests


def digest(data: bytes) -> str:
    """Return the SHA-256 of ``data``, URL-safe base64 without padding (43 characters)."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def keep_image(image: Image.Image, side: int, max_bytes: int) -> KeptImage:
    """Re-encode ``image`` as a JPEG of at most ``side`` pixels and ``max_bytes`` bytes, pixels only."""
    while True:
        small = image.convert("RGB")
        small.thumbnail((side, side), Image.Resampling.LANCZOS)  # once per answer, not per prediction
        clean = Image.frombytes("RGB", small.size, small.tobytes())  # a fresh image: no info, no EXIF, no ICC
        for quality in QUALITIES:
            out = io.BytesIO()
            clean.save(out, format="JPEG", quality=quality, optimize=True)
            if out.tell() <= max_bytes or side <= 64:
                return KeptImage(out.getvalue(), *clean.size)
        side = side * 3 // 4


def check_key(key: str) -> None:
    """Refuse a set receipt key shorter than ``MIN_KEY_BYTES`` in UTF-8 (empty is fine: one is made and kept)."""
    size = len(key.encode("utf-8"))
    if 0 < size < MIN_KEY_BYTES:  # the key itself is never repeated: the message goes to logs
        raise ConfigError(f"SNAKES_SECRET_KEY is {size} bytes long; the key that signs feedback receipts needs at "
                          f"least {MIN_KEY_BYTES} random bytes. Make one with {MAKE_A_KEY}, or leave it empty for "
                          f"one made once and kept in the feedback database.")


def _serializer(key: str) -> URLSafeTimedSerializer:
    """Return the signer of receipts for ``key``."""
    return URLSafeTimedSerializer(key, salt=SALT, signer_kwargs={"digest_method": hashlib.sha256})


def issue(key: str, digests: Sequence[str], predictions: Sequence[Prediction], model: str) -> str:
    """Return the signed receipt for these bytes' digests and their top prediction."""
    best = predictions[0]
    # n: the same photo classified twice is two predictions, two receipts, each answerable once.
    meta = {"d": list(digests), "p": best.label, "q": round(float(best.probability), 6), "m": model,
            "n": secrets.token_urlsafe(12)}
    return str(_serializer(key).dumps(meta))


def redeem(key: str, receipt: str, max_age: int) -> Receipt:
    """Check ``receipt``'s signature and age; return what it says, or raise ``BadRequest``."""
    try:
        meta = _serializer(key).loads(receipt, max_age=max_age)
        return Receipt(tuple(str(d) for d in meta["d"]), str(meta["p"]), float(meta["q"]), str(meta["m"]),
                       str(meta["n"]))
    except SignatureExpired:
        raise BadRequest("This result is too old to give feedback on; classify the photo again.") from None
    except (BadSignature, ValueError, KeyError, TypeError, UnicodeError):
        if receipt.count(".") == 3 and len(receipt) > 1000:  # meta.photo.time.signature
            raise BadRequest(OLD_TOKEN) from None
        raise BadRequest("The feedback receipt is not one this server issued.") from None
