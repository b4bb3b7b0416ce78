"""URL fetching: only http(s) to public addresses, bounded in size and time, images only."""
from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from snakes_web.exceptions import BadRequest, PayloadTooLarge, UnsupportedMediaType, UpstreamError, UpstreamTimeout
from snakes_web.imaging import fetch
from snakes_web.imaging.fetch import FetchLimits, check_url, fetch_image, is_public
from tests.conftest import Route, image_bytes

OPEN = FetchLimits(max_bytes=100_000, timeout=1.0, allow_private=True)
PNG = {"Content-Type": "image/png"}


def test_an_image_is_downloaded(image_server: Any) -> None:
    image_server.routes["/a.png"] = Route(image_bytes(), headers=PNG)
    assert fetch_image(image_server.url("/a.png"), OPEN) == image_bytes()


def test_a_redirect_is_followed(image_server: Any) -> None:
    image_server.routes["/old"] = Route(status=302, headers={"Location": "/a.png"})
    image_server.routes["/a.png"] = Route(image_bytes(), headers=PNG)
    assert fetch_image(image_server.url("/old"), OPEN) == image_bytes()


def test_endless_redirects_stop(image_server: Any) -> None:
    image_server.routes["/loop"] = Route(status=302, headers={"Location": "/loop"})
    with pytest.raises(UpstreamError, match="redirected more than"):
        fetch_image(image_server.url("/loop"), OPEN)
    assert len(image_server.hits) == fetch.MAX_REDIRECTS + 1


def test_the_user_agent_is_honest(image_server: Any) -> None:
    seen: list[str] = []
    image_server.routes["/a.png"] = Route(image_bytes(), headers=PNG)
    original = fetch._get

    def spy(session: Any, url: str, limits: FetchLimits) -> Any:
        response = original(session, url, limits)
        seen.append(response.request.headers["User-Agent"])
        return response

    fetch._get, saved = spy, fetch._get
    try:
        fetch_image(image_server.url("/a.png"), OPEN)
    finally:
        fetch._get = saved
    assert seen and seen[0].startswith("snakes-web/")


def test_a_declared_length_over_the_cap_is_refused_before_reading(image_server: Any) -> None:
    image_server.routes["/big.png"] = Route(b"x" * 200_000, headers=PNG)
    with pytest.raises(PayloadTooLarge):
        fetch_image(image_server.url("/big.png"), OPEN)


def test_an_endless_body_stops_at_the_cap(image_server: Any) -> None:
    image_server.routes["/endless"] = Route(headers=PNG, endless=True)
    with pytest.raises(PayloadTooLarge):
        fetch_image(image_server.url("/endless"), OPEN)


def test_a_slow_server_times_out(image_server: Any) -> None:
    image_server.routes["/slow"] = Route(image_bytes(), headers=PNG, delay=2.5)
    with pytest.raises(UpstreamTimeout):
        fetch_image(image_server.url("/slow"), OPEN)


def test_a_page_is_not_an_image(image_server: Any) -> None:
    image_server.routes["/page"] = Route(b"<html/>", headers={"Content-Type": "text/html; charset=utf-8"})
    with pytest.raises(UnsupportedMediaType, match="text/html"):
        fetch_image(image_server.url("/page"), OPEN)


@pytest.mark.parametrize("status", [403, 404, 500, 503])
def test_remote_errors_are_bad_gateway(image_server: Any, status: int) -> None:
    image_server.routes["/x"] = Route(b"no", status=status)
    with pytest.raises(UpstreamError, match=str(status)):
        fetch_image(image_server.url("/x"), OPEN)


def test_a_closed_port_is_bad_gateway() -> None:
    from tests.conftest import free_port

    with pytest.raises(UpstreamError):
        fetch_image(f"http://127.0.0.1:{free_port()}/x.png", OPEN)


# --- where a URL may point --------------------------------------------------------------------

@pytest.mark.parametrize("url", ["ftp://127.0.0.1/a.png", "file:///etc/passwd", "gopher://x/",
                                 "javascript:alert(1)", "data:image/png;base64,AAAA", "http://",
                                 "http://[::1", "http://x:99999/", "not a url"])
def test_only_http_and_https_urls_with_a_host(url: str) -> None:
    with pytest.raises(BadRequest):
        check_url(url, allow_private=True)


def test_a_very_long_url_is_refused() -> None:
    with pytest.raises(BadRequest, match="longer than"):
        check_url("http://example.org/" + "a" * 3000, allow_private=True)


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "localhost", "[::1]", "0.0.0.0",
    "[::ffff:127.0.0.1]", "[::ffff:10.0.0.1]",
])
def test_loopback_in_any_spelling_is_refused(host: str) -> None:
    with pytest.raises(BadRequest, match="private or reserved"):
        check_url(f"http://{host}/a.png", allow_private=False)


@pytest.mark.parametrize("address", [
    "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "224.0.0.1",
    "240.0.0.1", "0.0.0.0", "255.255.255.255", "::1", "fe80::1", "fc00::1", "ff02::1", "::",
    "::ffff:192.168.0.1", "2002:c0a8:0101::1", "192.0.2.1", "198.18.0.1",
])
def test_non_public_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8"])
def test_public_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(BadRequest, match="does not resolve"):
        check_url("http://no-such-host.invalid/a.png", allow_private=False)


def test_a_redirect_to_a_blocked_address_is_refused(image_server: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Treat exactly 127.0.0.1 as "public" so the first hop passes; the redirect goes to 127.0.0.2.
    monkeypatch.setattr(fetch, "is_public", lambda address: str(address) == "127.0.0.1")
    image_server.routes["/hop"] = Route(status=302, headers={
        "Location": image_server.url("/a.png", host="127.0.0.2")})
    image_server.routes["/a.png"] = Route(image_bytes(), headers=PNG)
    with pytest.raises(BadRequest, match="private or reserved"):
        fetch_image(image_server.url("/hop"), FetchLimits(100_000, 1.0, allow_private=False))
    assert image_server.hits == ["/hop"]


def test_the_api_refuses_a_loopback_url_by_default(app: Any, client: Any, image_server: Any) -> None:
    app.config["ALLOW_PRIVATE_URLS"] = False
    image_server.routes["/a.png"] = Route(image_bytes(), headers=PNG)
    response = client.post("/api/v1/predict", json={"url": image_server.url("/a.png")})
    assert response.status_code == 400 and image_server.hits == []
