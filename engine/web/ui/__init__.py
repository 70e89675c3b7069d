"""The customer's private space (« espace privé »): French pages rendered on the server (jinja2), a little
JavaScript, one module per page group. Every rule stays in the domain and the use cases it calls."""

from __future__ import annotations

from aiohttp import web

from engine.web.ui import account, auth, contacts, dashboard, history, library, privacy, sending, webhooks
from engine.web.ui.core import STATIC_DIR


def add_routes(app: web.Application) -> None:
    for module in (auth, dashboard, library, sending, contacts, history, account, webhooks, privacy):
        module.add_routes(app)
    app.router.add_static("/static", STATIC_DIR)
