"""The engine process: owns the lifecycle of the database pool, the ARI link, the Stasis router
and the HTTP server, entered into one AsyncExitStack and closed in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import time
from contextlib import AsyncExitStack
from typing import Any

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from engine import mail
from engine.errors import DatabaseUnavailable
from engine.metrics import Metrics
from engine.services.dialing.dialer import Dialer
from engine.settings import Settings
from engine.store import Database
from engine.store.trunks import list_trunks
from engine.telephony.ari import AriClient, AriError, Event, events_task
from engine.telephony.calls import CallService
from engine.telephony.stasis import StasisRouter
from engine.web import routes
from ivr import service as ivr_service

log = structlog.get_logger(__name__)


class AccessLogger(AbstractAccessLogger):
    """Method, path, status and duration; never the query string (http.php carries passwords)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        structlog.get_logger("access").info(
            "http",
            method=request.method,
            path=request.path,
            status=response.status,
            duration_ms=round(time * 1000, 1),
            remote=request.remote,
        )

    @property
    def enabled(self) -> bool:
        return True


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started_monotonic = time.monotonic()
        self.metrics = Metrics()
        # min_size=0: the engine starts (and says 503) even while PostgreSQL is down.
        self.db = Database(settings.dsn, min_size=0, max_size=settings.db_pool_max, timeout_s=3.0)
        self.ari = AriClient(
            host="127.0.0.1",
            port=settings.ari_port,
            user=settings.ari_user,
            password=settings.require("ari_password"),
            app=settings.app_name,
            pool_size=settings.ari_pool_size,
            reconnect_max_s=settings.ari_reconnect_max_s,
        )
        self.router = StasisRouter()
        self.router.orphan_handler = self._on_orphan
        self.calls = CallService(self.ari, self.router)
        self.dialer = Dialer(settings, self.db, self.ari, self.calls, self.metrics)
        self.ari.on_connect(self._on_ari_connect)
        self.ari.state.listeners.append(self._on_ari_state)
        self._trunk_names: list[tuple[str, bool, int]] = []
        self._stack = AsyncExitStack()
        self._tasks: list[asyncio.Task[Any]] = []
        self.http_port: int | None = None
        self.run_dialer = True
        self.run_mail = True
        self.run_ivr = True

    async def __aenter__(self) -> Engine:
        try:
            await self._stack.enter_async_context(self.db)
            await self._stack.enter_async_context(self.ari)
            await self._stack.enter_async_context(events_task(self.ari, self._on_event))
            self._stack.push_async_callback(self.router.close)
            self._stack.push_async_callback(self.dialer.close)
            if self.run_ivr:
                await self._stack.enter_async_context(ivr_service.serve(self.settings, self.db))
            if self.run_mail:
                await self._stack.enter_async_context(mail.serve(self.settings, self.db, self.dialer.wake))
            self._start_task(self._watch_loop_lag(), "loop-lag")
            if self.run_dialer:
                self._start_task(self.dialer.run(), "dialer")
            # Lost BYEs and events never hold a slot forever: compare /channels with open calls.
            self._start_task(self.calls.run_sweeps(), "call-sweep")
            await self._start_http()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stack.aclose()

    def _start_task(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def _start_http(self) -> None:
        app = routes.build(self)
        runner = web.AppRunner(app, access_log_class=AccessLogger, handle_signals=False)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        # reuse_port: several engine processes on one host can serve the same HTTP port.
        site = web.TCPSite(
            runner, self.settings.http_host, self.settings.http_port, reuse_address=True, reuse_port=True
        )
        await site.start()
        server = site._server  # the bound port, for tests that ask for port 0
        sockets = getattr(server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else self.settings.http_port
        log.info("http.listening", host=self.settings.http_host, port=self.http_port)

    # --- ARI events ------------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        self.metrics.ari_events.inc()
        self.router.dispatch(event)

    def _on_ari_state(self, connected: bool) -> None:
        self.metrics.ari_connected.set(1 if connected else 0)
        if not connected:
            self.metrics.ari_reconnects.inc()
            self.dialer.connection_lost()

    async def _on_ari_connect(self) -> None:
        """After every (re)connection: events of the gap are lost, so look at what Asterisk has;
        no new call is placed before that is done."""
        channels = await self.ari.channels()
        ours = [c for c in channels if self.router.owns(str(c.get("id")))]
        log.info("ari.resync", channels=len(channels), ours=len(ours))
        try:
            await self.dialer.reconcile()
        except DatabaseUnavailable as exc:
            log.warning("dialer.reconcile_postponed", error=str(exc))

    def _on_orphan(self, event: Event) -> None:
        if event.get("type") != "StasisStart":
            return
        channel_id = str(event.get("channel", {}).get("id", ""))
        log.warning("stasis.orphan_channel", channel_id=channel_id)
        self._start_task(self._hangup_quietly(channel_id), f"orphan-{channel_id}")

    async def _hangup_quietly(self, channel_id: str) -> None:
        with contextlib.suppress(AriError, Exception):
            await self.ari.hangup(channel_id)

    # --- health ----------------------------------------------------------------------------------
    async def trunk_report(self, asterisk_up: bool) -> list[dict[str, Any]]:
        try:
            trunks = await list_trunks(self.db)
            self._trunk_names = [
                (t.name, t.demo, t.max_channels)
                for t in trunks
                if t.enabled and (self.settings.demo or not t.demo)
            ]
        except DatabaseUnavailable:
            pass  # keep the last known list
        states: dict[str, str] = {}
        if asterisk_up:
            with contextlib.suppress(AriError, Exception):
                for endpoint in await self.ari.endpoints("PJSIP"):
                    states[str(endpoint.get("resource"))] = str(endpoint.get("state", "unknown"))
        stats = self.dialer.trunk_stats()
        return [
            {
                "name": name,
                "state": states.get(name, "unknown"),
                "demo": demo,
                "max_channels": channels,
                **{k: v for k, v in stats.get(name, {}).items() if k != "max_channels"},
            }
            for name, demo, channels in self._trunk_names
        ]

    def refresh_gauges(self) -> None:
        size, idle = self.db.size
        self.metrics.db_pool_size.labels("total").set(size)
        self.metrics.db_pool_size.labels("idle").set(idle)
        self.metrics.ari_connected.set(1 if self.ari.ready else 0)

    async def _watch_loop_lag(self, interval_s: float = 0.25, window: int = 20) -> None:
        loop = asyncio.get_running_loop()
        samples: list[float] = []
        while True:
            before = loop.time()
            await asyncio.sleep(interval_s)
            lag = max(0.0, loop.time() - before - interval_s)
            self.metrics.loop_lag_hist.observe(lag)
            samples = [*samples[-(window - 1) :], lag]
            self.metrics.loop_lag.set(max(samples))


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    async with Engine(settings) as engine:
        log.info(
            "engine.started",
            app=settings.app_name,
            mode="demo" if settings.demo else "live",
            http=f"{settings.http_host}:{engine.http_port}",
        )
        await stop.wait()
        log.info("engine.stopping")
