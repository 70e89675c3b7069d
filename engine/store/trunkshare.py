"""The trunks' counters every node takes from (VOCALCAST_CLUSTER=1; sql/0021_cluster.sql): each node's
legs per trunk, each trunk's shared token bucket and carrier pause. One transaction per reservation, the
trunks' pace rows locked FOR UPDATE in name order: two nodes never take the same channel or token."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from engine.domain.trunkshare import burst, grant
from engine.store.db import Database

WANTING_S = 1.0  # a node that asked for more than it got this recently is waiting for its share


@dataclass(frozen=True, slots=True)
class Limits:
    max_channels: int
    max_cps: float


async def reserve(
    db: Database,
    node: str,
    *,
    legs: Mapping[str, int],
    wanted: Mapping[str, int],
    limits: Mapping[str, Limits],
    pauses: Mapping[str, tuple[datetime, str]] | None = None,
) -> dict[str, int]:
    """Write this node's legs per trunk (``legs``: what it holds now) and the pauses its carriers asked for,
    then take up to ``wanted`` calls per trunk; returns the calls granted per trunk (its legs row counts
    them already)."""
    pauses = pauses or {}
    names = sorted(set(wanted) | set(pauses))
    granted = dict.fromkeys(wanted, 0)
    async with db.transaction() as conn:
        if names:
            await conn.execute(
                "INSERT INTO trunk_pace (trunk, tokens) SELECT * FROM unnest($1::text[], $2::float8[]) "
                "ON CONFLICT (trunk) DO NOTHING",
                names,
                [burst(limits[n].max_cps) if n in limits else 2.0 for n in names],
            )
            rows = await conn.fetch(
                "SELECT trunk, tokens, extract(epoch FROM now() - refilled_at) AS elapsed, "
                "coalesce(paused_until > now(), false) AS paused FROM trunk_pace "
                "WHERE trunk = ANY($1::text[]) ORDER BY trunk FOR UPDATE",
                names,
            )
            others: dict[str, int] = {}
            wanting: dict[str, int] = {}
            for r in await conn.fetch(
                "SELECT trunk, sum(legs) AS legs, count(*) FILTER (WHERE wanted_at > now() - "
                "make_interval(secs => $3)) AS wanting FROM trunk_legs WHERE trunk = ANY($1::text[]) "
                "AND node <> $2 GROUP BY trunk",
                names,
                node,
                WANTING_S,
            ):
                others[r["trunk"]], wanting[r["trunk"]] = int(r["legs"]), int(r["wanting"])
            if pauses:
                await conn.execute(
                    "UPDATE trunk_pace p SET paused_until = v.until, pause_reason = v.reason "
                    "FROM unnest($1::text[], $2::timestamptz[], $3::text[]) AS v(trunk, until, reason) "
                    "WHERE p.trunk = v.trunk AND (p.paused_until IS NULL OR p.paused_until < v.until)",
                    list(pauses),
                    [until for until, _ in pauses.values()],
                    [reason for _, reason in pauses.values()],
                )
            tokens_after: list[float] = []
            taken: list[str] = []
            for row in rows:
                trunk = row["trunk"]
                limit = limits.get(trunk)
                if trunk not in wanted or limit is None:
                    continue
                result = grant(
                    wanted[trunk],
                    max_channels=limit.max_channels,
                    legs_in_use=others.get(trunk, 0) + legs.get(trunk, 0),
                    tokens=float(row["tokens"]),
                    rate=limit.max_cps,
                    elapsed_s=float(row["elapsed"]),
                    paused=bool(row["paused"]) or trunk in pauses,
                    mine=legs.get(trunk, 0),
                    wanting=wanting.get(trunk, 0),
                )
                granted[trunk] = result.calls
                taken.append(trunk)
                tokens_after.append(result.tokens)
            if taken:
                await conn.execute(
                    "UPDATE trunk_pace p SET tokens = v.tokens, refilled_at = now() "
                    "FROM unnest($1::text[], $2::float8[]) AS v(trunk, tokens) WHERE p.trunk = v.trunk",
                    taken,
                    tokens_after,
                )
        mine = sorted(set(legs) | set(granted))
        if mine:
            await conn.execute(
                "INSERT INTO trunk_legs (trunk, node, legs, wanted_at) SELECT t, $2, l, "
                "CASE WHEN w THEN now() END FROM unnest($1::text[], $3::int[], $4::boolean[]) AS v(t, l, w) "
                "ON CONFLICT (trunk, node) DO UPDATE SET legs = EXCLUDED.legs, "
                "wanted_at = coalesce(EXCLUDED.wanted_at, trunk_legs.wanted_at)",
                mine,
                node,
                [legs.get(t, 0) + granted.get(t, 0) for t in mine],
                [granted.get(t, 0) < wanted.get(t, 0) for t in mine],
            )
    return granted


async def forget(db: Database, node: str) -> None:
    """A dead node's legs, once the node that took it over counts the calls it adopted as its own."""
    await db.execute("DELETE FROM trunk_legs WHERE node = $1", node)


async def usage(db: Database) -> dict[str, int]:
    """Every trunk's legs in use, all nodes together."""
    rows = await db.fetch("SELECT trunk, sum(legs) AS legs FROM trunk_legs GROUP BY trunk")
    return {r["trunk"]: int(r["legs"]) for r in rows}
