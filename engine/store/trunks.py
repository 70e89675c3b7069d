"""Trunk rows, and each node's view of their health."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine.domain.trunks import Trunk
from engine.errors import InvalidInput, NotFound
from engine.store.db import Database, rows_affected

_FIELDS = (
    "name",
    "host",
    "port",
    "auth",
    "username",
    "password",
    "from_user",
    "from_domain",
    "codecs",
    "number_format",
    "pai_number",
    "max_channels",
    "max_cps",
    "priority",
    "enabled",
    "demo",
    "deposit_prefix",
    "deposit_header",
    "qualify",
    "failover_only",
    "routes",
    "identify",
    "outbound_proxy",
    "registration_line",
    "presented",
)
_COLUMNS = ", ".join(_FIELDS)
_PLACEHOLDERS = ", ".join(f"${i}" for i in range(1, len(_FIELDS) + 1))
_UPDATE = ", ".join(f"{f} = EXCLUDED.{f}" for f in _FIELDS[1:])


def _trunk(row: asyncpg.Record) -> Trunk:
    return Trunk(
        name=row["name"],
        host=row["host"],
        port=row["port"],
        auth=row["auth"],
        username=row["username"],
        password=row["password"],
        from_user=row["from_user"],
        from_domain=row["from_domain"],
        codecs=tuple(row["codecs"].split(",")),
        number_format=row["number_format"],
        pai_number=row["pai_number"],
        max_channels=row["max_channels"],
        max_cps=row["max_cps"],
        priority=row["priority"],
        enabled=row["enabled"],
        demo=row["demo"],
        deposit_prefix=row["deposit_prefix"],
        deposit_header=row["deposit_header"],
        qualify=row["qualify"],
        failover_only=row["failover_only"],
        routes=tuple(row["routes"]),
        identify=tuple(row["identify"]),
        outbound_proxy=row["outbound_proxy"],
        registration_line=row["registration_line"],
        presented=tuple(row["presented"]),
    )


async def list_trunks(db: Database) -> list[Trunk]:
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM trunks ORDER BY priority, name")  # noqa: S608
    return [_trunk(r) for r in rows]


async def upsert_trunk(db: Database, trunk: Trunk) -> None:
    trunk.validate()
    t = trunk
    try:
        await db.execute(
            f"INSERT INTO trunks ({_COLUMNS}) VALUES ({_PLACEHOLDERS}) "  # noqa: S608 - constant column list
            f"ON CONFLICT (name) DO UPDATE SET {_UPDATE}",
            t.name,
            t.host,
            t.port,
            t.auth,
            t.username,
            t.password,
            t.from_user,
            t.from_domain,
            ",".join(t.codecs),
            t.number_format,
            t.pai_number,
            t.max_channels,
            t.max_cps,
            t.priority,
            t.enabled,
            t.demo,
            t.deposit_prefix,
            t.deposit_header,
            t.qualify,
            t.failover_only,
            list(t.routes),
            list(t.identify),
            t.outbound_proxy,
            t.registration_line,
            list(t.presented),
        )
    except asyncpg.CheckViolationError as exc:
        raise InvalidInput("trunk_invalid", f"trunk {trunk.name!r} refused by the database: {exc}") from exc


async def remove_trunk(db: Database, name: str) -> None:
    status = await db.execute("DELETE FROM trunks WHERE name = $1", name)
    if rows_affected(status) == 0:
        raise NotFound(f"no trunk named {name!r}")
    await db.execute("DELETE FROM trunk_health WHERE trunk = $1", name)


# --- health -------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TrunkHealth:
    trunk: str
    node: str
    usable: bool
    reason: str | None
    breaker: str
    open_until: datetime | None
    quality: str
    legs: int
    updated_at: datetime | None = None


async def record_health(db: Database, node: str, rows: Sequence[TrunkHealth]) -> None:
    """This node's view of its trunks, replacing the previous one (one statement)."""
    await db.execute(
        "WITH v AS (SELECT * FROM unnest($2::text[], $3::boolean[], $4::text[], $5::text[], "
        "$6::timestamptz[], $7::text[], $8::int[]) AS v(trunk, usable, reason, breaker, open_until, quality, "
        "legs)), "
        "gone AS (DELETE FROM trunk_health h WHERE h.node = $1 AND h.trunk <> ALL($2::text[])) "
        "INSERT INTO trunk_health (trunk, node, usable, reason, breaker, open_until, quality, legs, "
        "updated_at) SELECT trunk, $1, usable, reason, breaker, open_until, quality, legs, now() FROM v "
        "ON CONFLICT (trunk, node) DO UPDATE SET usable = EXCLUDED.usable, reason = EXCLUDED.reason, "
        "breaker = EXCLUDED.breaker, open_until = EXCLUDED.open_until, quality = EXCLUDED.quality, "
        "legs = EXCLUDED.legs, updated_at = now()",
        node,
        [r.trunk for r in rows],
        [r.usable for r in rows],
        [r.reason for r in rows],
        [r.breaker for r in rows],
        [r.open_until for r in rows],
        [r.quality for r in rows],
        [r.legs for r in rows],
    )


async def health(db: Database) -> list[TrunkHealth]:
    """Every node's latest view of every trunk."""
    rows = await db.fetch(
        "SELECT trunk, node, usable, reason, breaker, open_until, quality, legs, updated_at "
        "FROM trunk_health ORDER BY trunk, node"
    )
    return [TrunkHealth(**dict(r)) for r in rows]
