"""Transfers (touche 9) as the account pays for them (issue 17): each transfer's started minutes beyond
the first cost ``unit`` credits, charged once per attempt; a send's transfer minutes and credits; the
account's own caps (longest transfer, simultaneous transfers), and the places of its simultaneous
transfers, held for the whole cluster."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from uuid import UUID

import structlog

from engine.domain.accounts import UnknownAccount
from engine.domain.spending import TransferLimits
from engine.store import credits
from engine.store.db import Executor, in_transaction

log = structlog.get_logger(__name__)

# Namespace of the per-account advisory lock under which a transfer's place is counted and taken.
_TRANSFER_LOCK: Final = 0x7472616E  # "tran"


@dataclass(frozen=True, slots=True)
class TransferUsage:
    transfers: int  # attempts whose call centre answered
    minutes: int  # started minutes of those conversations
    credits: int  # what they were charged beyond the call's own credit


async def limits(db: Executor, account_id: UUID) -> TransferLimits:
    row = await db.fetchrow("SELECT transfer_max_s, max_transfers FROM accounts WHERE id = $1", account_id)
    if row is None:
        raise UnknownAccount(f"no account {account_id}")
    return TransferLimits(row["transfer_max_s"], row["max_transfers"])


async def set_limits(
    db: Executor,
    account_id: UUID,
    *,
    max_s: float | None,
    max_simultaneous: int | None,
    change_max_s: bool = True,
    change_max_simultaneous: bool = True,
) -> TransferLimits:
    """Set the account's own caps (checked by the caller; None: the setting's); a cap whose ``change_*``
    is False stays as it is. One statement: both change or neither."""
    row = await db.fetchrow(
        "UPDATE accounts SET transfer_max_s = CASE WHEN $2 THEN $3 ELSE transfer_max_s END, "
        "max_transfers = CASE WHEN $4 THEN $5 ELSE max_transfers END WHERE id = $1 "
        "RETURNING transfer_max_s, max_transfers",
        account_id,
        change_max_s,
        max_s,
        change_max_simultaneous,
        max_simultaneous,
    )
    if row is None:
        raise UnknownAccount(f"no account {account_id}")
    return TransferLimits(row["transfer_max_s"], row["max_transfers"])


async def hold(db: Executor, attempt_id: UUID, account_id: UUID, cap: int) -> bool:
    """Take one of the account's ``cap`` simultaneous transfers for the attempt's transfer leg; False when
    every place is taken (by any engine). Counted and taken in one transaction under the account's lock:
    two engines cannot both take the last place. An attempt that holds one already keeps it (True)."""
    async with in_transaction(db) as conn:
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _TRANSFER_LOCK, str(account_id))
        taken = await conn.fetchval(
            "WITH held AS (SELECT count(*) AS n FROM attempts a JOIN sends s ON s.id = a.send_id "
            "WHERE s.account_id = $2 AND a.transfer_held AND a.state <> 'ended' AND a.id <> $1) "
            "UPDATE attempts SET transfer_held = true FROM held "
            "WHERE id = $1 AND state <> 'ended' AND held.n < $3 RETURNING id",
            attempt_id,
            account_id,
            cap,
        )
    return taken is not None


async def release(db: Executor, attempt_id: UUID) -> None:
    """The attempt's transfer leg is gone: its place is free (for every engine)."""
    await db.execute("UPDATE attempts SET transfer_held = false WHERE id = $1 AND transfer_held", attempt_id)


async def held(db: Executor, account_id: UUID) -> int:
    """The account's transfers in progress, all engines together."""
    n: int = await db.fetchval(
        "SELECT count(*) FROM attempts a JOIN sends s ON s.id = a.send_id "
        "WHERE s.account_id = $1 AND a.transfer_held AND a.state <> 'ended'",
        account_id,
    )
    return n


async def usage(db: Executor, send_id: UUID) -> TransferUsage:
    row = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE transfer_s > 0) AS n, "
        "coalesce(sum(ceil(transfer_s / 60.0)) FILTER (WHERE transfer_s > 0), 0) AS minutes, "
        "coalesce(sum(transfer_credits), 0) AS credits FROM attempts WHERE send_id = $1",
        send_id,
    )
    if row is None:  # an aggregate always returns its row
        return TransferUsage(0, 0, 0)
    return TransferUsage(int(row["n"]), int(row["minutes"]), int(row["credits"]))


async def bill(db: Executor, *, unit: int, limit: int = 200) -> int:
    """Charge the transfers ended lately and not charged yet: ``unit`` credits per started minute beyond
    the first (0: free, nothing charged); what the balance cannot cover is not charged (logged). Returns
    the credits charged."""
    if unit <= 0:
        return 0
    rows = await db.fetch(
        "SELECT a.id, a.send_id, s.account_id, ceil(a.transfer_s / 60.0)::int AS minutes FROM attempts a "
        "JOIN sends s ON s.id = a.send_id WHERE a.state = 'ended' AND a.transfer_s > 0 "
        "AND a.transfer_credits IS NULL AND a.ended_at > now() - interval '1 day' LIMIT $1",
        limit,
    )
    charged = 0
    for row in rows:
        due = unit * max(0, row["minutes"] - 1)
        async with in_transaction(db) as conn:
            taken = await conn.fetchval(
                "UPDATE attempts SET transfer_credits = 0 WHERE id = $1 AND transfer_credits IS NULL "
                "RETURNING id",
                row["id"],
            )
            if taken is None or due == 0:
                continue
            available = await conn.fetchval(
                "SELECT balance FROM accounts WHERE id = $1 FOR UPDATE", row["account_id"]
            )
            amount = min(due, max(0, int(available or 0)))
            if amount < due:
                log.warning("transfer.not_fully_charged", attempt_id=str(row["id"]), due=due, charged=amount)
            if amount == 0:
                continue
            reason = f"transfert : {row['minutes'] - 1} minute(s) au-delà de la première"
            account_id, send_id = row["account_id"], row["send_id"]
            await credits.record_movement(
                conn, account_id, kind="reserve", amount=-amount, held=amount, reason=reason, send_id=send_id
            )
            await credits.record_movement(
                conn, account_id, kind="consume", amount=0, held=-amount, reason=reason, send_id=send_id
            )
            await conn.execute("UPDATE attempts SET transfer_credits = $2 WHERE id = $1", row["id"], amount)
            charged += amount
    return charged
