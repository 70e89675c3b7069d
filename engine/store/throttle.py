"""The login throttle's counters (sql/0015): taken under a row lock before a password is checked, so
parallel guesses cannot all pass; and the (account, address) pairs that logged in successfully."""

from __future__ import annotations

from uuid import UUID

from engine.domain.throttle import Budget, Counter, take_all
from engine.store.db import Database, Executor, rows_affected


async def take(db: Database, budgets: list[Budget]) -> float | None:
    """Count one attempt against every budget, or none: None when the attempt may go ahead (its slot
    is then taken until ``give_back``), else the seconds to wait.

    The rows are created if missing and locked in key order (no deadlock between two logins), so
    two parallel attempts see each other's count: at most ``limit`` pass, whatever the parallelism.
    """
    keys = sorted({b.key for b in budgets})
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO login_throttle (key) SELECT k FROM unnest($1::text[]) AS k ORDER BY k "
            "ON CONFLICT (key) DO NOTHING",
            keys,
        )
        rows = await conn.fetch(
            "SELECT key, attempts, window_start, strikes FROM login_throttle WHERE key = ANY($1::text[]) "
            "ORDER BY key FOR UPDATE",
            keys,
        )
        now = await conn.fetchval("SELECT clock_timestamp()")
        counters = {r["key"]: Counter(r["attempts"], r["window_start"], r["strikes"]) for r in rows}
        updated, wait = take_all(counters, budgets, now)
        if wait is not None:
            return wait
        await conn.execute(
            "UPDATE login_throttle AS t SET attempts = u.attempts, window_start = u.window_start, "
            "strikes = u.strikes "
            "FROM unnest($1::text[], $2::int[], $3::timestamptz[], $4::int[]) "
            "AS u (key, attempts, window_start, strikes) WHERE t.key = u.key",
            list(updated),
            [c.attempts for c in updated.values()],
            [c.window_start for c in updated.values()],
            [c.strikes for c in updated.values()],
        )
    return None


async def give_back(db: Executor, keys: list[str]) -> None:
    """A login that succeeded gives its slots back (only failures stay counted)."""
    await db.execute(
        "UPDATE login_throttle SET attempts = greatest(attempts - 1, 0) WHERE key = ANY($1::text[])", keys
    )


async def counted(db: Executor, key: str) -> int:
    """Attempts counted for ``key`` in its current window (0 when it has none)."""
    return int(await db.fetchval("SELECT coalesce(max(attempts), 0) FROM login_throttle WHERE key = $1", key))


async def clear(db: Executor, keys: list[str], prefixes: list[str]) -> None:
    """Forget the counters of ``keys`` and of every key starting with one of ``prefixes``."""
    await db.execute(
        "DELETE FROM login_throttle WHERE key = ANY($1::text[]) OR EXISTS ("
        "SELECT 1 FROM unnest($2::text[]) AS p (prefix) WHERE left(key, length(p.prefix)) = p.prefix)",
        keys,
        prefixes,
    )


async def trusted(db: Executor, login: str, client: str, *, days: float) -> bool:
    """Whether the account whose login is ``login`` logged in successfully from ``client`` lately."""
    return bool(
        await db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM login_trusted t JOIN accounts a ON a.id = t.account_id "
            "WHERE lower(a.email) = lower($1) AND t.client = $2 "
            "AND t.last_success_at > now() - make_interval(secs => $3))",
            login,
            client[:100],
            days * 86400.0,
        )
    )


async def trust(db: Executor, account_id: UUID, client: str) -> None:
    await db.execute(
        "INSERT INTO login_trusted (account_id, client) VALUES ($1, $2) "
        "ON CONFLICT (account_id, client) DO UPDATE SET last_success_at = now()",
        account_id,
        client[:100],
    )


async def prune(db: Executor, *, counters_older_than_s: float, trusted_older_than_s: float) -> int:
    """Delete counters whose window (grown as far as it can) is long over, and old trusted pairs."""
    status = await db.execute(
        "DELETE FROM login_throttle WHERE window_start < now() - make_interval(secs => $1)",
        counters_older_than_s,
    )
    await db.execute(
        "DELETE FROM login_trusted WHERE last_success_at < now() - make_interval(secs => $1)",
        trusted_older_than_s,
    )
    return rows_affected(status)
