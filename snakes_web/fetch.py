"""URL in, image bytes out, or a typed error. No Flask here.

Each hop's host is resolved here and refused when any address it resolves to is not a public
one (unless private addresses are allowed by configuration). Redirects are followed by hand so
every hop is checked the same way.
"""
from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests

from . import __version__
from .exceptions import BadRequest, PayloadTooLarge, UnsupportedMediaType, UpstreamError, UpstreamTimeout

MAX_URL_LENGTH = 2048
MAX_REDIRECTS = 3
USER_AGENT = f"snakes-web/{__version__} (image classifier; fetches one image a request)"
#: Content types we download: any image, and the generic binary type some servers send for photos.
ACCEPTED_CONTENT_TYPES = ("image/", "application/octet-stream")


@dataclass(frozen=True)
class FetchLimits:
    """How much, how long and where a fetch may go."""

    max_bytes: int
    timeout: float
    allow_private: bool = False

    @property
    def deadline(self) -> float:
        """Return the total seconds a whole fetch may take, redirects and body included."""
        return self.timeout * 3


def fetch_image(url: str, limits: FetchLimits) -> bytes:
    """Download the image at ``url`` within ``limits``, following a few checked redirects."""
    started = time.monotonic()
    with requests.Session() as session:
        session.trust_env = False  # no proxies or .netrc from the environment
        for _hop in range(MAX_REDIRECTS + 1):
            check_url(url, limits.allow_private)
            response = _get(session, url, limits)
            with response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("Location", ""))
                    continue
                _check_response(response)
                return _read_body(response, limits, started)
    raise UpstreamError(f"The image URL redirected more than {MAX_REDIRECTS} times.")


def check_url(url: str, allow_private: bool) -> None:
    """Refuse a URL that is malformed, not http(s), or whose host resolves to a non-public address."""
    if len(url) > MAX_URL_LENGTH:
        raise BadRequest(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BadRequest("That URL is malformed.") from None
    if parts.scheme not in {"http", "https"}:
        raise BadRequest("Only http:// and https:// image URLs are accepted.")
    if not parts.hostname:
        raise BadRequest("That URL has no host name.")
    if allow_private:
        return
    for address in resolve(parts.hostname, port or (443 if parts.scheme == "https" else 80)):
        if not is_public(address):
            raise BadRequest("That URL points to a private or reserved network address, which is not allowed.")


def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Return every address ``host`` resolves to, or raise ``BadRequest`` when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise BadRequest("The host name of that URL does not resolve.") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Tell whether ``address`` is a globally routable unicast address (IPv4-mapped forms unwrapped)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not address.is_multicast


def _get(session: requests.Session, url: str, limits: FetchLimits) -> requests.Response:
    """Start one GET without following redirects, turning transport failures into typed errors."""
    try:
        return session.get(url, stream=True, allow_redirects=False,
                           timeout=(limits.timeout, limits.timeout),
                           headers={"User-Agent": USER_AGENT, "Accept": "image/*"})
    except requests.Timeout:
        raise UpstreamTimeout("The image URL's server did not answer in time.") from None
    except requests.RequestException:
        raise UpstreamError("The image URL's server could not be reached.") from None


def _check_response(response: requests.Response) -> None:
    """Refuse error statuses and content types that are not images."""
    if response.status_code >= 400:
        raise UpstreamError(f"The image URL's server answered {response.status_code}.")
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type and not content_type.startswith(ACCEPTED_CONTENT_TYPES):
        raise UnsupportedMediaType(f"The URL is not an image: its server says it is {content_type}.")


def _read_body(response: requests.Response, limits: FetchLimits, started: float) -> bytes:
    """Stream the body up to the byte cap and the total deadline."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise _too_big(limits)
    body = bytearray()
    try:
        for chunk in response.iter_content(chunk_size=64 * 1024):
            body += chunk
            if len(body) > limits.max_bytes:
                raise _too_big(limits)
            if time.monotonic() - started > limits.deadline:
                raise UpstreamTimeout("The image took too long to download.")
    except requests.Timeout:
        raise UpstreamTimeout("The image URL's server stopped sending in time.") from None
    except requests.RequestException:
        raise UpstreamError("The download of the image broke off.") from None
    return bytes(body)


def _too_big(limits: FetchLimits) -> PayloadTooLarge:
    """Build the error for a download over the byte cap."""
    return PayloadTooLarge(f"The image at that URL is larger than {limits.max_bytes // (1024 * 1024)} MB.")
