"""`GET /healthz` (JSON, 200 when up, 503 naming what is down) and `GET /metrics` (Prometheus)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from engine.services.health import Health
from engine.web.context import services_of


def _health(request: web.Request) -> Health:
    health = services_of(request).health
    if health is None:
        raise web.HTTPNotFound()
    return health


async def healthz(request: web.Request) -> web.Response:
    status, body = await _health(request).report()
    return web.json_response(body, status=status)


async def metrics(request: web.Request) -> web.Response:
    payload = _health(request).metrics_text()
    return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
