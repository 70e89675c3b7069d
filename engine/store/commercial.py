"""What the law on commercial calls needs from the store (engine/domain/commercial.py): each number's
recent attempts and refusals across all of an account's commercial sends, the due recipients of a
commercial send the dialer checks before claiming them, and the waits and exclusions it decides."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

from engine.domain.commercial import CAP_PERIOD_DAYS, COOLDOWN_DAYS, History
from engine.store.db import Executor, in_transaction

# Namespace of the per-account advisory lock under which a commercial send is gated and claimed.
_LAW_LOCK: Final = 0x6C6F69  # "loi"
# A refusal is a SIP 603 (Decline) from the callee; an opt-out by key puts the number on the stop list.
REFUSAL_SIP_CODE: Final = 603
# How far back the history is read: the longest rule, plus a day for a number's local calendar days.
_LOOKBACK: Final = timedelta(days=max(CAP_PERIOD_DAYS, COOLDOWN_DAYS + 1) + 2)


async def histories(
    db: Executor, account_id: UUID, numbers: Sequence[str], at: datetime
) -> dict[str, History]:
    """Each number's attempts (retries included; a failover is the same attempt) and refusals in the
    account's commercial sends over the period the rules look at, up to ``at``."""
    if not numbers:
        return {}
    rows = await db.fetch(
        "SELECT r.e164, a.created_at, a.sip_code = $4 AS refused, coalesce(a.ended_at, a.created_at) AS "
        "ended_at FROM send_recipients r JOIN sends s ON s.id = r.send_id "
        "JOIN attempts a ON a.recipient_id = r.id "
        "WHERE r.e164 = ANY($2::text[]) AND s.account_id = $1 AND s.purpose = 'commercial' "
        "AND a.failover_of IS NULL AND a.created_at >= $3",
        account_id,
        list(numbers),
        at - _LOOKBACK,
        REFUSAL_SIP_CODE,
    )
    attempts: dict[str, list[datetime]] = {}
    refusals: dict[str, list[datetime]] = {}
    for row in rows:
        attempts.setdefault(row["e164"], []).append(row["created_at"])
        if row["refused"]:
            refusals.setdefault(row["e164"], []).append(row["ended_at"])
    return {
        n: History(tuple(attempts.get(n, ())), tuple(refusals.get(n, ())))
        for n in numbers
        if n in attempts or n in refusals
    }


@dataclass(frozen=True, slots=True)
class Due:
    recipient_id: int
    e164: str


async def due(db: Executor, send_id: UUID, now: datetime, *, limit: int) -> list[Due]:
    """The send's recipients due now, in the claim's order (engine/store/attempts.py)."""
    rows = await db.fetch(
        "SELECT id, e164 FROM send_recipients WHERE send_id = $1 AND state = 'pending' "
        "AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $3",
        send_id,
        now,
        limit,
    )
    return [Due(r["id"], r["e164"]) for r in rows]


@dataclass(frozen=True, slots=True)
class Wait:
    """A recipient the law keeps from being called now: until when (None: never, it is left out), and
    why (a wait_reason of sql/0016_french_law.sql)."""

    recipient_id: int
    reason: str
    until: datetime | None


async def hold(db: Executor, waits: Sequence[Wait]) -> None:
    """Postpone each recipient to its ``until`` with its reason, or leave it out of the send (state
    cancelled: its credit goes back when the send completes); only recipients still pending."""
    if not waits:
        return
    async with in_transaction(db) as conn:
        await conn.execute(
            "UPDATE send_recipients r SET wait_reason = v.reason, "
            "state = CASE WHEN v.until IS NULL THEN 'cancelled' ELSE 'pending' END, "
            "next_attempt_at = coalesce(v.until, r.next_attempt_at) "
            "FROM unnest($1::bigint[], $2::text[], $3::timestamptz[]) AS v(id, reason, until) "
            "WHERE r.id = v.id AND r.state = 'pending'",
            [w.recipient_id for w in waits],
            [w.reason for w in waits],
            [w.until for w in waits],
        )


async def lock_account(conn: Executor, account_id: UUID) -> None:
    """Until the caller's transaction ends, the account's commercial gating and claims are this one's
    (engine/services/dialing/lawgate.claim_lawfully)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _LAW_LOCK, str(account_id))
