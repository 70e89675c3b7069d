"""Migrations on the real PostgreSQL: ordered, recorded, idempotent; the CDR role is INSERT-only."""

from __future__ import annotations

import asyncpg
import pytest

from engine.settings import Settings
from engine.store import Database, migrate
from engine.store.db import migration_files


async def test_migrate_twice_applies_nothing_the_second_time(stack_settings: Settings, db: Database) -> None:
    assert await migrate(stack_settings.dsn) == []
    recorded = [r["name"] for r in await db.fetch("SELECT name FROM schema_migrations ORDER BY version")]
    assert recorded == [p.name for p in migration_files()]


async def test_cdr_role_may_only_insert_cdrs(stack_settings: Settings) -> None:
    password = stack_settings.require("cdr_db_password")
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=stack_settings.pg_port,
        user="asterisk_cdr",
        password=password,
        database="vocalcast",
    )
    try:
        await conn.execute("INSERT INTO asterisk_cdr (uniqueid, disposition) VALUES ('x', 'ANSWERED')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT * FROM asterisk_cdr")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT * FROM trunks")
    finally:
        await conn.close()


async def test_engine_role_cannot_connect_without_password(stack_settings: Settings) -> None:
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(
            host="127.0.0.1",
            port=stack_settings.pg_port,
            user="vocalcast",
            password="wrong",
            database="vocalcast",
        )
