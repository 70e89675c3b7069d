"""/healthz and /metrics can leave the public listener for a loopback-only one (VOCALCAST_HEALTH_PORT)."""

from __future__ import annotations

import dataclasses

import aiohttp
import pytest

from engine.app import Engine
from engine.settings import Settings
from engine.store import Database
from tests.conftest import PORT_BASE

pytestmark = pytest.mark.integration


async def status(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status


async def test_health_and_metrics_only_on_the_loopback_listener(
    stack_settings: Settings, db: Database
) -> None:
    settings = dataclasses.replace(stack_settings, health_port=PORT_BASE + 81)
    engine = Engine(settings)
    engine.run_dialer = False
    async with engine:
        public = f"http://127.0.0.1:{engine.http_port}"
        assert await status(f"{public}/healthz") == 404
        assert await status(f"{public}/metrics") == 404
        assert settings.health_url == f"http://127.0.0.1:{PORT_BASE + 81}/healthz"
        assert await status(settings.health_url) in {200, 503}  # the report itself, whatever it says
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{PORT_BASE + 81}/metrics") as resp,
        ):
            assert resp.status == 200 and "vocalcast_event_loop_lag_seconds" in await resp.text()
        assert await status(f"{public}/connexion") == 200  # the pages stay where they were


async def test_by_default_health_is_on_the_http_port(stack_settings: Settings, db: Database) -> None:
    engine = Engine(stack_settings)
    engine.run_dialer = False
    async with engine:
        assert await status(f"http://127.0.0.1:{engine.http_port}/metrics") == 200
