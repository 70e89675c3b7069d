"""Rows of the customer's web space (sql/0008): login sessions and password-reset links (the pages' reads
of sends are in engine.store.sends).

Tokens never reach the database: callers pass their SHA-256 (``token_digest``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

from engine.store.db import Database, Executor, in_transaction, rows_affected

# A session lives until it has been idle this long, and never longer than the absolute limit.
SESSION_IDLE: Final = timedelta(hours=12)
SESSION_MAX: Final = timedelta(days=7)
# last_seen_at is written at most this often: one UPDATE per page would double the writes of a click.
SESSION_TOUCH_EVERY: Final = timedelta(minutes=5)
RESET_VALIDITY: Final = timedelta(minutes=30)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class WebSession:
    account_id: UUID
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


# --- sessions ---------------------------------------------------------------------------------------------


async def open_session(db: Executor, account_id: UUID, token: str, *, client: str = "") -> None:
    await db.execute(
        "INSERT INTO web_sessions (token_sha256, account_id, expires_at, client) "
        "VALUES ($1, $2, now() + $3::interval, $4)",
        token_digest(token),
        account_id,
        SESSION_IDLE,
        client[:100],
    )


async def find_session(db: Executor, token: str) -> WebSession | None:
    """The live session of ``token``; its idle expiry is pushed back when it was last seen a while ago."""
    digest = token_digest(token)
    row = await db.fetchrow(
        "SELECT account_id, created_at, last_seen_at, expires_at, "
        "last_seen_at < now() - $2::interval AS stale FROM web_sessions "
        "WHERE token_sha256 = $1 AND expires_at > now()",
        digest,
        SESSION_TOUCH_EVERY,
    )
    if row is None:
        return None
    expires_at = row["expires_at"]
    if row["stale"]:
        expires_at = await db.fetchval(
            "UPDATE web_sessions SET last_seen_at = now(), "
            "expires_at = least(now() + $2::interval, created_at + $3::interval) "
            "WHERE token_sha256 = $1 RETURNING expires_at",
            digest,
            SESSION_IDLE,
            SESSION_MAX,
        )
        if expires_at is None:
            return None  # logged out in between
    return WebSession(row["account_id"], row["created_at"], row["last_seen_at"], expires_at)


async def close_session(db: Executor, token: str) -> None:
    await db.execute("DELETE FROM web_sessions WHERE token_sha256 = $1", token_digest(token))


async def close_other_sessions(db: Executor, account_id: UUID, *, keep_token: str | None = None) -> int:
    """End every session of the account except ``keep_token``'s; returns how many were ended."""
    status = await db.execute(
        "DELETE FROM web_sessions WHERE account_id = $1 AND ($2::text IS NULL OR token_sha256 <> $2)",
        account_id,
        None if keep_token is None else token_digest(keep_token),
    )
    return rows_affected(status)


async def prune(db: Executor) -> dict[str, int]:
    """Forget expired sessions and reset links (on a login, and by the logins' periodic purge: reset
    requests come from anyone); how many of each were deleted."""
    sessions = await db.execute("DELETE FROM web_sessions WHERE expires_at < now()")
    resets = await db.execute("DELETE FROM password_resets WHERE expires_at < now() - interval '1 day'")
    return {"web_sessions": rows_affected(sessions), "password_resets": rows_affected(resets)}


# --- password resets ----------------------------------------------------------------------------------------


async def create_reset(db: Executor, account_id: UUID, token: str) -> None:
    """A new one-time link; the account's earlier links stop working (only the latest e-mail counts)."""
    async with in_transaction(db) as conn:
        # The account's row lock orders two requests at once: each sees the other's link and voids it.
        await conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", account_id)
        await conn.execute(
            "UPDATE password_resets SET used_at = now() WHERE account_id = $1 AND used_at IS NULL",
            account_id,
        )
        await conn.execute(
            "INSERT INTO password_resets (token_sha256, account_id, expires_at) "
            "VALUES ($1, $2, now() + $3::interval)",
            token_digest(token),
            account_id,
            RESET_VALIDITY,
        )


async def reset_account(db: Executor, token: str) -> UUID | None:
    """The account a live, unused link belongs to (the link is not used up by looking)."""
    value: UUID | None = await db.fetchval(
        "SELECT account_id FROM password_resets WHERE token_sha256 = $1 AND used_at IS NULL "
        "AND expires_at > now()",
        token_digest(token),
    )
    return value


async def use_reset(db: Database, token: str) -> UUID | None:
    """Mark the link used and end every session of its account, in one transaction; None if the link is
    dead (used, expired, unknown). Whoever wins the row lock first uses it: a link works once."""
    async with db.transaction() as conn:
        account_id: UUID | None = await conn.fetchval(
            "UPDATE password_resets SET used_at = now() WHERE token_sha256 = $1 AND used_at IS NULL "
            "AND expires_at > now() RETURNING account_id",
            token_digest(token),
        )
        if account_id is not None:
            await conn.execute("DELETE FROM web_sessions WHERE account_id = $1", account_id)
    return account_id
