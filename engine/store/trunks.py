"""Trunk rows."""

from __future__ import annotations

import asyncpg

from engine.domain.trunks import Trunk
from engine.errors import InvalidInput, NotFound
from engine.store.db import Database, rows_affected

_PLACEHOLDERS = ",".join(f"${i}" for i in range(1, 19))
_COLUMNS = (
    "name, host, port, auth, username, password, from_user, from_domain, codecs, number_format, "
    "pai_number, max_channels, max_cps, priority, enabled, demo, deposit_prefix, deposit_header"
)


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
    )


async def list_trunks(db: Database) -> list[Trunk]:
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM trunks ORDER BY priority, name")  # noqa: S608
    return [_trunk(r) for r in rows]


async def upsert_trunk(db: Database, trunk: Trunk) -> None:
    trunk.validate()
    try:
        await db.execute(
            f"INSERT INTO trunks ({_COLUMNS}) VALUES ({_PLACEHOLDERS}) "  # noqa: S608 - constant column list
            "ON CONFLICT (name) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port, "
            "auth = EXCLUDED.auth, "
            "username = EXCLUDED.username, password = EXCLUDED.password, from_user = EXCLUDED.from_user, "
            "from_domain = EXCLUDED.from_domain, codecs = EXCLUDED.codecs, "
            "number_format = EXCLUDED.number_format, pai_number = EXCLUDED.pai_number, "
            "max_channels = EXCLUDED.max_channels, max_cps = EXCLUDED.max_cps, priority = EXCLUDED.priority, "
            "enabled = EXCLUDED.enabled, demo = EXCLUDED.demo, deposit_prefix = EXCLUDED.deposit_prefix, "
            "deposit_header = EXCLUDED.deposit_header",
            trunk.name,
            trunk.host,
            trunk.port,
            trunk.auth,
            trunk.username,
            trunk.password,
            trunk.from_user,
            trunk.from_domain,
            ",".join(trunk.codecs),
            trunk.number_format,
            trunk.pai_number,
            trunk.max_channels,
            trunk.max_cps,
            trunk.priority,
            trunk.enabled,
            trunk.demo,
            trunk.deposit_prefix,
            trunk.deposit_header,
        )
    except asyncpg.CheckViolationError as exc:
        raise InvalidInput("trunk_invalid", f"trunk {trunk.name!r} refused by the database: {exc}") from exc


async def remove_trunk(db: Database, name: str) -> None:
    status = await db.execute("DELETE FROM trunks WHERE name = $1", name)
    if rows_affected(status) == 0:
        raise NotFound(f"no trunk named {name!r}")
