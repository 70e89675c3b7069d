"""Health: what monitoring reads — `/healthz` and `/metrics` (Prometheus text) — from the database,
Asterisk, the trunks and the dialer.

`/healthz` says "up" (200); "degraded" (200) while some trunk cannot take calls (not loaded, unreachable,
breaker open, quality cut or in alarm) but another can, naming it; "down" (503) when the database or
Asterisk is down, or when no trunk can carry a call, with ``down`` naming what is missing.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from prometheus_client import generate_latest

from engine import __version__
from engine.domain.trunks import Trunk, usable_trunks
from engine.errors import DatabaseUnavailable, TelephonyUnavailable
from engine.metrics import Metrics
from engine.settings import Settings
from engine.store.db import Database
from engine.store.trunks import list_trunks

log = structlog.get_logger(__name__)


class Telephony(Protocol):
    """What health reads from the engine's live telephony (the ARI link, the calls, the dialer)."""

    @property
    def ready(self) -> bool: ...

    @property
    def active_calls(self) -> int: ...

    @property
    def dialer_state(self) -> str: ...

    def trunk_stats(self) -> dict[str, dict[str, object]]: ...

    async def endpoint_states(self) -> dict[str, str]: ...

    def node_report(self) -> dict[str, object]: ...


@dataclass
class Health:
    settings: Settings
    db: Database
    telephony: Telephony
    metrics: Metrics
    started_monotonic: float = field(default_factory=time.monotonic)
    _trunks: list[Trunk] = field(default_factory=list)

    async def report(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body): 200 when up, 503 with ``down`` naming what is down."""
        database_up = await self.db.ping()
        asterisk_up = self.telephony.ready
        trunks = await self._trunk_report(asterisk_up)
        down = [name for name, up in (("database", database_up), ("asterisk", asterisk_up)) if not up]
        node = self.telephony.node_report()  # this engine as a node of the cluster (issue 19)
        if node.get("state") == "fenced":
            down.append("node")
        if not any(t.get("usable", True) for t in trunks):
            down.append("trunks")
        degraded = [
            t["name"] for t in trunks if not t.get("usable", True) or t.get("quality") not in {None, "ok"}
        ]
        body: dict[str, Any] = {
            "status": "down" if down else "degraded" if degraded else "up",
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started_monotonic, 1),
            "mode": "demo" if self.settings.demo else "live",
            "node": self.settings.node_name,
            "app": self.settings.app_name,
            "database": "up" if database_up else "down",
            "asterisk": "up" if asterisk_up else "down",
            "trunks": trunks,
            "active_calls": self.telephony.active_calls,
            "dialer": self.telephony.dialer_state,
            "cluster": node,
        }
        if down:
            body["down"] = down
        if degraded:
            body["degraded"] = degraded
        return (503 if down else 200), body

    def metrics_text(self) -> bytes:
        size, idle = self.db.size
        self.metrics.db_pool_size.labels("total").set(size)
        self.metrics.db_pool_size.labels("idle").set(idle)
        self.metrics.ari_connected.set(1 if self.telephony.ready else 0)
        return generate_latest(self.metrics.registry)

    async def _trunk_report(self, asterisk_up: bool) -> list[dict[str, Any]]:
        with contextlib.suppress(DatabaseUnavailable):  # down: keep the last known list
            self._trunks = usable_trunks(await list_trunks(self.db), demo=self.settings.demo)
        states: dict[str, str] = {}
        if asterisk_up:
            with contextlib.suppress(TelephonyUnavailable):
                states = await self.telephony.endpoint_states()
        stats = self.telephony.trunk_stats()
        return [
            {
                "name": t.name,
                "state": states.get(t.name, "unknown"),
                "demo": t.demo,
                "max_channels": t.max_channels,
                **{k: v for k, v in stats.get(t.name, {}).items() if k != "max_channels"},
            }
            for t in self._trunks
        ]
