"""Credits of an account: every movement (credit, reserve, consume, release) and its ledger entry.

Every movement updates the account row and appends its ledger entry in one transaction: the row lock
serialises movements of one account and the row's CHECKs forbid a negative balance. Movement functions
accept the pool or a connection, so that the dialer can reserve inside its own transaction (a savepoint
then keeps a refusal from aborting it).
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from engine.domain import accounts as domain
from engine.domain.accounts import Balance, InsufficientCredits, LedgerEntry, UnknownAccount
from engine.store.db import Executor, in_transaction


async def record_movement(
    conn: asyncpg.Connection,
    account_id: UUID,
    *,
    kind: domain.LedgerKind,
    amount: int,
    held: int,
    reason: str,
    send_id: UUID | None,
) -> Balance:
    """Apply one movement to the account row and record it; the caller holds the transaction (the dialer
    moves a send's credits inside its own, engine/store/sends.py)."""
    try:
        row = await conn.fetchrow(
            "UPDATE accounts SET balance = balance + $2, reserved = reserved + $3 WHERE id = $1 "
            "RETURNING balance, reserved",
            account_id,
            amount,
            held,
        )
    except asyncpg.CheckViolationError as exc:
        raise InsufficientCredits(f"account {account_id}: movement {kind} {amount:+d} refused") from exc
    if row is None:
        raise UnknownAccount(f"no account {account_id}")
    await conn.execute(
        "INSERT INTO credit_ledger (account_id, kind, amount, held, reason, send_id) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        account_id,
        kind,
        amount,
        held,
        reason,
        send_id,
    )
    return Balance(available=row["balance"], reserved=row["reserved"])


async def credit(db: Executor, account_id: UUID, amount: int, *, reason: str = "crédit") -> Balance:
    """An operator adds credits (a positive whole number)."""
    domain.check_credit_amount(amount)
    async with in_transaction(db) as conn:
        return await record_movement(
            conn, account_id, kind="credit", amount=amount, held=0, reason=reason, send_id=None
        )


async def balance(db: Executor, account_id: UUID) -> Balance:
    row = await db.fetchrow("SELECT balance, reserved FROM accounts WHERE id = $1", account_id)
    if row is None:
        raise UnknownAccount(f"no account {account_id}")
    return Balance(available=row["balance"], reserved=row["reserved"])


async def reserve(
    db: Executor, account_id: UUID, send_id: UUID, amount: int, *, reason: str = "réservation"
) -> Balance:
    """Hold ``amount`` credits for a send, or raise InsufficientCredits and change nothing."""
    domain.check_credit_amount(amount)
    async with in_transaction(db) as conn:
        # The row lock taken by this UPDATE serialises concurrent reservations; the WHERE clause is
        # re-checked on the latest row version, so two of them cannot both spend the same credits.
        row = await conn.fetchrow(
            "UPDATE accounts SET balance = balance - $2, reserved = reserved + $2 "
            "WHERE id = $1 AND balance >= $2 RETURNING balance, reserved",
            account_id,
            amount,
        )
        if row is None:
            available = await conn.fetchval("SELECT balance FROM accounts WHERE id = $1", account_id)
            if available is None:
                raise UnknownAccount(f"no account {account_id}")
            raise InsufficientCredits(f"account {account_id}: {available} credits available, {amount} needed")
        await conn.execute(
            "INSERT INTO credit_ledger (account_id, kind, amount, held, reason, send_id) "
            "VALUES ($1, 'reserve', $2, $3, $4, $5)",
            account_id,
            -amount,
            amount,
            reason,
            send_id,
        )
        return Balance(available=row["balance"], reserved=row["reserved"])


async def _held_for(conn: asyncpg.Connection, account_id: UUID, send_id: UUID) -> int:
    """Credits a send still holds; takes the account row lock first so the sum cannot move meanwhile."""
    locked = await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", account_id)
    if locked is None:
        raise UnknownAccount(f"no account {account_id}")
    held: int = await conn.fetchval(
        "SELECT coalesce(sum(held), 0) FROM credit_ledger WHERE account_id = $1 AND send_id = $2",
        account_id,
        send_id,
    )
    return held


async def consume(
    db: Executor, account_id: UUID, send_id: UUID, amount: int = 1, *, reason: str = "appel délivré"
) -> Balance:
    """Spend ``amount`` of the credits a send holds (a delivered call).

    Raises ValueError when the send holds less: the dialer consumed what it never reserved.
    """
    domain.check_credit_amount(amount)
    async with in_transaction(db) as conn:
        held = await _held_for(conn, account_id, send_id)
        if held < amount:
            raise ValueError(f"send {send_id} holds {held} credits, cannot consume {amount}")
        return await record_movement(
            conn, account_id, kind="consume", amount=0, held=-amount, reason=reason, send_id=send_id
        )


async def release(
    db: Executor,
    account_id: UUID,
    send_id: UUID,
    amount: int | None = None,
    *,
    reason: str = "crédits non utilisés",
) -> int:
    """Give back ``amount`` (default: all) of what a send holds; returns how many were released.

    Releasing a send that holds nothing is a no-op (no entry), so a finished send can be released twice.
    """
    if amount is not None:
        domain.check_credit_amount(amount)
    async with in_transaction(db) as conn:
        held = await _held_for(conn, account_id, send_id)
        count = held if amount is None else amount
        if count > held:
            raise ValueError(f"send {send_id} holds {held} credits, cannot release {amount}")
        if count == 0:
            return 0
        await record_movement(
            conn, account_id, kind="release", amount=count, held=-count, reason=reason, send_id=send_id
        )
        return count


async def held_by_send(db: Executor, account_id: UUID, send_id: UUID) -> int:
    """Credits a send still holds (reserved, neither consumed nor released)."""
    value: int = await db.fetchval(
        "SELECT coalesce(sum(held), 0) FROM credit_ledger WHERE account_id = $1 AND send_id = $2",
        account_id,
        send_id,
    )
    return value


async def ledger(
    db: Executor, account_id: UUID, *, limit: int = 50, before_id: int | None = None
) -> list[LedgerEntry]:
    """The account's movements, newest first; page with ``before_id`` (the last id of a page)."""
    rows = await db.fetch(
        "SELECT id, at, kind, amount, held, reason, send_id FROM credit_ledger "
        "WHERE account_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        account_id,
        before_id,
        limit,
    )
    return [
        LedgerEntry(
            id=r["id"],
            at=r["at"],
            kind=r["kind"],
            amount=r["amount"],
            held=r["held"],
            reason=r["reason"],
            send_id=r["send_id"],
        )
        for r in rows
    ]
