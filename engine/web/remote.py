"""Who is calling us: the client address every throttle and log keys on."""

from __future__ import annotations

import ipaddress

from aiohttp import web


def client_address(request: web.Request) -> str:
    """The client's address. Behind a reverse proxy on this machine (the README's nginx setup), the
    proxy appends the real address to X-Forwarded-For; that header is believed only from loopback."""
    remote = request.remote or ""
    try:
        local = ipaddress.ip_address(remote).is_loopback
    except ValueError:
        local = False
    forwarded = request.headers.get("X-Forwarded-For", "")
    if local and forwarded:
        return forwarded.rsplit(",", 1)[-1].strip()[:100]
    return remote
