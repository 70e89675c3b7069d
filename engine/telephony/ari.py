"""A thin asyncio ARI client: REST calls with typed errors, and the events websocket with reconnect.

Why our own: ari-py does not import on Python 3, ari-client takes over root logging and never
reconnects, asyncari/aioari are stale (README, "Dependencies"). Credentials travel in the
Authorization header, never in a URL.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog

from engine.errors import TelephonyUnavailable

log = structlog.get_logger(__name__)

Event = dict[str, Any]
EventHandler = Callable[[Event], None]
Hook = Callable[[], Awaitable[None]]


class AriError(Exception):
    """ARI answered with an error status."""

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        super().__init__(f"ARI {method} {path}: {status} {message}")
        self.status = status
        self.message = message


class AriNotFound(AriError):
    """404: the channel, bridge or playback is gone (often: it just hung up)."""


class AriConflict(AriError):
    """409: the object exists already, or is in the wrong state."""


class AriUnprocessable(AriError):
    """422: the channel is not in our Stasis application (any more)."""


class AriUnavailable(TelephonyUnavailable):
    """Asterisk's HTTP server cannot be reached, or it answers but ARI is not mounted yet (booting)."""


class AriFenced(AriUnavailable):
    """This node was fenced (issue 19): it touches Asterisk no more, another node drives its calls."""


_STATUS_ERRORS: dict[int, type[AriError]] = {
    404: AriNotFound,
    409: AriConflict,
    412: AriUnprocessable,
    422: AriUnprocessable,
}


@dataclass
class AriState:
    """What /healthz and /metrics say about the ARI link."""

    connected: bool = False
    app_registered: bool = False
    reconnects: int = 0
    connected_since: float | None = None
    last_error: str = ""
    events: int = 0
    listeners: list[Callable[[bool], None]] = field(default_factory=list)


class AriClient:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        user: str,
        password: str,
        app: str,
        pool_size: int = 50,
        request_timeout_s: float = 10.0,
        reconnect_max_s: float = 5.0,
        freeze_at_originate: int = 0,
    ) -> None:
        self.app = app
        self.base_url = f"http://{host}:{port}/ari"
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._pool_size = pool_size
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s)
        self._reconnect_max_s = reconnect_max_s
        self._session: aiohttp.ClientSession | None = None
        self.state = AriState()
        self._ready = asyncio.Event()
        self._on_connect: list[Hook] = []
        # Fencing (issue 19): awaited before every request and (re)connection; it raises AriFenced when
        # this node was taken over. fence() then closes the events websocket for good.
        self.gate: Callable[[], Awaitable[None]] | None = None
        self.fenced = False
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        # Fencing at the edge (issue 19): SIP headers every channel this client creates carries (the node's
        # name and epoch, which Kamailio checks in PostgreSQL before it relays the INVITE to a carrier).
        self.originate_headers: Callable[[], Mapping[str, str]] | None = None
        # Tests only (VOCALCAST_TEST_FREEZE_ORIGINATE): SIGSTOP to itself right before the N-th POST
        # /channels, after every fence check: the window only the edge's check closes.
        self._freeze_at_originate = freeze_at_originate
        self._originates_written = 0

    # --- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> AriClient:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._pool_size),
            headers=self._headers,
            timeout=self._timeout,
            raise_for_status=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("AriClient used outside `async with`")
        return self._session

    def on_connect(self, hook: Hook) -> None:
        """Run ``hook`` after every (re)connection, before the app is reported ready."""
        self._on_connect.append(hook)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        except TimeoutError as exc:
            raise AriUnavailable(f"ARI app {self.app} not registered after {timeout_s:.0f} s") from exc

    # --- REST ------------------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | float] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        await self._pass_gate()
        if self._freeze_at_originate and method == "POST" and path == "/channels":
            self._originates_written += 1
            if self._originates_written == self._freeze_at_originate:
                log.warning("ari.test_freeze", app=self.app, originate=self._originates_written)
                os.kill(os.getpid(), signal.SIGSTOP)
        url = self.base_url + path
        query = {k: str(v) for k, v in (params or {}).items()}
        try:
            async with self.session.request(method, url, params=query, json=body) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    try:
                        message = json.loads(text).get("message", text)
                    except (ValueError, AttributeError):
                        if resp.status == 404:  # Asterisk's own HTML page: no /ari yet (res_ari loading)
                            raise AriUnavailable(
                                f"ARI {method} {path}: not mounted yet (404, not ARI's)"
                            ) from None
                        message = text
                    raise _STATUS_ERRORS.get(resp.status, AriError)(resp.status, method, path, message)
                if not text:
                    return None
                return json.loads(text)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise AriUnavailable(f"ARI {method} {path}: {exc.__class__.__name__}: {exc}") from exc

    async def originate(
        self,
        *,
        endpoint: str,
        channel_id: str,
        app_args: str = "",
        timeout_s: float = 30,
        caller_id: str | None = None,
        variables: Mapping[str, str] | None = None,
        context: str | None = None,
        extension: str | None = None,
        other_channel_id: str | None = None,
        originator: str | None = None,
        formats: Sequence[str] = (),
    ) -> Event:
        """POST /channels with our own id: register the call before calling this (events may win).

        ``formats`` are the codecs the SDP offer lists, in that order (without them Asterisk puts its
        own order first); a leg with an ``originator`` takes that channel's codecs instead."""
        params: dict[str, str | int | float] = {
            "endpoint": endpoint,
            "channelId": channel_id,
            "timeout": max(1, round(timeout_s)),
        }
        if context is not None:
            params.update(context=context, extension=extension or "s", priority=1)
        else:
            params.update(app=self.app, appArgs=app_args)
        if caller_id is not None:
            params["callerId"] = caller_id
        if other_channel_id is not None:
            params["otherChannelId"] = other_channel_id
        if originator is not None:
            params["originator"] = originator
        elif formats:
            params["formats"] = ",".join(formats)
        merged = dict(variables or {})
        if self.originate_headers is not None:
            merged.update(
                (f"PJSIP_HEADER(add,{name})", value) for name, value in self.originate_headers().items()
            )
        body = {"variables": merged} if merged else None
        result: Event = await self.request("POST", "/channels", params=params, body=body)
        return result

    async def hangup(self, channel_id: str, reason: str = "normal") -> bool:
        """Hang up; False when the channel was already gone."""
        try:
            await self.request("DELETE", f"/channels/{channel_id}", params={"reason": reason})
        except AriNotFound:
            return False
        return True

    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/answer")

    async def play(self, channel_id: str, playback_id: str, media: str, *, lang: str = "fr") -> Event:
        result: Event = await self.request(
            "POST", f"/channels/{channel_id}/play/{playback_id}", params={"media": media, "lang": lang}
        )
        return result

    async def stop_playback(self, playback_id: str) -> bool:
        try:
            await self.request("DELETE", f"/playbacks/{playback_id}")
        except AriNotFound:
            return False
        return True

    async def ring(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/ring")

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        await self.request(
            "POST", f"/channels/{channel_id}/variable", params={"variable": name, "value": value}
        )

    async def subscribe_channel(self, channel_id: str) -> None:
        """Send the channel's events to our application before it enters it (a channel originated
        into the dialplan). AriNotFound/AriUnprocessable when the channel is already gone."""
        await self.request(
            "POST", f"/applications/{self.app}/subscription", params={"eventSource": f"channel:{channel_id}"}
        )

    async def get_variable(self, channel_id: str, name: str) -> str | None:
        try:
            result = await self.request("GET", f"/channels/{channel_id}/variable", params={"variable": name})
        except AriNotFound:
            return None
        return None if result is None else str(result.get("value", ""))

    async def set_global(self, name: str, value: str | None) -> None:
        """A global variable of Asterisk (None: deleted). Not a channel command: unlike a channel
        variable, it does not wait in the channel's queue behind a playback."""
        params = {"variable": name} if value is None else {"variable": name, "value": value}
        await self.request("POST", "/asterisk/variable", params=params)

    async def get_global(self, name: str) -> str | None:
        try:
            result = await self.request("GET", "/asterisk/variable", params={"variable": name})
        except AriNotFound:
            return None
        return None if result is None else str(result.get("value", "")) or None

    async def create_bridge(self, bridge_id: str, bridge_type: str = "mixing") -> Event:
        result: Event = await self.request("POST", f"/bridges/{bridge_id}", params={"type": bridge_type})
        return result

    async def add_to_bridge(self, bridge_id: str, channel_ids: list[str]) -> None:
        await self.request(
            "POST", f"/bridges/{bridge_id}/addChannel", params={"channel": ",".join(channel_ids)}
        )

    async def destroy_bridge(self, bridge_id: str) -> bool:
        try:
            await self.request("DELETE", f"/bridges/{bridge_id}")
        except AriNotFound:
            return False
        return True

    async def channels(self) -> list[Event]:
        result: list[Event] = await self.request("GET", "/channels")
        return result

    async def bridges(self) -> list[Event]:
        result: list[Event] = await self.request("GET", "/bridges")
        return result

    async def endpoints(self, technology: str = "PJSIP") -> list[Event]:
        result: list[Event] = await self.request("GET", f"/endpoints/{technology}")
        return result

    async def modules(self) -> list[Event]:
        result: list[Event] = await self.request("GET", "/asterisk/modules")
        return result

    async def reload_module(self, module: str) -> None:
        await self.request("PUT", f"/asterisk/modules/{module}")

    async def info(self) -> Event:
        result: Event = await self.request("GET", "/asterisk/info")
        return result

    async def _pass_gate(self) -> None:
        if self.fenced:
            raise AriFenced(f"ARI app {self.app}: this node was fenced")
        if self.gate is not None:
            await self.gate()

    async def fence(self) -> None:
        """This node was taken over: no request any more, and the events websocket closed for good (a
        reconnection would take the application back from the node that serves it now)."""
        self.fenced = True
        if self._ws is not None:
            await self._ws.close()

    # --- events --------------------------------------------------------------------------------
    async def run_events(self, handler: EventHandler) -> None:
        """Keep the events websocket open forever, reconnecting with backoff. Cancel to stop."""
        delay = 0.1
        while True:
            try:
                await self._listen(handler)
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except AriFenced:
                self._set_disconnected()
                log.warning("ari.events.fenced", app=self.app)
                await asyncio.Event().wait()  # never again: the process must restart to join anew
            except Exception as exc:  # noqa: BLE001 - task boundary: any failure means "reconnect"
                self.state.last_error = f"{exc.__class__.__name__}: {exc}"
                log.warning(
                    "ari.events.disconnected", error=self.state.last_error, retry_in_s=round(delay, 2)
                )
            finally:
                self._set_disconnected()
            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, self._reconnect_max_s)

    async def _listen(self, handler: EventHandler) -> None:
        await self._pass_gate()
        url = self.base_url.replace("http://", "ws://", 1) + "/events"
        async with self.session.ws_connect(
            url,
            params={"app": self.app, "subscribeAll": "false"},
            heartbeat=10.0,
            timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
            max_msg_size=16 * 1024 * 1024,
        ) as ws:
            self._ws = ws
            self.state.connected = True
            self.state.connected_since = time.time()
            # The websocket is open; Asterisk registers the app with it. Events missed during the
            # gap are gone: the hooks re-read /channels before we originate again.
            await self._check_registered()
            for hook in self._on_connect:
                await hook()
            self._ready.set()
            for notify in self.state.listeners:
                notify(True)
            log.info("ari.events.connected", app=self.app, reconnects=self.state.reconnects)
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        event = json.loads(msg.data)
                    except ValueError:
                        log.warning("ari.events.bad_json", data=str(msg.data)[:200])
                        continue
                    self.state.events += 1
                    handler(event)
                elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break
            self._ws = None
            if self.fenced:
                raise AriFenced(f"ARI app {self.app}: this node was fenced")
            raise AriUnavailable(f"events websocket closed ({ws.close_code})")

    async def _check_registered(self) -> None:
        deadline = time.monotonic() + 5
        while True:
            try:
                await self.request("GET", f"/applications/{self.app}")
            except AriNotFound:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
                continue
            self.state.app_registered = True
            return

    def _set_disconnected(self) -> None:
        was = self.state.connected
        self.state.connected = False
        self.state.app_registered = False
        self.state.connected_since = None
        self._ready.clear()
        if was:
            self.state.reconnects += 1
            for notify in self.state.listeners:
                notify(False)


@contextlib.asynccontextmanager
async def events_task(client: AriClient, handler: EventHandler) -> Any:
    """Run the events loop as a background task for the duration of the block."""
    task = asyncio.create_task(client.run_events(handler), name=f"ari-events-{client.app}")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
