"""Rows of the customer's web space (sql/0008): login sessions, password-reset links, and the few reads
its pages need that no other store offers (an account's unfinished sends).

Tokens never reach the database: callers pass their SHA-256 (``token_digest``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

from engine.domain.sends import SendStatus
from engine.store.db import Database, Executor, in_transaction, rows_affected
from engine.store.sends import _SEND_COLUMNS, Send, _send

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


async def prune(db: Executor) -> None:
    """Forget expired sessions and reset links (called now and then, on a login)."""
    await db.execute("DELETE FROM web_sessions WHERE expires_at < now()")
    await db.execute("DELETE FROM password_resets WHERE expires_at < now() - interval '1 day'")


# --- password resets ----------------------------------------------------------------------------------------


async def create_reset(db: Executor, account_id: UUID, token: str) -> None:
    """A new one-time link; the account's earlier links stop working (only the latest e-mail counts)."""
    async with in_transaction(db) as conn:
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


# --- reads for the pages ------------------------------------------------------------------------------------


async def unfinished_sends(db: Executor, account_id: UUID, *, limit: int = 20) -> list[Send]:
    """The account's scheduled, running and paused sends, newest first (sends_account_unfinished)."""
    rows = await db.fetch(
        f"SELECT {_SEND_COLUMNS} FROM sends WHERE account_id = $1 "  # noqa: S608 - constant columns
        "AND status IN ('scheduled', 'running', 'paused') ORDER BY created_at DESC LIMIT $2",
        account_id,
        limit,
    )
    return [_send(r) for r in rows]


UNFINISHED: Final = frozenset({SendStatus.scheduled, SendStatus.running, SendStatus.paused})


@dataclass(frozen=True, slots=True)
class SendCounters:
    """How far a send is, from its own row: every recipient holds one credit until its final outcome
    (consumed or released), so what a running send still holds is what it has left to call."""

    id: UUID
    status: SendStatus
    total: int
    held: int
    used: int

    @property
    def done(self) -> int:
        if self.status is SendStatus.scheduled:
            return 0
        return self.total - self.held

    @property
    def percent(self) -> int:
        return 100 if self.status is SendStatus.completed else (100 * self.done) // max(self.total, 1)


async def send_counters(db: Executor, account_id: UUID, send_ids: list[UUID]) -> list[SendCounters]:
    """The account's sends among ``send_ids`` (others' are left out): one query whatever their size."""
    rows = await db.fetch(
        "SELECT id, status, recipients_total, credits_held, credits_used FROM sends "
        "WHERE account_id = $1 AND id = ANY($2::uuid[])",
        account_id,
        send_ids,
    )
    return [
        SendCounters(
            r["id"], SendStatus(r["status"]), r["recipients_total"], r["credits_held"], r["credits_used"]
        )
        for r in rows
    ]
