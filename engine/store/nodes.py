"""Nodes: the engine processes that share one PostgreSQL (sql/0021_cluster.sql) — their heartbeats,
their epochs (fencing), draining, and the takeover of a node that went silent.

Locks: a claim or an originate of a node takes its row FOR KEY SHARE (they run side by side, and beside
the node's own heartbeat, a plain UPDATE); a takeover takes it FOR UPDATE and raises the epoch. So a
takeover waits for the claims and originates in progress, and a claim or an originate that comes after
it sees the new epoch and places nothing."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

import asyncpg

from engine.store.db import Database, Executor, rows_affected

# A takeover never waits long behind a node's transaction (a node frozen in the middle of one): it tries
# again at the next heartbeat.
TAKEOVER_LOCK_TIMEOUT: Final = "2s"
# The Kamailio edge's role (issue 19): it reads the nodes' epochs before it relays an INVITE to a carrier
# (docker/kamailio/kamailio.cfg, route[FENCE]), and nothing else.
EDGE_ROLE: Final = "vocalcast_edge"


@dataclass(frozen=True, slots=True)
class NodeRow:
    name: str
    epoch: int
    app: str
    last_seen: datetime
    silent_s: float
    draining: bool
    taken_over_by: str | None
    open_attempts: int


@dataclass(frozen=True, slots=True)
class Beat:
    """What a heartbeat learnt: None from beat() when the node was fenced (its epoch raised)."""

    draining: bool


@dataclass(frozen=True, slots=True)
class TakenOver:
    """A dead node taken over: its open attempts are now the taker's."""

    node: str
    epoch: int  # its new epoch: whatever it still holds is stale
    attempts: int
    apps: tuple[str, ...]  # the Stasis applications its open attempts' channels are in
    # When its epoch was raised (PostgreSQL's clock): a channel of that node created later dialled the
    # Kamailio edge with the old epoch, which refused it (docker/kamailio/kamailio.cfg, route[FENCE]).
    at: datetime | None = None


async def join(db: Executor, name: str, app: str) -> int:
    """Register this process as node ``name``; returns its epoch. A node that joins again (a restart)
    gets a new epoch: its previous incarnation, if it still runs, is fenced. Draining is kept (an
    operator's drain outlives a restart; `vocalcast node resume` ends it)."""
    epoch = await db.fetchval(
        "INSERT INTO nodes (name, app) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET "
        "epoch = nodes.epoch + 1, app = EXCLUDED.app, last_seen = now(), joined_at = now(), "
        "taken_over_by = NULL, taken_over_at = NULL RETURNING epoch",
        name,
        app,
    )
    return int(epoch)


async def beat(db: Executor, name: str, epoch: int) -> Beat | None:
    """The node's heartbeat; None: its epoch was raised (another node took it over, or it rejoined)."""
    row = await db.fetchrow(
        "UPDATE nodes SET last_seen = now() WHERE name = $1 AND epoch = $2 RETURNING draining", name, epoch
    )
    return None if row is None else Beat(draining=row["draining"])


async def fence(conn: asyncpg.Connection, name: str, epoch: int, attempt_id: UUID) -> bool | None:
    """Inside the caller's transaction, before an originate: True while the node still holds ``epoch``
    and the attempt is still its own and open; False when the attempt is not (any more); None when the
    node's epoch was raised (it was fenced). The node's row stays locked FOR KEY SHARE until the
    transaction ends (a takeover waits for it)."""
    # One round trip (it runs before every originate). A takeover waited for commits the raised epoch and
    # the moved attempts together: the epoch, checked again on the row version that lock wait returns,
    # says so whatever the attempt's read saw.
    row = await conn.fetchrow(
        "SELECT n.epoch = $2 AS held, EXISTS (SELECT 1 FROM attempts a WHERE a.id = $3 AND a.node = $1 "
        "AND a.state <> 'ended') AS mine FROM nodes n WHERE n.name = $1 FOR KEY SHARE OF n",
        name,
        epoch,
        attempt_id,
    )
    if row is None or not row["held"]:
        return None
    return bool(row["mine"])


async def dead(db: Executor, me: str, dead_after_s: float) -> list[tuple[str, int]]:
    """Nodes (name, epoch) silent for longer than ``dead_after_s`` and not taken over yet."""
    rows = await db.fetch(
        "SELECT name, epoch FROM nodes WHERE name <> $1 AND taken_over_by IS NULL "
        "AND last_seen < now() - make_interval(secs => $2) ORDER BY last_seen",
        me,
        dead_after_s,
    )
    return [(r["name"], r["epoch"]) for r in rows]


async def take_over(db: Database, me: str, node: str, epoch: int, dead_after_s: float) -> TakenOver | None:
    """Declare ``node`` dead (it held ``epoch`` and is still silent): raise its epoch, make its open
    attempts ``me``'s (its trunk legs stay counted until the taker has adopted its calls still up:
    engine/store/trunkshare.py forget). One transaction; None when it is not dead after all or someone
    else took it over."""
    async with db.transaction() as conn:
        await conn.execute(f"SET LOCAL lock_timeout = '{TAKEOVER_LOCK_TIMEOUT}'")
        try:
            row = await conn.fetchrow(
                "SELECT epoch FROM nodes WHERE name = $1 AND epoch = $2 AND taken_over_by IS NULL "
                "AND last_seen < now() - make_interval(secs => $3) FOR UPDATE",
                node,
                epoch,
                dead_after_s,
            )
        except asyncpg.LockNotAvailableError:
            return None
        if row is None:
            return None
        raised = await conn.fetchrow(
            "UPDATE nodes SET epoch = epoch + 1, taken_over_by = $2, taken_over_at = now() "
            "WHERE name = $1 RETURNING epoch, taken_over_at",
            node,
            me,
        )
        moved = await conn.fetch(
            "UPDATE attempts SET node = $2 WHERE node = $1 AND state <> 'ended' RETURNING app", node, me
        )
    apps = tuple(sorted({r["app"] for r in moved}))
    return TakenOver(node, int(raised["epoch"]), len(moved), apps, raised["taken_over_at"])


async def set_draining(db: Executor, name: str, draining: bool) -> bool:
    """Start or end a node's drain; False when no such node ever ran."""
    status = await db.execute("UPDATE nodes SET draining = $2 WHERE name = $1", name, draining)
    return rows_affected(status) == 1


async def list_nodes(db: Executor) -> list[NodeRow]:
    rows = await db.fetch(
        "SELECT n.name, n.epoch, n.app, n.last_seen, extract(epoch FROM now() - n.last_seen) AS silent_s, "
        "n.draining, n.taken_over_by, (SELECT count(*) FROM attempts a WHERE a.node = n.name "
        "AND a.state <> 'ended') AS open_attempts FROM nodes n ORDER BY n.name"
    )
    return [
        NodeRow(
            r["name"],
            r["epoch"],
            r["app"],
            r["last_seen"],
            float(r["silent_s"]),
            r["draining"],
            r["taken_over_by"],
            int(r["open_attempts"]),
        )
        for r in rows
    ]


@asynccontextmanager
async def fenced_transaction(db: Database, idle_timeout_s: float) -> AsyncIterator[asyncpg.Connection]:
    """A transaction that PostgreSQL ends by itself when its client stays idle in it for longer than
    ``idle_timeout_s`` (a node frozen while it holds its row's lock never blocks a takeover for long)."""
    timeout_ms = max(1, int(idle_timeout_s * 1000))
    async with db.connection() as conn:
        # BEGIN and the timeout in one round trip (the simple query protocol takes both).
        await conn.execute(f"BEGIN; SET LOCAL idle_in_transaction_session_timeout = {timeout_ms}")
        try:
            yield conn
        except BaseException:
            # A connection PostgreSQL closed (the timeout) has nothing to roll back: the pool drops it.
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")


async def grant_edge_select(db: Database) -> bool:
    """SELECT on the nodes table for the edge's role, and nothing else (a database the engine does not
    administer: its owner grants it); False when the role does not exist on that server."""
    async with db.transaction() as conn:
        if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", EDGE_ROLE) is None:
            return False
        await conn.execute(f"GRANT USAGE ON SCHEMA public TO {EDGE_ROLE}")
        await conn.execute(f"GRANT SELECT ON nodes TO {EDGE_ROLE}")
    return True
