"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json: its paths and responses.

Written by hand (the routes live in engine/web/api_*.py; a test checks both list the same paths and
methods). Every status a route can answer is listed; there is no catch-all ``default`` response.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Final

from aiohttp import web

from engine import __version__
from engine.web import openapi_account, openapi_contacts, openapi_privacy, openapi_sends, openapi_webhooks
from engine.web.api_common import PREFIX
from engine.web.openapi_schemas import SCHEMAS

PATHS: Final[dict[str, dict[str, dict[str, Any]]]] = {
    **openapi_account.PATHS,
    **openapi_sends.PATHS,
    **openapi_contacts.PATHS,
    **openapi_webhooks.PATHS,
    **openapi_privacy.PATHS,
}


@functools.cache
def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "vocalcast",
            "version": __version__,
            "description": (
                "API REST de diffusion de messages vocaux. Identification : en-tête "
                "« Authorization: Bearer <jeton> » (jeton créé par nos services). Erreurs : "
                '{"code": "...", "message": "..."} avec le statut HTTP qui convient.'
            ),
        },
        "servers": [{"url": PREFIX}],
        "security": [{"bearer": []}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


@functools.cache
def _document_bytes() -> bytes:
    return json.dumps(document(), ensure_ascii=False, indent=1).encode()


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(
        body=_document_bytes(),
        content_type="application/json",
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


def add_routes(api: web.Application) -> None:
    api.router.add_get("/openapi.json", get_openapi, allow_head=False)
