"""One exception hierarchy for every input problem; each class knows its HTTP status.

No Flask here: images, fetching and the predictor raise these, the web layer renders them.
"""
from __future__ import annotations


class SnakesError(Exception):
    """A problem we can explain to the person or program that sent the request."""

    status = 500
    title = "Internal Server Error"
    slug = "internal-error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(SnakesError):
    """The request is missing something or is malformed."""

    status, title, slug = 400, "Bad Request", "bad-request"


class NotFound(SnakesError):
    """No such page."""

    status, title, slug = 404, "Not Found", "not-found"


class MethodNotAllowed(SnakesError):
    """The path exists but not with that method."""

    status, title, slug = 405, "Method Not Allowed", "method-not-allowed"


class PayloadTooLarge(SnakesError):
    """The upload, download or image is bigger than we accept."""

    status, title, slug = 413, "Payload Too Large", "too-large"


class UnsupportedMediaType(SnakesError):
    """The body or file is not a kind we accept (not an image, or the wrong content type)."""

    status, title, slug = 415, "Unsupported Media Type", "unsupported-media-type"

    def __init__(self, detail: str, detected: str | None = None) -> None:
        super().__init__(detail)
        self.detected = detected  # the media type we recognised instead, when we did (problem field)


class UndecodableImage(SnakesError):
    """The file says it is an image but cannot be decoded (truncated or corrupt)."""

    status, title, slug = 422, "Unprocessable Image", "undecodable-image"


class UpstreamError(SnakesError):
    """The remote server of an image URL failed or refused."""

    status, title, slug = 502, "Bad Gateway", "upstream-error"


class ModelUnavailable(SnakesError):
    """The model is not loaded (yet, or it failed to load)."""

    status, title, slug = 503, "Service Unavailable", "model-unavailable"


class RequestTimeout(SnakesError):
    """The request (its headers or its body) arrived slower than the server accepts."""

    status, title, slug = 408, "Request Timeout", "request-timeout"


class Overloaded(SnakesError):
    """More requests wait for the model than the queue holds, or one waited too long."""

    status, title, slug = 503, "Service Unavailable", "overloaded"

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after  # seconds, sent as Retry-After


class MemoryBusy(Overloaded):
    """This worker already holds as many request bodies and downloads as its input budget allows."""

    slug = "memory-busy"


class ShuttingDown(SnakesError):
    """The server got SIGTERM: /readyz says so, so that load balancers send the next requests elsewhere."""

    status, title, slug = 503, "Service Unavailable", "shutting-down"

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after  # seconds, sent as Retry-After


class GateLost(SnakesError):
    """The inference gate's shared semaphores are gone: this worker cannot count slots, and is being replaced."""

    status, title, slug = 503, "Service Unavailable", "gate-lost"

    def __init__(self, detail: str, retry_after: int = 5) -> None:
        super().__init__(detail)
        self.retry_after = retry_after  # seconds, sent as Retry-After: a new worker loads the model first


class UpstreamTimeout(SnakesError):
    """The remote server of an image URL was too slow."""

    status, title, slug = 504, "Gateway Timeout", "upstream-timeout"


# --- issue 18: feedback ---
class Unauthorized(SnakesError):
    """The owner page needs its token."""

    status, title, slug = 401, "Unauthorized", "unauthorized"


class AlreadySent(SnakesError):
    """Feedback on this prediction was stored already (each receipt is answered once)."""

    status, title, slug = 409, "Conflict", "already-sent"


class RateLimited(SnakesError):
    """This client sent more feedback than the rate limit allows."""

    status, title, slug = 429, "Too Many Requests", "rate-limited"

    def __init__(self, detail: str, retry_after: int = 60) -> None:
        super().__init__(detail)
        self.retry_after = retry_after  # seconds, sent as Retry-After


class StorageUnavailable(SnakesError):
    """The feedback database cannot be reached or written right now."""

    status, title, slug = 503, "Service Unavailable", "storage-unavailable"


class QuotaFull(SnakesError):
    """The feedback store holds as many entries or bytes as it may (507: the owner must make room)."""

    status, title, slug = 507, "Insufficient Storage", "quota-full"


class ModelLoadError(RuntimeError):
    """The model file is missing or cannot be loaded; the message names the path and the setting."""


PROBLEM_TYPE = "urn:snakes-web:problem:"


def problem_document(error: SnakesError, request_id: str = "") -> dict[str, object]:
    """Return the RFC 9457 problem document for ``error`` (also outside a request: the worker's 408)."""
    document: dict[str, object] = {"type": PROBLEM_TYPE + error.slug, "title": error.title,
                                   "status": error.status, "detail": error.detail,
                                   "request_id": request_id}
    detected = getattr(error, "detected", None)
    if detected:
        document["detected"] = detected  # what the file is instead, so a frontend can say it its way
    return document
