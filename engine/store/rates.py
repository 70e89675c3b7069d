"""Sliding-window counters shared by every engine process (failed logins, e-mail replies)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.store.db import Database, rows_affected


async def record(db: Database, kind: str, keys: list[str]) -> None:
    await db.execute("INSERT INTO rate_events (kind, key) SELECT $1, unnest($2::text[])", kind, keys)


async def blocked_for_s(
    db: Database, kind: str, keys: list[str], *, limit: int, window_s: float
) -> float | None:
    """Seconds until ``keys`` may try again when one of them reached ``limit`` events within the window;
    None when none did. The window slides: the wait ends when the oldest counted event leaves it."""
    now = datetime.now(UTC)
    since = now - timedelta(seconds=window_s)
    rows = await db.fetch(
        "SELECT key, count(*) AS n, (array_agg(at ORDER BY at DESC))[$4] AS limiting FROM rate_events "
        "WHERE kind = $1 AND key = ANY($2::text[]) AND at > $3 GROUP BY key",
        kind,
        keys,
        since,
        limit,
    )
    waits = [
        (r["limiting"] + timedelta(seconds=window_s) - now).total_seconds()
        for r in rows
        if r["n"] >= limit and r["limiting"] is not None
    ]
    return max(1.0, *waits) if waits else None


async def clear(db: Database, kind: str, keys: list[str]) -> None:
    await db.execute("DELETE FROM rate_events WHERE kind = $1 AND key = ANY($2::text[])", kind, keys)


async def prune(db: Database, older_than_s: float) -> int:
    status = await db.execute(
        "DELETE FROM rate_events WHERE at < now() - make_interval(secs => $1)", older_than_s
    )
    return rows_affected(status)
