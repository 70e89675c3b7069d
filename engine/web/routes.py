"""The engine's HTTP application: every adapter adds its routes here, and nowhere else."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from engine.web import api, health, httpphp, ui

if TYPE_CHECKING:
    from engine.app import Engine

MAX_REQUEST_BYTES = 25 * 1024 * 1024  # above the largest accepted upload


def build(engine: Engine) -> web.Application:
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app[health.ENGINE] = engine
    health.add_routes(app)
    httpphp.add_routes(app)
    api.add_routes(app)
    ui.add_routes(app)
    return app
