"""The carrier limits of the whole cluster, from this node's side (VOCALCAST_CLUSTER=1; issue 19).

Each trunk's channels and calls per second are counters in PostgreSQL that every node takes from
(engine/store/trunkshare.py) — not Kamailio: the single-node set-up has no proxy, and the counters sit
in the database every claim already goes through. Before a claim the dialer reserves the calls it means
to place; the node's legs per trunk are written at each reservation and every SYNC_S (absolute counts:
a crash leaves nothing counted for long — a dead node's rows go at its takeover). A pause the carrier
asked for (an open breaker, a Retry-After) is written for every node to respect. The node's own trunk
pool (trunkpool.py) still applies on top: it never places more than either allows.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from engine.services.dialing.trunkpool import TrunkPool
from engine.store.db import Database
from engine.store.trunkshare import Limits, forget, reserve

SYNC_S = 0.5  # the node's legs are written at least this often while it runs


class SharedLimits:
    def __init__(self, db: Database, node: str, pool: TrunkPool) -> None:
        self._db = db
        self._node = node
        self._pool = pool
        self._pauses: dict[str, tuple[datetime, str]] = {}
        self._synced_at = float("-inf")

    def note_pause(self, trunk: str, seconds: float, reason: str) -> None:
        """The trunk's carrier asked for a pause (its breaker opened): every node will respect it."""
        until = datetime.now(UTC) + timedelta(seconds=seconds)
        known = self._pauses.get(trunk)
        if known is None or known[0] < until:
            self._pauses[trunk] = (until, reason)

    async def reserve(self, wanted: Mapping[str, int]) -> dict[str, int]:
        """Up to ``wanted`` calls per trunk, as the cluster's counters allow now."""
        pauses, self._pauses = self._pauses, {}
        trunks = self._pool.trunks
        try:
            granted = await reserve(
                self._db,
                self._node,
                legs={name: t.legs for name, t in trunks.items()},
                wanted={name: n for name, n in wanted.items() if name in trunks and n > 0},
                limits={name: Limits(t.trunk.max_channels, t.trunk.max_cps) for name, t in trunks.items()},
                pauses=pauses,
            )
        except BaseException:
            for trunk, pause in pauses.items():
                self._pauses.setdefault(trunk, pause)
            raise
        self._synced_at = time.monotonic()
        return granted

    async def adopted(self, node: str) -> None:
        """The calls of ``node`` (taken over) that were still up are counted as this node's now: its
        own legs are written first, then the dead node's rows go (counted twice a moment, never less)."""
        await self.reserve({})
        await forget(self._db, node)

    async def sync_if_due(self) -> None:
        if time.monotonic() - self._synced_at >= SYNC_S or self._pauses:
            await self.reserve({})


def within(rooms: list[list[str]], free: int) -> dict[str, int]:
    """The calls per trunk a dispatch may place: its rooms' slots, best class first, ``free`` at most."""
    wanted: dict[str, int] = {}
    for room in rooms:
        for trunk in room:
            if free <= 0:
                return wanted
            wanted[trunk] = wanted.get(trunk, 0) + 1
            free -= 1
    return wanted


def keep(rooms: list[list[str]], granted: Mapping[str, int]) -> list[list[str]]:
    """The rooms cut to the calls granted per trunk, in their order."""
    left = dict(granted)
    out: list[list[str]] = []
    for room in rooms:
        kept = []
        for trunk in room:
            if left.get(trunk, 0) > 0:
                left[trunk] -= 1
                kept.append(trunk)
        out.append(kept)
    return out
