"""`/http.php`: the manual's HTTP interface, unchanged for existing clients.

GET or POST form, always HTTP 200 with the two-digit code alone as a text/plain body (no newline).
Values may come percent-encoded as UTF-8 (modern clients) or Latin-1/cp1252 (old PHP): each is
decoded as UTF-8 first, cp1252 otherwise. A query or POST body over MAX_BODY gets code 100 (never a 413).
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl

import structlog
from aiohttp import web

from engine.services.intake import CompatRequest
from engine.web.context import services_of
from engine.web.limits import read_at_most
from engine.web.remote import client_address

log = structlog.get_logger(__name__)

FIELDS = ("email", "pass", "numero", "ref", "transfert", "com", "emetteur", "diff", "depot")
MAX_BODY = 64 * 1024


def decode_form(raw: str) -> dict[str, str]:
    """Form/query text → fields; each value's bytes as UTF-8, else cp1252 (the first occurrence wins)."""
    out: dict[str, str] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True, encoding="latin-1"):
        if key in out:
            continue
        data = value.encode("latin-1")
        try:
            out[key] = data.decode("utf-8")
        except UnicodeDecodeError:
            out[key] = data.decode("cp1252", errors="replace")
    return out


TOO_LARGE: Final = "100"


def _answer(code: str, retry_after_s: float | None = None) -> web.Response:
    headers = {"Cache-Control": "no-store"}
    if retry_after_s is not None:
        headers["Retry-After"] = str(int(retry_after_s + 0.999))
    return web.Response(text=code, content_type="text/plain", charset="utf-8", headers=headers)


async def http_php(request: web.Request) -> web.Response:
    raw = request.rel_url.raw_query_string
    if len(raw) > MAX_BODY:
        log.info("httpphp.too_large", query=len(raw))
        return _answer(TOO_LARGE)
    if request.method == "POST":
        # Past MAX_BODY: our own code, still HTTP 200 (the contract), and the body is read no further.
        if (request.content_length or 0) > MAX_BODY:
            log.info("httpphp.too_large", announced=request.content_length)
            return _answer(TOO_LARGE)
        body = await read_at_most(request, MAX_BODY)
        if body is None:
            log.info("httpphp.too_large", announced=None)
            return _answer(TOO_LARGE)
        raw = body.decode("latin-1")
    fields = decode_form(raw)
    compat = CompatRequest(
        email=fields.get("email", ""),
        password=fields.get("pass", ""),
        numero=fields.get("numero", ""),
        ref=fields.get("ref", ""),
        transfert=fields.get("transfert", ""),
        com=fields.get("com", ""),
        emetteur=fields.get("emetteur", ""),
        diff=fields.get("diff", ""),
        depot=fields.get("depot", ""),
    )
    answer = await services_of(request).intake.http(compat, client=client_address(request))
    return _answer(answer.code, answer.retry_after_s)


def add_routes(app: web.Application) -> None:
    app.router.add_route("GET", "/http.php", http_php)
    app.router.add_route("POST", "/http.php", http_php)
