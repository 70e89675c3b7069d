"""The login throttle's counters (sql/0015): taken under a row lock before a password is checked, so
parallel guesses cannot all pass; and the (account, address) pairs that logged in successfully."""

from __future__ import annotations

from uuid import UUID

from engine.domain.throttle import Budget, Counter, Verdict, take_all
from engine.store.db import Database, Executor, rows_affected


async def take(db: Database, budgets: list[Budget]) -> Verdict:
    """Take a slot in every budget, or none: None when the attempt may go ahead (its slots are then
    pending until ``settle``), else the seconds to wait, or BUSY while checks still running hold the
    slots (ask again shortly).

    The rows are created if missing and locked in key order (no deadlock between two logins), so
    parallel attempts see each other's slots: at most ``limit`` are checked, whatever the parallelism.
    """
    keys = sorted({b.key for b in budgets})
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO login_throttle (key) SELECT k FROM unnest($1::text[]) AS k ORDER BY k "
            "ON CONFLICT (key) DO NOTHING",
            keys,
        )
        rows = await conn.fetch(
            "SELECT key, failures, pending, window_start, strikes FROM login_throttle "
            "WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE",
            keys,
        )
        now = await conn.fetchval("SELECT clock_timestamp()")
        counters = {
            r["key"]: Counter(r["failures"], r["window_start"], r["strikes"], r["pending"]) for r in rows
        }
        updated, verdict = take_all(counters, budgets, now)
        if verdict is not None:
            return verdict
        await conn.execute(
            "UPDATE login_throttle AS t SET failures = u.failures, pending = u.pending, "
            "window_start = u.window_start, strikes = u.strikes "
            "FROM unnest($1::text[], $2::int[], $3::int[], $4::timestamptz[], $5::int[]) "
            "AS u (key, failures, pending, window_start, strikes) WHERE t.key = u.key",
            list(updated),
            [c.failures for c in updated.values()],
            [c.pending for c in updated.values()],
            [c.window_start for c in updated.values()],
            [c.strikes for c in updated.values()],
        )
    return None


async def settle(db: Executor, keys: list[str], *, failed: bool) -> None:
    """A checked attempt's slots: kept as failures, or given back after a success."""
    await db.execute(
        "UPDATE login_throttle SET pending = greatest(pending - 1, 0), failures = failures + $2 "
        "WHERE key = ANY($1::text[])",
        keys,
        1 if failed else 0,
    )


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
