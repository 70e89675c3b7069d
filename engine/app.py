"""The engine process, and the one place where its parts are put together: the database pool, the ARI
link, the Stasis router, the call service, the dialer, the services room and the servers in front of it
(HTTP, SMTP, FastAGI). Resources are entered into one AsyncExitStack and closed in reverse order;
background loops run under a supervisor that logs and restarts them."""

from __future__ import annotations

import asyncio
import re
import time
from contextlib import AsyncExitStack
from typing import Final

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from engine import mail
from engine.errors import DatabaseUnavailable
from engine.media import server as media_server
from engine.metrics import Metrics
from engine.services import build
from engine.services.callbacks import Callbacks
from engine.services.dialing.dialer import Dialer
from engine.services.health import Health
from engine.settings import Settings
from engine.store import Database
from engine.supervisor import Supervisor
from engine.telephony.ari import AriClient, AriError, AriUnavailable, Event, events_task
from engine.telephony.calls import CallService
from engine.telephony.sipwatch import SipWatch
from engine.telephony.stasis import StasisRouter
from engine.web import httpphp, routes, webhook_payloads
from engine.web.runner import HttpRunner
from ivr import service as ivr_service

log = structlog.get_logger(__name__)


# Paths that carry a secret: a password-reset link's token is replaced in the access log.
_SECRET_PATH: Final = re.compile(r"^(/mot-de-passe/)[^/]+")


class AccessLogger(AbstractAccessLogger):
    """Method, path, status and duration; never the query string (http.php carries passwords), nor the
    token of a reset link."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        structlog.get_logger("access").info(
            "http",
            method=request.method,
            path=_SECRET_PATH.sub(r"\1…", request.path),
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
            freeze_at_originate=settings.test_freeze_originate,
        )
        self.router = StasisRouter()
        self.router.orphan_handler = self._on_orphan
        self.calls = CallService(self.ari, self.router)
        # The trunks' own ARI application: endpoint states and inbound channels, apart from the calls.
        self.trunk_events = AriClient(
            host="127.0.0.1",
            port=settings.ari_port,
            user=settings.ari_user,
            password=settings.require("ari_password"),
            app=settings.app_name + "-trunks",
            pool_size=2,
            reconnect_max_s=settings.ari_reconnect_max_s,
        )
        self.sipwatch = SipWatch(password=settings.hep_password)
        self.dialer = Dialer(
            settings,
            self.db,
            self.ari,
            self.calls,
            self.metrics,
            trunk_events=self.trunk_events,
            sipwatch=self.sipwatch,
        )
        self.services = build(
            settings,
            self.db,
            wake=self.dialer.wake,
            health=Health(settings, self.db, self.dialer, self.metrics, self.started_monotonic),
        )
        self.services.recordings.watch(self.metrics)
        self.ari.on_connect(self._on_ari_connect)
        self.ari.state.listeners.append(self._on_ari_state)
        self.supervisor = Supervisor()
        self._stack = AsyncExitStack()
        self.http_port: int | None = None
        self.run_dialer = True
        self.run_mail = True
        self.run_ivr = True

    async def __aenter__(self) -> Engine:
        try:
            await self._stack.enter_async_context(self.db)
            await self._stack.enter_async_context(self.ari)
            await self._stack.enter_async_context(events_task(self.ari, self._on_event))
            await self._stack.enter_async_context(self.trunk_events)
            await self._stack.enter_async_context(events_task(self.trunk_events, self.dialer.on_trunk_event))
            self.trunk_events.state.listeners.append(self._on_trunk_events_state)
            await self._listen_hep()
            self._stack.callback(self.calls.close)  # the beep wait's UDP socket, after the calls' end
            self._stack.push_async_callback(self.router.close)
            self._stack.push_async_callback(self.dialer.close)
            self._stack.push_async_callback(self.supervisor.close)
            recordings = self.services.recordings
            if self.run_ivr:
                callbacks = Callbacks(
                    self.db, self.settings
                )  # call-backs of our presented numbers (issue 18)
                await self._stack.enter_async_context(ivr_service.serve(self.settings, recordings, callbacks))
                self.supervisor.keep_running(
                    "ivr-housekeeping", lambda: ivr_service.housekeeping(self.settings, recordings)
                )
            if self.run_mail:
                await self._stack.enter_async_context(mail.serve(self.settings, self.services.intake))
            self.supervisor.keep_running("loop-lag", self._watch_loop_lag)
            # Rows left by unauthenticated traffic (rate events, refusals, throttle counters) do not pile up.
            self.supervisor.keep_running("login-housekeeping", self.services.logins.housekeeping)
            # Retention (README « Données personnelles »): old numbers keyed, deleted messages forgotten.
            self.supervisor.keep_running("privacy-purge", self.services.privacy.housekeeping)
            if self.run_dialer:
                # Heartbeat, fencing and takeovers of this node (issue 19), then the dialer.
                self.supervisor.keep_running("node", self.dialer.membership.run)
                self.supervisor.keep_running("dialer", self.dialer.run)
                self.supervisor.keep_running(
                    "webhooks", lambda: self.services.webhooks.run(webhook_payloads.render)
                )
            # Lost BYEs and events never hold a slot forever: compare /channels with open calls.
            self.supervisor.keep_running("call-sweep", self.calls.run_sweeps)
            # Each call's stage into PostgreSQL, in batches (engine/services/dialing/stages.py).
            self.supervisor.keep_running("call-stages", self.dialer.stages.run)
            await self._start_http()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _start_http(self) -> None:
        app = routes.build(self.services)
        runner = HttpRunner(
            app,
            access_log_class=AccessLogger,
            handle_signals=False,
            # http.php GETs carry long comma-separated number lists: up to its own limit, then its code 100.
            max_line_size=httpphp.MAX_BODY + 8192,
        )
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
        if self.settings.media_transport == "http":
            # Media servers fetch message audio here by signed URL (issue 19): its own listener.
            await self._stack.enter_async_context(media_server.serve(self.settings))
            self.supervisor.keep_running("media-cache", lambda: media_server.housekeeping(self.settings))
        if self.settings.health_port:
            # Health and metrics never reach the proxy that faces the internet: loopback only.
            health_runner = web.AppRunner(routes.build_health(self.services), handle_signals=False)
            await health_runner.setup()
            self._stack.push_async_callback(health_runner.cleanup)
            health_site = web.TCPSite(health_runner, "127.0.0.1", self.settings.health_port, reuse_port=True)
            await health_site.start()
            log.info("http.health_listening", host="127.0.0.1", port=self.settings.health_port)

    async def _listen_hep(self) -> None:
        """Asterisk's SIP mirror (HEP) on loopback; without it (the port taken by another engine process
        of this host) trunks still work, only Retry-After and silent trunks are not seen."""
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: self.sipwatch, local_addr=("127.0.0.1", self.settings.hep_port)
            )
        except OSError as exc:
            log.warning("sipwatch.unavailable", port=self.settings.hep_port, error=str(exc))
            self.dialer.attempts.sipwatch = None
            return
        self._stack.callback(transport.close)
        log.info("sipwatch.listening", port=self.settings.hep_port)

    def _on_trunk_events_state(self, connected: bool) -> None:
        if not connected:
            self.dialer.watch.connection_lost()
        self.dialer.wake()

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
        self.supervisor.spawn(f"orphan-{channel_id}", self._hang_up_orphan(channel_id))

    async def _hang_up_orphan(self, channel_id: str) -> None:
        try:
            await self.ari.hangup(channel_id)
        except (AriError, AriUnavailable) as exc:  # gone already, or Asterisk away: nothing left to end
            log.info("stasis.orphan_not_hung_up", channel_id=channel_id, error=str(exc))

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
