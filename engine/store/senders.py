"""Sender numbers (caller IDs) of an account: declared by the customer, verified by our staff; only
verified ones are ever presented to callees."""

from __future__ import annotations

from typing import Final
from uuid import UUID

import asyncpg

from engine.domain import accounts as domain
from engine.domain.accounts import SenderNumber, UnknownAccount
from engine.errors import NotFound
from engine.store.db import Database, Executor

_COLUMNS: Final = "id, e164, status, is_mobile, declared_at, verified_at"


def _sender(row: asyncpg.Record) -> SenderNumber:
    return SenderNumber(
        id=row["id"],
        e164=row["e164"],
        status=row["status"],
        is_mobile=row["is_mobile"],
        declared_at=row["declared_at"],
        verified_at=row["verified_at"],
    )


async def declare_sender(db: Database, account_id: UUID, raw: str) -> SenderNumber:
    """Declare a sender number (pending until verified); declaring it again returns the existing one."""
    check = domain.check_sender(raw)
    try:
        row = await db.fetchrow(
            f"INSERT INTO sender_numbers (account_id, e164, is_mobile) VALUES ($1, $2, $3) "  # noqa: S608 - constant columns
            f"ON CONFLICT (account_id, e164) DO NOTHING RETURNING {_COLUMNS}",
            account_id,
            check.e164,
            check.is_mobile,
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise UnknownAccount(f"no account {account_id}") from exc
    if row is None:
        row = await db.fetchrow(
            f"SELECT {_COLUMNS} FROM sender_numbers WHERE account_id = $1 AND e164 = $2",  # noqa: S608 - constant columns
            account_id,
            check.e164,
        )
        if row is None:  # removed in between: cannot happen today, there is no removal
            raise NotFound(f"sender number {check.e164} vanished")
    return _sender(row)


async def verify_sender(db: Database, account_id: UUID, raw: str) -> SenderNumber:
    """An operator confirms a declared number belongs to the customer; mobiles are refused (ARCEP)."""
    check = domain.check_sender(raw)
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM sender_numbers WHERE account_id = $1 AND e164 = $2 FOR UPDATE",  # noqa: S608 - constant columns
            account_id,
            check.e164,
        )
        if row is None:
            raise NotFound(
                f"{check.e164} is not a declared sender number of {account_id}",
                message_fr="Ce numéro émetteur n'a pas été déclaré.",
            )
        domain.check_verifiable(row["e164"], row["is_mobile"])
        row = await conn.fetchrow(
            "UPDATE sender_numbers SET status = 'verified', verified_at = coalesce(verified_at, now()) "  # noqa: S608 - constant columns
            f"WHERE id = $1 RETURNING {_COLUMNS}",
            row["id"],
        )
    return _sender(row)


async def list_senders(db: Executor, account_id: UUID) -> list[SenderNumber]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM sender_numbers WHERE account_id = $1 ORDER BY declared_at, id",  # noqa: S608 - constant columns
        account_id,
    )
    return [_sender(r) for r in rows]
