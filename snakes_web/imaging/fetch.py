"""URL in, image bytes out, or a typed error. No Flask here.

Each hop's host is resolved here, once, and refused when any address it resolves to is not a
public one (unless private addresses are allowed by configuration). The connection then goes to
exactly the addresses that were checked: the HTTP stack never resolves the name again, so a DNS
answer that changes between the check and the connection (DNS rebinding) cannot reach inside.
The name still goes in the Host header, in TLS SNI and into the certificate check. Redirects are
followed by hand so every hop is checked the same way.
"""
from __future__ import annotations

import contextlib
import io
import ipaddress
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationValueError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.poolmanager import PoolManager

from snakes_web.exceptions import BadRequest, PayloadTooLarge, UnsupportedMediaType, UpstreamError, UpstreamTimeout
from snakes_web.version import __version__

#: The urllib3 releases the fetcher was tested with (it overrides PoolManager._new_pool and the
#: connections' _new_conn). setup.cfg allows only these; tests/test_pins.py checks the installed one.
TESTED_URLLIB3 = ">=2.8,<3"

MAX_URL_LENGTH = 2048
MAX_REDIRECTS = 3
USER_AGENT = f"snakes-web/{__version__} (image classifier; fetches one image a request)"
#: Content types we download: any image, and the generic binary type some servers send for photos.
ACCEPTED_CONTENT_TYPES = ("image/", "application/octet-stream")
#: Certificates trusted for https image URLs: True means the bundle requests ships (certifi).
VERIFY: bool | str = True

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Never fetched from, whatever Python's `is_global` says in this version (IANA special-purpose
#: registries, plus multicast and the deprecated IPv6 ranges). Embedded IPv4 is checked separately.
BLOCKED_NETWORKS = tuple(ipaddress.ip_network(net) for net in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/96",            # unspecified, loopback and the deprecated IPv4-compatible ::a.b.c.d
    "64:ff9b:1::/48",   # local-use NAT64
    "100::/64",         # discard
    "2001::/32",        # Teredo: the IPv4 inside is obfuscated, so refuse the whole range
    "2001:db8::/32", "3fff::/20",  # documentation
    "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# What inet_aton reads as an IPv4 address: 2130706433, 0x7f.1, 017700000001, 127.1 …
_IPV4_SPELLING = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)


@dataclass(frozen=True)
class FetchLimits:
    """How much, how long and where a fetch may go."""

    max_bytes: int
    timeout: float
    allow_private: bool = False
    total: float | None = None  # seconds for the whole fetch when shorter than 3 × timeout (a batch's rest)

    @property
    def deadline(self) -> float:
        """Return the total seconds a whole fetch may take, redirects and body included."""
        return self.timeout * 3 if self.total is None else min(self.total, self.timeout * 3)


@dataclass(frozen=True)
class Target:
    """One checked address of a URL's host: where the connection is allowed to go."""

    family: int
    sockaddr: tuple[Any, ...]

    @property
    def address(self) -> IPAddress:
        """Return the IP address, without an IPv6 scope."""
        return ipaddress.ip_address(str(self.sockaddr[0]).split("%", 1)[0])


def fetch_image(url: str, limits: FetchLimits, take: Callable[[int], None] | None = None) -> bytes:
    """Download the image at ``url`` within ``limits``, following a few checked redirects.

    ``take`` is told the size of every piece of the body as it arrives, before it is kept, and may raise
    to stop the download (the server's input budget).
    """
    started = time.monotonic()
    adapter = PinnedAdapter()
    # The hard stop: at the deadline every socket of this fetch is shut, even mid-header.
    watchdog = threading.Timer(limits.deadline, adapter.abort)
    watchdog.daemon = True
    watchdog.start()
    try:
        with requests.Session() as session:
            session.trust_env = False  # no proxies or .netrc from the environment
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            for _hop in range(MAX_REDIRECTS + 1):
                url = _prepared(url)
                adapter.pin(url, check_url(url, limits.allow_private, timeout=limits.timeout))
                response = _get(session, url, limits)
                with response:
                    _check_deadline(adapter)
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("Location", ""))
                        continue
                    _check_response(response)
                    body = _read_body(response, limits, started, take)
                    _check_deadline(adapter)  # a shut socket reads as a clean end: do not trust it
                    return body
        raise UpstreamError(f"The image URL redirected more than {MAX_REDIRECTS} times.")
    except UpstreamError:
        _check_deadline(adapter)
        raise
    finally:
        watchdog.cancel()


def _check_deadline(adapter: PinnedAdapter) -> None:
    """Raise the timeout error when the watchdog has cut this fetch off."""
    if adapter.aborted:
        raise _too_slow()


def _prepared(url: str) -> str:
    """Return ``url`` as requests will send it (IDNA host, quoted path), so checks see the same host."""
    _check_length(url)
    request = requests.models.PreparedRequest()
    try:
        request.prepare_url(url, None)
    except (requests.RequestException, ValueError, UnicodeError):
        raise BadRequest("That URL is malformed.") from None
    return str(request.url)


def check_url(url: str, allow_private: bool, timeout: float | None = None) -> tuple[Target, ...]:
    """Return where ``url`` may connect; refuse one that is malformed, not http(s), or not public."""
    _check_length(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BadRequest("That URL is malformed.") from None
    if parts.scheme not in {"http", "https"}:
        raise BadRequest("Only http:// and https:// image URLs are accepted.")
    if not parts.hostname:
        raise BadRequest("That URL has no host name.")
    targets = resolve(parts.hostname, port or _default_port(parts.scheme), timeout)
    if not allow_private and not all(is_public(target.address) for target in targets):
        raise BadRequest("That URL points to a private or reserved network address, which is not allowed.")
    return targets


def _check_length(url: str) -> None:
    """Refuse a URL longer than ``MAX_URL_LENGTH``."""
    if len(url) > MAX_URL_LENGTH:
        raise BadRequest(f"The URL is longer than {MAX_URL_LENGTH} characters.")


def _default_port(scheme: str) -> int:
    """Return the port an http or https URL without one connects to."""
    return 443 if scheme == "https" else 80


def resolve(host: str, port: int, timeout: float | None = None) -> tuple[Target, ...]:
    """Return every address ``host`` resolves to, or raise ``BadRequest`` when it does not resolve."""
    if _IPV4_SPELLING.match(host):  # a number in any spelling: read it as the C library would, no DNS
        try:
            return (Target(socket.AF_INET, (socket.inet_ntoa(socket.inet_aton(host.rstrip("."))), port)),)
        except OSError:
            raise BadRequest("That URL's host is not a valid IPv4 address.") from None
    try:
        infos = _getaddrinfo(host, port, timeout)
    except (socket.gaierror, UnicodeError, ValueError):
        raise BadRequest("The host name of that URL does not resolve.") from None
    targets = tuple(dict.fromkeys(Target(info[0], tuple(info[4])) for info in infos
                                  if info[0] in {socket.AF_INET, socket.AF_INET6}))
    if not targets:
        raise BadRequest("The host name of that URL does not resolve.")
    return targets


def _getaddrinfo(host: str, port: int, timeout: float | None) -> list[Any]:
    """Look ``host`` up, giving up after ``timeout`` seconds (a resolver can stall far longer)."""
    if timeout is None:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    answer: list[Any] = []

    def lookup() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except Exception as exc:  # handed to the caller below
            answer.append(exc)

    # A daemon thread: if the resolver never answers, the request goes on and the thread dies with it.
    thread = threading.Thread(target=lookup, name="snakes-web-dns", daemon=True)
    thread.start()
    thread.join(timeout)
    if not answer:
        raise UpstreamTimeout("The host name of that URL took too long to resolve.")
    if isinstance(answer[0], Exception):
        raise answer[0]
    return list(answer[0])


def is_public(address: IPAddress) -> bool:
    """Tell whether ``address`` is a globally routable unicast address (embedded IPv4 unwrapped)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    if any(address in network for network in BLOCKED_NETWORKS):
        return False
    return address.is_global and not address.is_multicast


# --- connections that go only where the check said --------------------------------------------

class PinnedAdapter(HTTPAdapter):
    """A transport adapter that connects each host only to the addresses checked for it."""

    def __init__(self) -> None:
        self.pins: dict[tuple[str, int], tuple[Target, ...]] = {}
        self.sockets = _Sockets()
        super().__init__(max_retries=0)

    @property
    def aborted(self) -> bool:
        """Tell whether ``abort`` has cut this adapter's connections."""
        return self.sockets.aborted

    def abort(self) -> None:
        """Shut every socket this adapter opened or will open: a blocked read returns at once."""
        self.sockets.abort()

    def pin(self, url: str, targets: tuple[Target, ...]) -> None:
        """Allow connections for ``url``'s host and port to ``targets``, and nowhere else."""
        parts = urlsplit(url)
        port = parts.port or _default_port(parts.scheme)
        self.pins[(str(parts.hostname), port)] = targets

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        """Use a pool manager whose pools dial pinned addresses."""
        self.poolmanager = _PinnedPoolManager(self, num_pools=connections, maxsize=maxsize,
                                              block=block, **pool_kwargs)


class _Sockets:
    """The sockets of one fetch, so the watchdog can shut them all (also one opened just after)."""

    def __init__(self) -> None:
        self.aborted = False
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def add(self, sock: socket.socket) -> None:
        """Remember ``sock``; shut it at once when the fetch is already past its deadline."""
        with self._lock:
            self._open.append(sock)
            if self.aborted:
                _shut(sock)

    def abort(self) -> None:
        """Shut every socket, now and from now on."""
        with self._lock:
            self.aborted = True
            for sock in self._open:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    """Shut both directions of ``sock``; a socket already closed is fine."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _PinnedPoolManager(PoolManager):
    """Hands each new pool the checked addresses of its host; a host without any gets no pool."""

    def __init__(self, adapter: PinnedAdapter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.adapter = adapter
        self.pool_classes_by_scheme = {"http": _PinnedHTTPPool, "https": _PinnedHTTPSPool}

    def _new_pool(self, scheme: str, host: str, port: int,
                  request_context: dict[str, Any] | None = None) -> HTTPConnectionPool:
        targets = self.adapter.pins.get((host, port))
        if not targets:  # fail closed: nothing unchecked is ever dialled
            raise LocationValueError(f"no checked address for {host}:{port}")
        context = dict(request_context if request_context is not None else self.connection_pool_kw)
        context["targets"] = targets
        context["opened"] = self.adapter.sockets
        return super()._new_pool(scheme, host, port, request_context=context)


def _dial(connection: HTTPConnection, targets: tuple[Target, ...], opened: _Sockets) -> socket.socket:
    """Open a TCP connection to the first checked address that answers; never resolve a name."""
    error: OSError | None = None
    for target in targets:
        sock = socket.socket(target.family, socket.SOCK_STREAM)
        try:
            for option in connection.socket_options or ():
                sock.setsockopt(*option)
            if connection.timeout is None or isinstance(connection.timeout, (int, float)):
                sock.settimeout(connection.timeout)
            if connection.source_address:
                sock.bind(connection.source_address)
            sock.connect(target.sockaddr)
        except TimeoutError as exc:  # one slow address is enough: the timeout bounds the whole hop
            sock.close()
            raise ConnectTimeoutError(connection, f"Connection to {connection.host} timed out.") from exc
        except OSError as exc:
            sock.close()
            error = exc
            continue
        opened.add(sock)
        sys.audit("http.client.connect", connection, connection.host, connection.port)
        return sock
    raise NewConnectionError(connection, f"Failed to establish a new connection: {error}")


class _PinnedHTTPConnection(HTTPConnection):
    """A urllib3 connection that dials only the addresses checked for its host (see ``_dial``)."""

    def __init__(self, *args: Any, targets: tuple[Target, ...] = (),
                 opened: _Sockets | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.targets = targets
        self.opened = _Sockets() if opened is None else opened

    def _new_conn(self) -> socket.socket:
        return _dial(self, self.targets, self.opened)


class _PinnedHTTPSConnection(_PinnedHTTPConnection, HTTPSConnection):
    """The same over TLS: connect() wraps our socket with server_hostname = the URL's host name,
    so SNI and the certificate check use the name, not the address we dialled."""


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


# --- one hop ----------------------------------------------------------------------------------

def _get(session: requests.Session, url: str, limits: FetchLimits) -> requests.Response:
    """Start one GET without following redirects, turning transport failures into typed errors."""
    try:
        return session.get(url, stream=True, allow_redirects=False, verify=VERIFY,
                           timeout=(limits.timeout, limits.timeout),
                           headers={"User-Agent": USER_AGENT, "Accept": "image/*",
                                  "Accept-Encoding": "identity"})
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
        raise UnsupportedMediaType(f"The URL is not an image: its server says it is {content_type[:60]}.")


def _read_body(response: requests.Response, limits: FetchLimits, started: float,
               take: Callable[[int], None] | None) -> bytes:
    """Stream the body up to the byte cap and the total deadline, telling ``take`` of every piece."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise _too_big(limits)
    body = io.BytesIO()  # getvalue() hands over its buffer: no second copy of the image
    try:
        # read1: whatever one receive brings (at most 64 KB decoded), so a server that drips a byte
        # at a time meets the deadline check after every receive, not after every 64 KB.
        while chunk := response.raw.read1(64 * 1024, decode_content=True):
            if take is not None:
                take(len(chunk))
            body.write(chunk)
            if body.tell() > limits.max_bytes:
                raise _too_big(limits)
            if time.monotonic() - started > limits.deadline:
                raise _too_slow()
    except ReadTimeoutError:
        raise UpstreamTimeout("The image URL's server stopped sending in time.") from None
    except (HTTPError, OSError, requests.RequestException):
        raise UpstreamError("The download of the image broke off.") from None
    return body.getvalue()


def _too_slow() -> UpstreamTimeout:
    """Build the error for a fetch past its total deadline."""
    return UpstreamTimeout("The image took too long to download.")


def _too_big(limits: FetchLimits) -> PayloadTooLarge:
    """Build the error for a download over the byte cap."""
    return PayloadTooLarge(f"The image at that URL is larger than {limits.max_bytes // (1024 * 1024)} MB.")
