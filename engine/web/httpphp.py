"""`/http.php`: the manual's HTTP interface, unchanged for existing clients.

GET or POST form, always HTTP 200 with the two-digit code alone as a text/plain body (no newline).
Values may come percent-encoded as UTF-8 (modern clients) or Latin-1/cp1252 (old PHP): each is
decoded as UTF-8 first, cp1252 otherwise.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from aiohttp import web

from engine.services.intake import CompatRequest
from engine.web.context import services_of
from engine.web.remote import client_address

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


async def http_php(request: web.Request) -> web.Response:
    raw = request.rel_url.raw_query_string
    if request.method == "POST":
        body = await request.content.read(MAX_BODY + 1)
        if len(body) <= MAX_BODY:
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
    headers = {"Cache-Control": "no-store"}
    if answer.retry_after_s is not None:
        headers["Retry-After"] = str(int(answer.retry_after_s + 0.999))
    return web.Response(text=answer.code, content_type="text/plain", charset="utf-8", headers=headers)


def add_routes(app: web.Application) -> None:
    app.router.add_route("GET", "/http.php", http_php)
    app.router.add_route("POST", "/http.php", http_php)
