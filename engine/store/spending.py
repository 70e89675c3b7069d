"""An account's daily spending cap (issue 17): what the day's calls cost so far, claims that never take
the account past it (whichever engine of a cluster claims), and postponing a send's due recipients to
the next day once the cap is reached.

The day is the French one (Europe/Paris). Spending counts every credit the day's calls can take: credits
consumed by settled calls, final outcomes not yet settled that consume one, and calls in flight (each may
be answered). A call never costs more than one credit here (transfer minutes are billed apart).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Generic, TypeVar
from uuid import UUID

from engine.domain.outcomes import Outcome
from engine.domain.spending import DailySpending
from engine.store.db import Executor, in_transaction, rows_affected

DAILY_CAP_REASON = "daily_cap"
# Namespace of the per-account advisory lock under which an account with a cap reads its spending and
# claims (the second key is the account's hash).
_SPEND_LOCK: Final = 0x7370656E  # "spen"

T = TypeVar("T")


async def daily_spending(db: Executor, account_id: UUID, *, default_cap: int) -> DailySpending:
    """The account's cap (its own, else ``default_cap``; 0: none) and what today's calls cost so far (only
    counted when there is a cap: the dialer asks before every claim)."""
    cap = await db.fetchval(
        "SELECT coalesce(daily_spend_cap, $2) FROM accounts WHERE id = $1", account_id, default_cap
    )
    if not cap:
        return DailySpending(None, 0, datetime.max.replace(tzinfo=UTC))
    row = await db.fetchrow(
        "WITH day AS (SELECT date_trunc('day', now() AT TIME ZONE 'Europe/Paris') "
        "AT TIME ZONE 'Europe/Paris' AS start) "
        "SELECT coalesce(a.daily_spend_cap, $2) AS cap, day.start + interval '1 day' AS next_day, "
        "coalesce((SELECT -sum(l.held) FROM credit_ledger l WHERE l.account_id = a.id "
        "AND l.kind = 'consume' AND l.at >= day.start), 0) "
        "+ (SELECT count(*) FROM send_recipients r JOIN sends s ON s.id = r.send_id "
        "WHERE s.account_id = a.id AND s.status IN ('running', 'paused') AND ((r.state = 'done' "
        "AND NOT r.settled AND r.outcome = ANY($3::text[])) OR r.state = 'calling')) AS spent "
        "FROM accounts a, day WHERE a.id = $1",
        account_id,
        default_cap,
        [o.value for o in Outcome if o.consumes_credit],
    )
    if row is None:
        return DailySpending(None, 0, datetime.max.replace(tzinfo=UTC))
    return DailySpending(int(cap), int(row["spent"]), row["next_day"])


async def own_daily_cap(db: Executor, account_id: UUID) -> int | None:
    """The account's own cap (None: it follows the setting)."""
    cap: int | None = await db.fetchval("SELECT daily_spend_cap FROM accounts WHERE id = $1", account_id)
    return cap


async def set_daily_cap(db: Executor, account_id: UUID, cap: int | None) -> None:
    """The account's own cap (None: the setting's; 0: no cap)."""
    if cap is not None and cap < 0:
        raise ValueError(f"a daily cap is 0 or more, got {cap}")
    await db.execute("UPDATE accounts SET daily_spend_cap = $2 WHERE id = $1", account_id, cap)


async def postpone_to(db: Executor, send_id: UUID, until: datetime, now: datetime) -> int:
    """The send's recipients due now wait until ``until`` with the reason 'daily_cap'; how many."""
    status = await db.execute(
        "UPDATE send_recipients SET wait_reason = $3, next_attempt_at = $2 "
        "WHERE send_id = $1 AND state = 'pending' AND next_attempt_at <= $4",
        send_id,
        until,
        DAILY_CAP_REASON,
        now,
    )
    return rows_affected(status)


@dataclass(frozen=True, slots=True)
class CappedClaim(Generic[T]):
    """What a claim under the daily cap took, and why it took no more."""

    claims: list[T] = field(default_factory=list)
    spending: DailySpending | None = None  # None: the account has no cap (not counted)
    postponed: int = 0  # due recipients sent to the next day: the cap is reached


async def claim_within_cap(
    db: Executor,
    account_id: UUID,
    send_id: UUID,
    *,
    default_cap: int,
    limit: int,
    now: datetime,
    claim: Callable[[Executor, int], Awaitable[list[T]]],
) -> CappedClaim[T]:
    """``claim(conn, n)`` at most as many calls as the account's daily cap still allows (``limit`` at
    most); at the cap, the send's due recipients wait for the next day and nothing is claimed.

    Under a cap, reading the day's spending and claiming happen in one transaction under the account's
    lock: two engines (or two sends of the account) cannot both read the same spending before either's
    claims commit, so together they never claim past the cap (a claimed recipient counts as spent at
    once: it is 'calling')."""
    cap = await db.fetchval(
        "SELECT coalesce(daily_spend_cap, $2) FROM accounts WHERE id = $1", account_id, default_cap
    )
    if not cap:
        return CappedClaim(await claim(db, limit))
    async with in_transaction(db) as conn:
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _SPEND_LOCK, str(account_id))
        spending = await daily_spending(conn, account_id, default_cap=default_cap)
        remaining = spending.remaining
        if remaining is None:  # the cap was lifted meanwhile
            return CappedClaim(await claim(conn, limit))
        if remaining <= 0:
            return CappedClaim([], spending, await postpone_to(conn, send_id, spending.next_day, now))
        return CappedClaim(await claim(conn, min(limit, remaining)), spending)
