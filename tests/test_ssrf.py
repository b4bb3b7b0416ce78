"""Where a URL may point: every blocked range refused in every spelling, and the connection goes
only to the address that was checked (no second DNS lookup, so no DNS rebinding).

No traffic leaves loopback: names are answered by a fake resolver, and where a check must pass a
public address, the socket's connect is intercepted before anything is sent.
"""
from __future__ import annotations

import http.server
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from snakes_web.exceptions import BadRequest, UpstreamError, UpstreamTimeout
from snakes_web.imaging import fetch
from snakes_web.imaging.fetch import FetchLimits, check_url, fetch_image, is_public
from tests.conftest import ImageServer, Route, image_bytes

OPEN = FetchLimits(max_bytes=100_000, timeout=1.0, allow_private=True)
CLOSED = FetchLimits(max_bytes=100_000, timeout=1.0, allow_private=False)
PNG = {"Content-Type": "image/png"}
PUBLIC = "93.184.216.34"  # never contacted: connect() to it is intercepted

# One address from every range we refuse, and the range it stands for.
BLOCKED = [
    ("0.0.0.0", "this network / unspecified"), ("0.1.2.3", "this network"),
    ("10.1.2.3", "private 10/8"), ("100.64.0.1", "CGNAT 100.64/10"), ("100.127.255.254", "CGNAT top"),
    ("127.0.0.1", "loopback"), ("127.255.255.254", "loopback top"),
    ("169.254.169.254", "link-local: cloud metadata"), ("172.16.0.1", "private 172.16/12"),
    ("172.31.255.254", "private 172.16/12 top"), ("192.0.0.1", "IETF protocol assignments"),
    ("192.0.0.9", "IETF protocol assignments (PCP anycast)"), ("192.0.2.1", "TEST-NET-1"),
    ("192.88.99.1", "6to4 relay anycast"), ("192.168.1.1", "private 192.168/16"),
    ("198.18.0.1", "benchmarking 198.18/15"), ("198.19.255.254", "benchmarking top"),
    ("198.51.100.1", "TEST-NET-2"), ("203.0.113.1", "TEST-NET-3"), ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast SSDP"), ("240.0.0.1", "reserved 240/4"),
    ("255.255.255.255", "broadcast"),
    ("::", "IPv6 unspecified"), ("::1", "IPv6 loopback"), ("::127.0.0.1", "IPv4-compatible loopback"),
    ("::8.8.8.8", "IPv4-compatible (deprecated)"), ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped private"), ("::ffff:169.254.169.254", "IPv4-mapped metadata"),
    ("64:ff9b::7f00:1", "NAT64 of loopback"), ("64:ff9b::a9fe:a9fe", "NAT64 of metadata"),
    ("64:ff9b:1::1", "local-use NAT64"), ("100::1", "discard"),
    ("2001::1", "Teredo"), ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo client"),
    ("2001:db8::1", "documentation"), ("3fff::1", "documentation (2024)"),
    ("2002:7f00:1::1", "6to4 of loopback"), ("2002:a9fe:a9fe::1", "6to4 of metadata"),
    ("fc00::1", "unique local"), ("fd12:3456::1", "unique local"), ("fe80::1", "link-local"),
    ("fec0::1", "site-local (deprecated)"), ("ff02::1", "multicast"), ("ff05::1:3", "multicast"),
]


@pytest.mark.parametrize("address, what", BLOCKED, ids=[f"{a} {w}" for a, w in BLOCKED])
def test_every_blocked_range_is_not_public(address: str, what: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address, what", BLOCKED, ids=[f"{a} {w}" for a, w in BLOCKED])
def test_a_name_resolving_into_a_blocked_range_is_refused(address: str, what: str,
                                                          resolver: FakeResolver) -> None:
    resolver.answers["evil.test"] = [[address]]
    with pytest.raises(BadRequest, match="private or reserved"):
        check_url("http://evil.test/a.png", allow_private=False)


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"])
def test_public_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


# Spellings of loopback, private and metadata addresses that browsers and C libraries accept.
SPELLINGS = ["127.0.0.1", "127.1", "127.0.1", "2130706433", "0x7f000001", "0x7f.1", "0x7F.0.0.1",
             "017700000001", "0177.0.0.1", "0177.0.0.01", "127.0.0.1.", "0", "0.0.0.0", "0x0",
             "localhost", "LOCALHOST", "[::1]", "[::]", "[0:0:0:0:0:0:0:1]",
             "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::127.0.0.1]", "[64:ff9b::127.0.0.1]",
             "[2002:7f00:1::]", "[fe80::1]", "169.254.169.254", "2852039166", "0xa9fea9fe",
             "0251.0376.0251.0376", "0xa9.0xfe.0xa9.0xfe", "[::ffff:a9fe:a9fe]", "10.1", "167772161",
             "0xa.0.0.1", "100.64.0.1", "1681915905", "192.168.1", "3232235777"]


@pytest.mark.parametrize("host", SPELLINGS)
def test_every_spelling_of_an_inside_address_is_refused(host: str) -> None:
    with pytest.raises(BadRequest, match="private or reserved"):
        check_url(f"http://{host}/a.png", allow_private=False)


@pytest.mark.parametrize("host", ["1.2.3.4.5", "0x1g.0.0.1", "256.256.256.256", "08.0.0.1",
                                  "4294967296"])
def test_a_broken_number_is_not_an_address(host: str) -> None:
    with pytest.raises(BadRequest):
        check_url(f"http://{host}/a.png", allow_private=False)


def test_a_name_with_one_inside_address_among_public_ones_is_refused(resolver: FakeResolver) -> None:
    resolver.answers["mixed.test"] = [[PUBLIC, "10.0.0.1"]]
    with pytest.raises(BadRequest, match="private or reserved"):
        check_url("http://mixed.test/a.png", allow_private=False)


# --- a fake resolver: names answered from a table, one answer list per lookup ------------------

class FakeResolver:
    """Stands in for ``socket.getaddrinfo``: answers listed names, counts every lookup of them."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in self.answers:
            return self.real(host, port, *args, **kwargs)
        self.lookups.append(name)
        rounds = self.answers[name]
        addresses = rounds[min(self.lookups.count(name) - 1, len(rounds) - 1)]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, int(port), 0, 0) if ":" in a else (a, int(port))) for a in addresses]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> FakeResolver:
    fake = FakeResolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Record every outgoing connect; refuse any that is not to loopback, before a packet leaves."""
    seen: list[tuple[Any, ...]] = []
    real = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        seen.append(tuple(address))
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise ConnectionRefusedError("intercepted by the test: no traffic off loopback")
        real(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


# --- DNS rebinding ------------------------------------------------------------------------------

def test_the_connection_goes_to_the_checked_address_without_a_second_lookup(
        image_server: ImageServer, resolver: FakeResolver, connects: list[tuple[Any, ...]]) -> None:
    # First answer: the loopback server (allowed by the test setting). Every later answer: 127.0.0.2,
    # where nothing listens. A client that looked the name up again would fail.
    resolver.answers["images.test"] = [["127.0.0.1"], ["127.0.0.2"]]
    hosts: list[str] = []
    image_server.routes["/a.png"] = Route(image_bytes(), headers=PNG)
    original = image_server.httpd.RequestHandlerClass.do_GET  # type: ignore[attr-defined]

    def spy(handler: Any) -> None:
        hosts.append(handler.headers["Host"])
        original(handler)

    image_server.httpd.RequestHandlerClass.do_GET = spy  # type: ignore[attr-defined]
    assert fetch_image(f"http://images.test:{image_server.port}/a.png", OPEN) == image_bytes()
    assert resolver.lookups == ["images.test"]
    assert [address[0] for address in connects] == ["127.0.0.1"]
    assert hosts == [f"images.test:{image_server.port}"]  # the name, not the address, in Host


def test_a_rebinding_name_cannot_reach_loopback(resolver: FakeResolver,
                                                connects: list[tuple[Any, ...]]) -> None:
    # The check sees a public address; a second lookup would say 127.0.0.1.
    resolver.answers["rebind.test"] = [[PUBLIC], ["127.0.0.1"]]
    with pytest.raises(UpstreamError):
        fetch_image("http://rebind.test/a.png", CLOSED)
    assert resolver.lookups == ["rebind.test"]
    assert connects == [(PUBLIC, 80)]  # dialled the vetted address only (and the test refused it)


def test_each_vetted_address_is_tried_in_order_and_nothing_else(resolver: FakeResolver,
                                                               connects: list[tuple[Any, ...]]) -> None:
    resolver.answers["two.test"] = [[PUBLIC, "2606:4700:4700::1111"], ["127.0.0.1"]]
    with pytest.raises(UpstreamError, match="could not be reached"):
        fetch_image("http://two.test:8080/a.png", CLOSED)
    assert [address[:2] for address in connects] == [(PUBLIC, 8080), ("2606:4700:4700::1111", 8080)]
    assert resolver.lookups == ["two.test"]


def test_a_redirect_is_checked_and_pinned_like_the_first_hop(image_server: ImageServer,
                                                             resolver: FakeResolver) -> None:
    resolver.answers["first.test"] = [["127.0.0.1"]]
    resolver.answers["second.test"] = [["127.0.0.1"], ["127.0.0.2"]]
    image_server.routes["/hop"] = Route(status=302, headers={
        "Location": f"http://second.test:{image_server.port}/a.png"})
    image_server.routes["/a.png"] = Route(image_bytes(), headers=PNG)
    assert fetch_image(f"http://first.test:{image_server.port}/hop", OPEN) == image_bytes()
    assert resolver.lookups == ["first.test", "second.test"]


@pytest.mark.parametrize("location", ["http://127.0.0.1:{port}/a.png", "http://2130706433:{port}/a.png",
                                      "http://[::1]:{port}/a.png", "http://169.254.169.254/latest/",
                                      "http://inside.test:{port}/a.png", "file:///etc/passwd",
                                      "gopher://127.0.0.1:{port}/"])
def test_a_redirect_to_a_blocked_address_is_refused(location: str, image_server: ImageServer,
                                                    resolver: FakeResolver,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # outside.test passes the check as if public (only 127.0.0.1 under that name is let through).
    resolver.answers["outside.test"] = [["127.0.0.1"]]
    resolver.answers["inside.test"] = [["10.0.0.7"]]
    real_check = fetch.check_url

    def check(url: str, allow_private: bool, **kwargs: Any) -> Any:
        return real_check(url, allow_private=url.startswith("http://outside.test:"), **kwargs)

    monkeypatch.setattr(fetch, "check_url", check)
    image_server.routes["/hop"] = Route(status=302, headers={
        "Location": location.format(port=image_server.port)})
    image_server.routes["/a.png"] = Route(image_bytes(), headers=PNG)
    with pytest.raises(BadRequest):
        fetch_image(f"http://outside.test:{image_server.port}/hop", CLOSED)
    assert image_server.hits == ["/hop"]


def test_a_host_without_a_pin_is_never_dialled(image_server: ImageServer) -> None:
    # The adapter fails closed: a request to a host nobody checked does not connect at all.
    import requests

    adapter = fetch.PinnedAdapter()
    with requests.Session() as session:
        session.mount("http://", adapter)
        with pytest.raises(requests.RequestException):
            session.get(image_server.url("/a.png"), timeout=1)
    assert image_server.hits == []


def test_a_resolver_that_stalls_is_a_timeout(resolver: FakeResolver, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    answer = resolver.real

    def stalling(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "slow-dns.test":
            release.wait(10)
            return answer("127.0.0.1", port, *args, **kwargs)
        return resolver(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", stalling)
    try:
        with pytest.raises(UpstreamTimeout, match="resolve"):
            fetch_image("http://slow-dns.test/a.png", FetchLimits(100_000, 0.3, allow_private=True))
    finally:
        release.set()


# --- https: the name goes into SNI and the certificate check, the address into connect --------

@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Start an HTTPS image server on loopback with a certificate for the given names."""
    import trustme
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setattr(fetch, "VERIFY", str(bundle))
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(*names: str) -> tuple[int, list[str | None]]:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names).configure_cert(context)
        sni: list[str | None] = []
        context.sni_callback = lambda sock, name, ctx: sni.append(name)  # type: ignore[assignment]
        body = image_bytes()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return int(httpd.server_address[1]), sni

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_https_checks_the_certificate_against_the_name(tls_server: Callable[..., Any],
                                                       resolver: FakeResolver) -> None:
    port, sni = tls_server("images.test")
    resolver.answers["images.test"] = [["127.0.0.1"], ["127.0.0.2"]]
    assert fetch_image(f"https://images.test:{port}/a.png", OPEN) == image_bytes()
    assert sni == ["images.test"] and resolver.lookups == ["images.test"]


def test_https_refuses_a_certificate_for_another_name_even_if_it_covers_the_address(
        tls_server: Callable[..., Any], resolver: FakeResolver) -> None:
    port, _ = tls_server("other.test", "127.0.0.1")
    resolver.answers["images.test"] = [["127.0.0.1"]]
    with pytest.raises(UpstreamError, match="could not be reached"):
        fetch_image(f"https://images.test:{port}/a.png", OPEN)


# --- a server that drips: the total deadline holds ----------------------------------------------

class DripServer:
    """A raw loopback server that sends its answer one small piece every ``gap`` seconds."""

    def __init__(self, pieces: list[bytes], gap: float) -> None:
        self.finished = threading.Event()   # set when every piece went out
        self.hung_up = threading.Event()    # set when the client closed early
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]

        def serve() -> None:
            conn, _ = self.listener.accept()
            with conn:
                conn.recv(65536)
                try:
                    for piece in pieces:
                        conn.sendall(piece)
                        time.sleep(gap)
                    self.finished.set()
                except OSError:
                    self.hung_up.set()

        threading.Thread(target=serve, daemon=True).start()

    def close(self) -> None:
        self.listener.close()


def test_headers_dripped_forever_hit_the_deadline() -> None:
    # Each header line arrives within the read timeout, so only a total deadline stops this.
    pieces = [b"HTTP/1.1 200 OK\r\n"] + [b"X-Drip: %d\r\n" % i for i in range(60)]
    server = DripServer(pieces, gap=0.1)
    try:
        with pytest.raises(UpstreamTimeout, match="too long"):
            fetch_image(f"http://127.0.0.1:{server.port}/a.png", FetchLimits(100_000, 0.5, True))
        assert server.hung_up.wait(10) and not server.finished.is_set()  # the client let go first
    finally:
        server.close()


def test_a_body_dripped_byte_by_byte_is_dropped_at_the_deadline() -> None:
    body = image_bytes()[:60]
    head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n" % len(body)
    server = DripServer([head] + [body[i:i + 1] for i in range(len(body))], gap=0.1)
    try:
        with pytest.raises(UpstreamTimeout, match="too long"):
            fetch_image(f"http://127.0.0.1:{server.port}/a.png", FetchLimits(100_000, 0.5, True))
        assert server.hung_up.wait(10) and not server.finished.is_set()
    finally:
        server.close()
