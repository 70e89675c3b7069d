"""Message rows of an account's library; references come from a per-account counter, never reused.

Every read is scoped by account: another account's message is NotFound, as if it did not exist.
Deleting keeps the row (sends' history names it) with ``deleted_at`` set; the library removes the files.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath
from typing import Final
from uuid import UUID

import asyncpg

from engine.domain.accounts import Message, MessageInUse, Origin
from engine.errors import NotFound
from engine.store.db import Executor, in_transaction

_COLUMNS: Final = (
    "id, account_id, ref, title, origin, is_greeting, duration_s, audio_stem, original_file, "
    "original_name, loudness_lufs, true_peak_dbfs, created_at, greeting_pending"
)


def _message(row: asyncpg.Record) -> Message:
    return Message(
        id=row["id"],
        account_id=row["account_id"],
        ref=row["ref"],
        title=row["title"],
        origin=row["origin"],
        is_greeting=row["is_greeting"],
        duration_s=row["duration_s"],
        audio_stem=PurePosixPath(row["audio_stem"]),
        original_file=PurePosixPath(row["original_file"]),
        original_name=row["original_name"],
        loudness_lufs=row["loudness_lufs"],
        true_peak_dbfs=row["true_peak_dbfs"],
        created_at=row["created_at"],
        greeting_pending=row["greeting_pending"],
    )


def _not_found(account_id: UUID, what: object) -> NotFound:
    return NotFound(f"account {account_id} has no message {what}", message_fr="Message introuvable.")


async def insert_message(
    db: Executor,
    *,
    message_id: UUID,
    account_id: UUID,
    title: str,
    origin: Origin,
    is_greeting: bool,
    duration_s: float,
    audio_stem: PurePosixPath,
    original_file: PurePosixPath,
    original_name: str | None,
    loudness_lufs: float,
    true_peak_dbfs: float,
    created_at: datetime,
    greeting_pending: bool = False,
) -> Message:
    """Take the account's next reference and insert the row, in one transaction (a failure uses no ref)."""
    async with in_transaction(db) as conn:
        ref = await conn.fetchval(
            "UPDATE accounts SET next_message_ref = next_message_ref + 1 WHERE id = $1 "
            "RETURNING next_message_ref - 1",
            account_id,
        )
        if ref is None:
            raise NotFound(f"no account {account_id}", message_fr="Compte introuvable.")
        row = await conn.fetchrow(
            f"INSERT INTO messages ({_COLUMNS}) "  # noqa: S608 - constant columns
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
            f"RETURNING {_COLUMNS}",
            message_id,
            account_id,
            ref,
            title,
            origin,
            is_greeting,
            duration_s,
            str(audio_stem),
            str(original_file),
            original_name,
            loudness_lufs,
            true_peak_dbfs,
            created_at,
            greeting_pending,
        )
    return _message(row)


async def list_messages(db: Executor, account_id: UUID, *, greetings_only: bool = False) -> list[Message]:
    """The account's live messages, by reference."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM messages "  # noqa: S608 - constant columns
        "WHERE account_id = $1 AND deleted_at IS NULL AND (is_greeting OR NOT $2) ORDER BY ref",
        account_id,
        greetings_only,
    )
    return [_message(r) for r in rows]


async def get_message(db: Executor, account_id: UUID, ref: int) -> Message:
    """The account's live message with this reference, else NotFound."""
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM messages "  # noqa: S608 - constant columns
        "WHERE account_id = $1 AND ref = $2 AND deleted_at IS NULL",
        account_id,
        ref,
    )
    if row is None:
        raise _not_found(account_id, ref)
    return _message(row)


async def get_message_by_id(db: Executor, account_id: UUID, message_id: UUID) -> Message:
    """The account's live message with this id, else NotFound (also when it is another account's)."""
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM messages "  # noqa: S608 - constant columns
        "WHERE account_id = $1 AND id = $2 AND deleted_at IS NULL",
        account_id,
        message_id,
    )
    if row is None:
        raise _not_found(account_id, message_id)
    return _message(row)


async def rename_message(db: Executor, account_id: UUID, ref: int, title: str) -> Message:
    """Set the title (already checked by the caller) of the account's message ``ref``."""
    row = await db.fetchrow(
        f"UPDATE messages SET title = $3 "  # noqa: S608 - constant columns
        f"WHERE account_id = $1 AND ref = $2 AND deleted_at IS NULL RETURNING {_COLUMNS}",
        account_id,
        ref,
        title,
    )
    if row is None:
        raise _not_found(account_id, ref)
    return _message(row)


async def pending_greetings(db: Executor, account_id: UUID) -> list[Message]:
    """The account's greetings recorded by phone that wait for its confirmation, by reference."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM messages "  # noqa: S608 - constant columns
        "WHERE account_id = $1 AND deleted_at IS NULL AND greeting_pending ORDER BY ref",
        account_id,
    )
    return [_message(r) for r in rows]


async def settle_pending_greeting(db: Executor, account_id: UUID, ref: int, *, make_default: bool) -> Message:
    """The customer's answer about a greeting recorded by phone: it no longer waits, and with
    ``make_default`` it becomes the account's default greeting (whether sends play a greeting by default
    stays as the customer set it). NotFound unless the account's live message ``ref`` is waiting."""
    async with in_transaction(db) as conn:
        row = await conn.fetchrow(
            f"UPDATE messages SET greeting_pending = false "  # noqa: S608 - constant columns
            "WHERE account_id = $1 AND ref = $2 AND deleted_at IS NULL AND greeting_pending "
            f"RETURNING {_COLUMNS}",
            account_id,
            ref,
        )
        if row is None:
            raise NotFound(
                f"account {account_id} has no greeting {ref} waiting for confirmation",
                message_fr="Aucun message d'accueil n'attend de confirmation sous ce numéro.",
            )
        message = _message(row)
        if make_default:
            await conn.execute(
                "UPDATE accounts SET default_greeting_message_id = $2 WHERE id = $1", account_id, message.id
            )
    return message


async def message_in_use(conn: asyncpg.Connection, message_id: UUID) -> bool:
    """True while a scheduled, running or paused send plays this message (as message or greeting)."""
    used: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM sends WHERE $1 IN (message_id, greeting_message_id) "
        "AND status IN ('scheduled', 'running', 'paused'))",
        message_id,
    )
    return used


async def delete_message(db: Executor, account_id: UUID, ref: int) -> Message:
    """Mark the account's message deleted, unless a send still needs it (MessageInUse).

    Its reference stays taken. If it was the default greeting, the default greeting is switched off.
    """
    async with in_transaction(db) as conn:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM messages "  # noqa: S608 - constant columns
            "WHERE account_id = $1 AND ref = $2 AND deleted_at IS NULL FOR UPDATE",
            account_id,
            ref,
        )
        if row is None:
            raise _not_found(account_id, ref)
        message = _message(row)
        if await message_in_use(conn, message.id):
            raise MessageInUse(f"message {ref} of account {account_id} is used by a send")
        await conn.execute("UPDATE messages SET deleted_at = now() WHERE id = $1", message.id)
        await conn.execute(
            "UPDATE accounts SET default_greeting_enabled = false, default_greeting_message_id = NULL "
            "WHERE id = $1 AND default_greeting_message_id = $2",
            account_id,
            message.id,
        )
    return message
