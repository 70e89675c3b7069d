"""Keeps the trunk pool true to the world: the trunks the database holds (this instance's usable ones),
what Asterisk really loaded, which trunks answer their OPTIONS pings, the calls that come in on them
(inbound legs count toward a trunk's channels), and each trunk's call quality. Also what follows from it:
recipients no healthy trunk may carry are said to wait (and end as congestion after too long), sends are
paused while no trunk exists at all, and every node's view is written for `vocalcast trunk list`.

Endpoint events (state changes, channels created and destroyed on a trunk) come through an ARI
application of their own (vocalcast-<node>-trunks), so they never mix with the calls' events.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import structlog

from engine.domain.quality import Verdict
from engine.domain.routing import RouteClass, accepting, plan
from engine.domain.trunks import usable_trunks
from engine.metrics import Metrics
from engine.services.dialing.trunkpool import TrunkPool
from engine.settings import Settings
from engine.store import sends as sends_store
from engine.store import trunks as trunks_store
from engine.store.db import Database
from engine.telephony import trunkconf
from engine.telephony.ari import AriClient, AriError, AriUnavailable, Event
from engine.telephony.stasis import channel_of

log = structlog.get_logger(__name__)

WAITS_EVERY_S = 5.0  # recipients' waits are looked at this often


class TrunkWatch:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        ari: AriClient,
        *,
        events: AriClient | None,
        pool: TrunkPool,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._db = db
        self._ari = ari  # queries
        self._events = events  # the trunks' own ARI application (None: no endpoint events)
        self._pool = pool
        self._metrics = metrics
        self._subscribed: set[str] = set()
        self._waits_at = 0.0
        self._paused_for_no_trunk = False
        self._lookups: set[asyncio.Task[None]] = set()
        self.checked_at: float | None = None

    # --- the periodic check ---------------------------------------------------------------------------
    async def check(self) -> None:
        """Refresh the pool from the database and Asterisk (call at VOCALCAST_TRUNK_CHECK_S)."""
        now = time.monotonic()
        configured = usable_trunks(await trunks_store.list_trunks(self._db), demo=self._settings.demo)
        self._pool.refresh(configured, now)
        if self._ari.ready:
            await self._read_asterisk()
        for name, verdict, reason in self._pool.judge_quality(now):
            level = log.warning if verdict is not Verdict.ok else log.info
            level("trunk.quality", trunk=name, verdict=verdict.value, reason=reason)
        await self._record_health(now)
        await self._no_trunk_pause(bool(configured))
        if now - self._waits_at >= WAITS_EVERY_S:
            self._waits_at = now
            await self._explain_waits(now)
        self._export(now)
        self.checked_at = now

    async def _read_asterisk(self) -> None:
        try:
            endpoints = {
                str(e.get("resource")): str(e.get("state")) for e in await self._ari.endpoints("PJSIP")
            }
            for name, state in self._pool.trunks.items():
                loaded = await trunkconf.loaded(self._ari, name)
                was = state.loaded and state.reachable
                # "offline": its OPTIONS pings go unanswered. "unknown" (not pinged yet, e.g. just added;
                # Asterisk spreads the first pings over the qualify interval) is not held against it.
                reachable = endpoints.get(name, "unknown") != "offline"
                self._pool.set_presence(name, loaded=loaded, reachable=reachable)
                if was and not (state.loaded and state.reachable):
                    log.warning("trunk.unusable", trunk=name, loaded=state.loaded, reachable=state.reachable)
            await self._subscribe()
        except AriError as exc:
            log.warning("trunk.check_failed", error=str(exc))

    async def _subscribe(self) -> None:
        """Endpoint events of every trunk to the trunks' own application (again after a reconnect)."""
        if self._events is None or not self._events.ready:
            self._subscribed.clear()
            return
        for name in self._pool.trunks:
            if name in self._subscribed:
                continue
            await self._events.request(
                "POST",
                f"/applications/{self._events.app}/subscription",
                params={"eventSource": f"endpoint:PJSIP/{name}"},
            )
            self._subscribed.add(name)

    def connection_lost(self) -> None:
        self._subscribed.clear()

    # --- endpoint events -----------------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        kind = event.get("type")
        if kind == "EndpointStateChange":
            endpoint = event.get("endpoint") or {}
            if endpoint.get("technology") == "PJSIP":
                name = str(endpoint.get("resource"))
                # Asterisk tells every channel's coming and going too: only a change is worth a line.
                offline = endpoint.get("state") == "offline"
                if self._pool.set_presence(name, reachable=not offline):
                    log.info("trunk.reachability", trunk=name, state=endpoint.get("state"))
                    if offline:  # unreachable, or gone from the configuration: which one, now
                        task = asyncio.get_running_loop().create_task(self._look_up_loaded(name))
                        self._lookups.add(task)
                        task.add_done_callback(self._lookups.discard)
            return
        channel = channel_of(event)
        if kind == "ChannelCreated" and _inbound(channel):
            trunk = _trunk_of(str(channel.get("name", "")))
            if trunk is not None:
                self._pool.inbound_started(trunk, str(channel.get("id")))
        elif kind == "ChannelDestroyed":
            self._pool.inbound_ended(str(channel.get("id")))

    async def _look_up_loaded(self, name: str) -> None:
        try:
            loaded = await trunkconf.loaded(self._ari, name)
        except (AriError, AriUnavailable) as exc:  # the periodic check will tell
            log.warning("trunk.check_failed", trunk=name, error=str(exc))
            return
        if self._pool.set_presence(name, loaded=loaded) and not loaded:
            log.warning("trunk.unusable", trunk=name, loaded=False, reachable=False)

    # --- consequences --------------------------------------------------------------------------------------
    async def _record_health(self, now: float) -> None:
        wall = datetime.now(UTC)
        rows = []
        for name, state in self._pool.trunks.items():
            reason = state.unhealthy_reason(now)
            open_for = state.breaker.open_for_s(now)
            rows.append(
                trunks_store.TrunkHealth(
                    trunk=name,
                    node=self._settings.node_name,
                    usable=not reason,
                    reason=reason or None,
                    breaker=state.breaker.state(now).value,
                    open_until=wall + timedelta(seconds=open_for) if open_for else None,
                    quality=state.verdict.value,
                    legs=state.legs,
                )
            )
        await trunks_store.record_health(self._db, self._settings.node_name, rows)

    async def _no_trunk_pause(self, any_configured: bool) -> None:
        """No trunk at all (the operator removed the last one): running sends pause, with that reason,
        and go on by themselves when a trunk is back. Nobody's attempt is failed meanwhile."""
        if not any_configured and not self._paused_for_no_trunk:
            paused = await sends_store.pause_for_no_trunk(self._db)
            self._paused_for_no_trunk = True
            if paused:
                log.warning("sends.paused_no_trunk", sends=len(paused))
        elif any_configured:
            resumed = await sends_store.resume_after_no_trunk(self._db)
            self._paused_for_no_trunk = False
            if resumed:
                log.info("sends.resumed_trunk_back", sends=len(resumed))

    async def _explain_waits(self, now: float) -> None:
        """Per presented number (a send presenting one goes only through the trunks listing it, issue 18),
        the recipients no healthy trunk may carry are said to wait for one, and end as congestion after
        VOCALCAST_TRUNK_WAIT_MAX_S."""
        for presented in await sends_store.presented_numbers(self._db):
            waiting, ended = await sends_store.mark_waiting(
                self._db,
                self.routable_pattern(now, presented=presented),
                self._settings.trunk_wait_max_s,
                presented=presented,
            )
            if waiting or ended:
                log.info(
                    "recipients.waiting_for_a_trunk",
                    newly_waiting=waiting,
                    ended_as_congestion=ended,
                    presented=presented is not None,
                )

    def routable_pattern(self, now: float, *, presented: str | None = None) -> str | None:
        """The regex of the numbers some healthy trunk accepting ``presented`` carries ('' for any, None
        for none)."""
        loads = [
            load.__class__(load.name, load.priority, 0, 1, 1, load.healthy, load.failover_only, load.prefixes)
            for load in accepting(self._pool.loads(now), presented)
        ]
        classes: list[RouteClass] = plan(loads)
        if not classes:
            return None
        if any(c.pattern == "" for c in classes):
            return ""
        return "|".join(f"(?:{c.pattern})" for c in classes)

    def _export(self, now: float) -> None:
        for name, state in self._pool.trunks.items():
            self._metrics.trunk_usable.labels(name).set(0 if state.unhealthy_reason(now) else 1)
            self._metrics.trunk_legs.labels(name).set(state.legs)


def _inbound(channel: dict[str, object]) -> bool:
    """A call coming in: Asterisk named it (our calls and transfer legs carry the UUIDs we gave them; all
    of them start in the trunk's context, so that cannot tell)."""
    try:
        uuid.UUID(str(channel.get("id", "")))
    except ValueError:
        return True
    return False


def _trunk_of(channel_name: str) -> str | None:
    """PJSIP/<trunk>-0000002a → <trunk>."""
    tech, _, rest = channel_name.partition("/")
    if tech != "PJSIP" or "-" not in rest:
        return None
    return rest.rsplit("-", 1)[0]
