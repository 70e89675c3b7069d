"""Routing of Stasis events to the call that owns them, in order, one consumer task per call.

A call is registered under its channel id *before* the originate request (events can arrive
before the reply); a call may add more keys (its transfer leg, its bridge) so that every event
of the call goes through the same queue and is handled in arrival order. The queue also carries the
call's own typed events (its timers, the originate's reply, the sweep's findings) behind the ARI events
already received.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from engine.domain import callevents
from engine.telephony.ari import Event

log = structlog.get_logger(__name__)


class Signal:
    """A typed event the telephony side queues for a call (a linger timer, the sweep's finding...), never
    from ARI. Subclasses are frozen dataclasses; handlers dispatch on the type."""

    __slots__ = ()


# What a call's queue carries: an ARI event (a dict), an event of the call-flow machine queued by the
# call itself (a timer, the originate's reply), or a Signal.
Queued = Event | callevents.Event | Signal


def kind_of(item: Queued) -> str:
    """The ARI event type, or the name of the typed event (logs)."""
    return str(item.get("type")) if isinstance(item, dict) else type(item).__name__


class CallHandler(Protocol):
    async def on_event(self, event: Queued) -> None:
        """Handle one event of this call; exceptions end the call's consumer task."""

    async def on_failure(self, exc: Exception) -> None:
        """The handler raised: end the call cleanly (hang up, record an outcome)."""


class Route:
    """One call's queue and consumer task."""

    def __init__(self, router: StasisRouter, key: str, handler: CallHandler) -> None:
        self.router = router
        self.handler = handler
        self.keys: set[str] = {key}
        self.queue: asyncio.Queue[Queued | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._consume(), name=f"call-{key}")

    def put(self, event: Queued) -> None:
        self.queue.put_nowait(event)

    def close(self) -> None:
        """No more events: the consumer ends after the ones already queued."""
        self.queue.put_nowait(None)

    async def _consume(self) -> None:
        try:
            while True:
                event = await self.queue.get()
                if event is None:
                    return
                try:
                    await self.handler.on_event(event)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.exception("stasis.handler_failed", keys=sorted(self.keys), event_type=kind_of(event))
                    with contextlib.suppress(Exception):
                        await self.handler.on_failure(exc)
                    return
        finally:
            self.router.forget(self)


def event_keys(event: Event) -> list[str]:
    """The routing keys an ARI event belongs to: channel ids, then bridge ids."""
    keys: list[str] = []
    for field in ("channel", "peer", "replace_channel"):
        obj = event.get(field)
        if isinstance(obj, dict) and "id" in obj:
            keys.append(str(obj["id"]))
    for field in ("playback", "recording"):
        obj = event.get(field)
        if isinstance(obj, dict):
            target = str(obj.get("target_uri", ""))
            kind, _, ident = target.partition(":")
            if kind == "channel":
                keys.append(ident)
            elif kind == "bridge":
                keys.append("bridge:" + ident)
    bridge = event.get("bridge")
    if isinstance(bridge, dict) and "id" in bridge:
        keys.append("bridge:" + str(bridge["id"]))
    return keys


class StasisRouter:
    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self.orphan_handler: Callable[[Event], None] | None = None

    def attach(self, key: str, handler: CallHandler) -> Route:
        """Register a call under ``key`` (its channel id) before originating it."""
        if key in self._routes:
            raise KeyError(f"a call is already registered under {key}")
        route = Route(self, key, handler)
        self._routes[key] = route
        return route

    def alias(self, route: Route, key: str) -> None:
        """Send the events of ``key`` (a transfer leg, a bridge as ``bridge:<id>``) to ``route`` too."""
        route.keys.add(key)
        self._routes[key] = route

    def forget(self, route: Route) -> None:
        for key in route.keys:
            if self._routes.get(key) is route:
                del self._routes[key]

    def owns(self, key: str) -> bool:
        return key in self._routes

    @property
    def active_calls(self) -> int:
        return len({id(r) for r in self._routes.values()})

    def routes(self) -> list[Route]:
        return list({id(r): r for r in self._routes.values()}.values())

    def dispatch(self, event: Event) -> None:
        """Called by the ARI client for every event, in arrival order; never blocks."""
        delivered: set[int] = set()
        for key in event_keys(event):
            route = self._routes.get(key)
            if route is not None and id(route) not in delivered:
                delivered.add(id(route))
                route.put(event)
        if not delivered and self.orphan_handler is not None:
            self.orphan_handler(event)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Let every call's consumer finish what is queued, then cancel stragglers."""
        routes = self.routes()
        for route in routes:
            route.close()
        tasks = [r.task for r in routes]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


def channel_of(event: Event) -> dict[str, Any]:
    channel = event.get("channel")
    return channel if isinstance(channel, dict) else {}
