"""Who is asking: the client's address behind the configured proxies, and the key a rate limit counts by.

With nothing in front of gunicorn (``PROXY_HOPS`` 0) the peer address is the client and no header is
believed. Behind Heroku's router or an Ingress (1 hop), Werkzeug's ``ProxyFix`` takes the address that
many hops back in ``X-Forwarded-For``: the one the last trusted proxy saw, which the client cannot forge.
An IPv6 client counts as its /64 (one customer's network, where an address costs nothing).
"""
from __future__ import annotations

import ipaddress

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix


def register_proxies(app: Flask) -> None:
    """Trust ``PROXY_HOPS`` proxies' X-Forwarded-For and -Proto (outermost: everything after sees the client)."""
    hops = int(app.config["PROXY_HOPS"])
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]


def client_key() -> str:
    """Return the rate-limit key of this request's client: its IPv4 address, or its IPv6 /64."""
    return address_key(request.remote_addr or "")


def address_key(address: str) -> str:
    """Return the key of one address: IPv4 (also when IPv4-mapped) as it is, IPv6 as its /64 network."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address or "-"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
