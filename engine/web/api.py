"""The JSON REST API under /api/v1, a sub-application of the engine's HTTP server: its parts, mounted.

Described by the OpenAPI document it publishes at /api/v1/openapi.json (engine/web/openapi.py).
"""

from __future__ import annotations

from aiohttp import web

from engine.web import api_account, api_contacts, api_messages, api_privacy, api_sends, api_webhooks, openapi
from engine.web.api_common import PREFIX, middlewares


def build() -> web.Application:
    """The /api/v1 sub-application with every route of the API."""
    api = web.Application(middlewares=middlewares())
    openapi.add_routes(api)
    api_account.add_routes(api)
    api_messages.add_routes(api)
    api_sends.add_routes(api)
    api_contacts.add_routes(api)
    api_webhooks.add_routes(api)
    api_privacy.add_routes(api)
    return api


def add_routes(app: web.Application) -> None:
    app.add_subapp(PREFIX, build())
