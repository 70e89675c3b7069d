"""Refused machine requests (http.php, e-mail), kept so a customer can be helped: never a password,
numbers masked by the caller."""

from __future__ import annotations

from uuid import UUID

from engine.store.db import Database, rows_affected


async def record_refusal(
    db: Database, *, origin: str, code: str, client: str, detail: str, account_id: UUID | None = None
) -> None:
    await db.execute(
        "INSERT INTO refused_requests (origin, code, account_id, client, detail) VALUES ($1, $2, $3, $4, $5)",
        origin,
        code,
        account_id,
        client.replace("\x00", "")[:100],
        detail.replace("\x00", "")[:500],
    )


async def prune(db: Database, older_than_s: float) -> int:
    """Forget refusals older than ``older_than_s``; returns how many."""
    status = await db.execute(
        "DELETE FROM refused_requests WHERE at < now() - make_interval(secs => $1)", older_than_s
    )
    return rows_affected(status)
