"""A small ARI proxy for tests: between the engine and Asterisk, it can slow down the originate requests
and answer some of them 503, as an overloaded Asterisk would (two cores cannot overload it for real), and
cut the events websocket for a while (a network gap: the calls go on in Asterisk, their events are lost)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web


@dataclass
class AriProxy:
    upstream_port: int
    latency_s: float = 0.0  # added to every POST /ari/channels
    refuse_every: int = 0  # every n-th POST /ari/channels answered 503 (0: none)
    originates: int = 0
    refused: int = 0
    port: int = 0
    events_cut: int = 0  # cut_events() calls
    _refuse_events_until: float = 0.0  # loop time until which a websocket is refused (503)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None
    _sockets: set[web.WebSocketResponse] = field(default_factory=set)
    _upstreams: set[aiohttp.ClientWebSocketResponse] = field(default_factory=set)

    async def __aenter__(self) -> AriProxy:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A websocket handler still pumping when the proxy closes would hold cleanup() for aiohttp's
        # default shutdown timeout (60 s): every handler ends with its upstream, closed first below.
        self._runner = web.AppRunner(app, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for up in list(self._upstreams):
            await up.close()
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def cut_events(self, seconds: float) -> None:
        """Close every events websocket (both sides) and refuse new ones for `seconds`; returns at once."""
        self.events_cut += 1
        self._refuse_events_until = asyncio.get_running_loop().time() + seconds
        for up in list(self._upstreams):
            await up.close()
        for ws in list(self._sockets):
            await ws.close()

    def _upstream(self, request: web.Request) -> str:
        return f"http://127.0.0.1:{self.upstream_port}{request.rel_url}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() in {"authorization", "content-type"}}
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request, headers)
        if request.method == "POST" and request.path == "/ari/channels":
            self.originates += 1
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            if self.refuse_every and self.originates % self.refuse_every == 0:
                self.refused += 1
                return web.json_response({"message": "Service Unavailable (test proxy)"}, status=503)
        body = await request.read()
        async with self._session.request(
            request.method, self._upstream(request), headers=headers, data=body or None
        ) as upstream:
            payload = await upstream.read()
            return web.Response(
                body=payload, status=upstream.status, content_type=upstream.content_type or None
            )

    async def _websocket(self, request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
        assert self._session is not None
        if asyncio.get_running_loop().time() < self._refuse_events_until:
            return web.json_response({"message": "events cut (test proxy)"}, status=503)
        down = web.WebSocketResponse()
        await down.prepare(request)
        self._sockets.add(down)
        try:
            async with self._session.ws_connect(self._upstream(request), headers=headers) as up:
                self._upstreams.add(up)

                async def pump_up() -> None:
                    async for message in down:
                        if message.type == aiohttp.WSMsgType.TEXT:
                            await up.send_str(message.data)
                    await up.close()  # the engine went away (killed, stopped): its upstream goes too

                task = asyncio.create_task(pump_up())
                try:
                    async for message in up:
                        if message.type == aiohttp.WSMsgType.TEXT:
                            await down.send_str(message.data)
                finally:
                    self._upstreams.discard(up)
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            self._sockets.discard(down)
            await down.close()
        return down
