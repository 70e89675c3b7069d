"""How large a request body each route takes: above its limit a page answers 413 before reading on
(http.php answers its own code, engine/web/httpphp.py; the API checks its own, engine/web/api_common.py).

A body announced too large is refused at once; a chunked one is cut when it passes the limit
(``client_max_size`` of the request, which aiohttp enforces when the form is read). Upload pages stream
their multipart body and stop at their own limit.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from engine.services.contacts_import import MAX_IMPORT_BYTES
from engine.web.context import services_of

# The form fields around an uploaded file (title, token, multipart boundaries).
_UPLOAD_SLACK: Final = 64 * 1024
# Forms anyone may post (connexion, mot de passe oublié, reset link): a few short fields.
PUBLIC_FORM_MAX_BYTES: Final = 16 * 1024
PUBLIC_PATHS: Final = ("/connexion", "/mot-de-passe-oublie", "/mot-de-passe/")
_UNLIMITED_HERE: Final = ("/api/", "/http.php")


def body_limit(request: web.Request) -> int | None:
    """The most bytes ``request``'s body may have; None for the routes that check their own."""
    path = request.path
    if path.startswith(_UNLIMITED_HERE):
        return None
    settings = services_of(request).settings
    if path == "/messages/nouveau":
        return int(settings.audio_max_bytes) + _UPLOAD_SLACK
    if path == "/contacts/transfert":
        return MAX_IMPORT_BYTES + _UPLOAD_SLACK
    if path.startswith(PUBLIC_PATHS):
        return PUBLIC_FORM_MAX_BYTES
    return int(settings.form_max_bytes)


def _too_large(limit: int, actual: int) -> web.HTTPRequestEntityTooLarge:
    return web.HTTPRequestEntityTooLarge(
        max_size=limit,
        actual_size=actual,
        text=f"Requête trop volumineuse ({limit // 1024} Ko au plus).",
        headers={"Connection": "close"},  # the rest of the body is not read
    )


@web.middleware
async def limit_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    limit = body_limit(request)
    if limit is None or request.method in {"GET", "HEAD", "OPTIONS"}:
        return await handler(request)
    length = request.content_length
    if length is not None and length > limit:
        raise _too_large(limit, length)
    limited = request.clone(client_max_size=limit)
    try:
        return await handler(limited)
    finally:
        # aiohttp closes the uploaded files of the request it made, not of a clone: the same cleanup here.
        limited._finish()


async def read_at_most(request: web.Request, limit: int) -> bytes | None:
    """The whole body when it has at most ``limit`` bytes, else None (read no further than limit + 1).
    ``content.read(n)`` alone returns what has arrived so far, which may be a part of the body."""
    body = bytearray()
    while len(body) <= limit:
        chunk = await request.content.read(limit + 1 - len(body))
        if not chunk:
            return bytes(body)
        body += chunk
    return None
