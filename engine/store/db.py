"""The asyncpg pool and the forward-only migrations of ``sql/``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeAlias

import asyncpg
import structlog

from engine.errors import DatabaseUnavailable, VocalcastError
from engine.settings import PROJECT_ROOT

log = structlog.get_logger(__name__)

MIGRATIONS_DIR = PROJECT_ROOT / "sql"
# Any number will do as long as it is ours: serialises concurrent `migrate` runs.
_MIGRATION_LOCK = 0x766F63616C  # "vocal"

_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
)


class Database:
    """An asyncpg pool owned by ``async with``; closed gracefully, then terminated."""

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10, timeout_s: float = 5.0) -> None:
        self._dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._timeout_s = timeout_s
        self._pool: asyncpg.Pool | None = None

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=self._timeout_s,
                command_timeout=30,
                reset=_keep_session,
            )
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc

    async def close(self) -> None:
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        try:
            await asyncio.wait_for(pool.close(), timeout=5)
        except TimeoutError:
            pool.terminate()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise DatabaseUnavailable("the database pool is not open")
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self.pool.acquire(timeout=self._timeout_s) as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable(f"PostgreSQL unavailable: {exc}") from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def ping(self) -> bool:
        """True when a trivial query answers within the timeout."""
        try:
            async with self.connection() as conn:
                return bool(await conn.fetchval("SELECT 1", timeout=self._timeout_s) == 1)
        except (DatabaseUnavailable, *_UNAVAILABLE):
            return False

    @property
    def size(self) -> tuple[int, int]:
        """(connections in the pool, idle connections)."""
        if self._pool is None:
            return (0, 0)
        return (self._pool.get_size(), self._pool.get_idle_size())

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.connection() as conn:
            return list(await conn.fetch(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self.connection() as conn:
            return await conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.connection() as conn:
            return await conn.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        async with self.connection() as conn:
            return str(await conn.execute(query, *args))


# What a store function runs its queries on: the pool, or a connection whose transaction the caller holds.
Executor: TypeAlias = Database | asyncpg.Connection


@asynccontextmanager
async def in_transaction(db: Executor) -> AsyncIterator[asyncpg.Connection]:
    """A transaction on the pool, or a savepoint inside the caller's connection."""
    if isinstance(db, Database):
        async with db.transaction() as conn:
            yield conn
    else:
        async with db.transaction():
            yield db


def rows_affected(status: str) -> int:
    """The row count of a command's status ("INSERT 0 42", "DELETE 3" → 42, 3)."""
    return int(status.rsplit(" ", 1)[1])


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Path]:
    files = sorted(p for p in directory.glob("*.sql") if p.name[:4].isdigit())
    versions = [p.name.split("_", 1)[0] for p in files]
    if len(set(versions)) != len(versions):
        raise VocalcastError(f"two migrations share a number in {directory}")
    return files


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What the pool does to a connection given back, beyond what asyncpg always does (roll back an open
    transaction, drop listeners): nothing. asyncpg's default reset query (advisory unlock, CLOSE ALL,
    UNLISTEN, RESET ALL) is one more round trip on every release, paid by every query of the dialer's
    path (claim, results), for state no pooled session holds here: settings are SET LOCAL, advisory
    locks transaction-scoped, nothing LISTENs (the migration's session lock is on its own connection).
    tests/unit/test_store_sessions.py fails when the code starts leaving such state on a session."""


async def migrate(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the migrations not yet recorded, each in its own transaction, in order."""
    conn = await asyncpg.connect(dsn, timeout=10)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for path in migration_files(directory):
            version = path.name.split("_", 1)[0]
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, path.name
                )
            applied.append(path.name)
            log.info("migration.applied", migration=path.name)
    finally:
        try:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        finally:
            await conn.close()
    return applied
