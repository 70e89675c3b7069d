"""The engine's HTTP application: every adapter adds its routes here, and nowhere else."""

from __future__ import annotations

from aiohttp import web

from engine.services import Services
from engine.web import api, health, httpphp, limits, ui
from engine.web.context import SERVICES

MAX_REQUEST_BYTES = 25 * 1024 * 1024  # above the largest accepted upload


def build(services: Services) -> web.Application:
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[limits.limit_bodies])
    app[SERVICES] = services
    if not services.settings.health_port:
        health.add_routes(app)  # else on their own loopback listener (build_health)
    httpphp.add_routes(app)
    api.add_routes(app)
    ui.add_routes(app)
    return app


def build_health(services: Services) -> web.Application:
    """/healthz and /metrics alone, for the loopback listener of VOCALCAST_HEALTH_PORT."""
    app = web.Application(client_max_size=1024)
    app[SERVICES] = services
    health.add_routes(app)
    return app
