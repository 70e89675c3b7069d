"""`GET /healthz` (JSON, 200 when up, 503 naming what is down) and `GET /metrics` (Prometheus)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from engine import __version__

if TYPE_CHECKING:
    from engine.app import Engine

ENGINE: web.AppKey[Engine] = web.AppKey("engine")


async def healthz(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    database_up = await engine.db.ping()
    asterisk_up = engine.ari.ready
    trunks = await engine.trunk_report(asterisk_up)
    down = [name for name, up in (("database", database_up), ("asterisk", asterisk_up)) if not up]
    body: dict[str, Any] = {
        "status": "down" if down else "up",
        "version": __version__,
        "uptime_s": round(time.monotonic() - engine.started_monotonic, 1),
        "mode": "demo" if engine.settings.demo else "live",
        "node": engine.settings.node_name,
        "app": engine.settings.app_name,
        "database": "up" if database_up else "down",
        "asterisk": "up" if asterisk_up else "down",
        "trunks": trunks,
        "active_calls": engine.calls.active,
        "dialer": engine.dialer.state.blocked_reason or "ready",
    }
    if down:
        body["down"] = down
    return web.json_response(body, status=503 if down else 200)


async def metrics(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    engine.refresh_gauges()
    payload = generate_latest(engine.metrics.registry)
    return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
