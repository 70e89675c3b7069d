"""An account's caps hold for the whole cluster (issue 17, VOCALCAST_CLUSTER): two engines claiming at
the same moment never take an account past its daily spending cap, and never give it more simultaneous
transfers than its cap — both counted in PostgreSQL, under the account's lock. Before, each engine read
the day's spending and then claimed in two steps, and counted transfers in its own memory: two engines
gave an account up to twice its caps."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from engine.services.dialing.attempt import AccountTransfers
from engine.services.sends import create_send
from engine.settings import Settings
from engine.store import Database
from engine.store import attempts as attempts_store
from engine.store import spending as spending_store
from engine.store import transfers as transfers_store
from engine.store.attempts import Claim
from engine.store.db import Executor
from tests.integration.dialing import Customer, customer, targets

CAP = 3


async def _send(db: Database, settings: Settings, who: Customer, first: int, count: int) -> UUID:
    numbers = [f"06{i:08d}" for i in range(12000000 + first, 12000000 + first + count)]
    send = await create_send(
        db, settings, who.account, message_ref=who.message.ref, targets=targets(numbers), origin="api"
    )
    return send.id


def _take(send_id: UUID, now: datetime, node: str):  # type: ignore[no-untyped-def]
    async def take(conn: Executor, limit: int) -> list[Claim]:
        return await attempts_store.claim(
            conn,
            send_id,
            [("", 10)],
            [attempts_store.Slot("t", 1, demo=False)] * 10,
            limit=limit,
            node=node,
            app=f"vocalcast-{node}",
            now=now,
        )

    return take


async def test_two_engines_claiming_at_once_stay_within_the_daily_cap(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path, credits=100)
    await spending_store.set_daily_cap(db, who.account.id, CAP)
    sends = [await _send(db, stack_settings, who, 0, 5), await _send(db, stack_settings, who, 5, 5)]
    now = datetime.now(UTC)
    # Each engine's claim waits (a moment at most) for the other engine to have read the day's spending
    # too: without the account's lock both read 0 spent and claim 3 each; with it, the second reads after
    # the first's claims are committed.
    arrived = 0
    both = asyncio.Event()

    async def engine(send_id: UUID, node: str) -> int:
        take = _take(send_id, now, node)

        async def take_with_the_other(conn: Executor, limit: int) -> list[Claim]:
            nonlocal arrived
            arrived += 1
            if arrived == 2:
                both.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(both.wait(), 0.5)
            return await take(conn, limit)

        capped = await spending_store.claim_within_cap(
            db, who.account.id, send_id, default_cap=0, limit=5, now=now, claim=take_with_the_other
        )
        return len(capped.claims)

    claimed = await asyncio.gather(engine(sends[0], "alpha"), engine(sends[1], "beta"))
    assert sorted(claimed) == [0, CAP], claimed  # the second engine found the cap reached
    assert await db.fetchval("SELECT count(*) FROM attempts") == CAP
    winner, loser = (sends[0], sends[1]) if claimed[0] else (sends[1], sends[0])
    # At the cap: nothing more is claimed, the due recipients wait for the next day, with the reason.
    later = await spending_store.claim_within_cap(
        db, who.account.id, winner, default_cap=0, limit=5, now=now, claim=_take(winner, now, "alpha")
    )
    assert later.claims == [] and later.spending is not None and later.spending.spent == CAP
    assert later.postponed == 5 - CAP
    waiting = await db.fetch(
        "SELECT send_id, wait_reason, next_attempt_at FROM send_recipients WHERE state = 'pending'"
    )
    assert len(waiting) == 10 - CAP
    assert {r["wait_reason"] for r in waiting} == {"daily_cap"}
    assert all(r["next_attempt_at"] == later.spending.next_day for r in waiting)
    assert sum(r["send_id"] == loser for r in waiting) == 5
    # No cap: the claim is not limited (and not counted).
    await spending_store.set_daily_cap(db, who.account.id, 0)
    tomorrow = later.spending.next_day
    free = await spending_store.claim_within_cap(
        db, who.account.id, loser, default_cap=0, limit=5, now=tomorrow, claim=_take(loser, tomorrow, "beta")
    )
    assert free.spending is None and len(free.claims) == 5


async def test_two_engines_never_hold_more_transfers_than_the_account_cap(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path, credits=100)
    send_id = await _send(db, stack_settings, who, 0, 6)
    now = datetime.now(UTC)
    claims = await _take(send_id, now, "alpha")(db, 6)
    assert len(claims) == 6
    account = who.account.id
    # Two engines (each its own counter object, as each engine process has), three callees each pressing
    # 9 at the same moment; the account may hold 2 transfers at once.
    alpha, beta = AccountTransfers(db), AccountTransfers(db)
    granted = await asyncio.gather(
        *(places.take(c.attempt_id, account, 2) for places, c in zip([alpha, beta] * 3, claims, strict=True))
    )
    assert sum(granted) == 2, granted
    assert await transfers_store.held(db, account) == 2
    holders = [c for c, ok in zip(claims, granted, strict=True) if ok]
    waiting = [c for c, ok in zip(claims, granted, strict=True) if not ok]
    # Pressing 9 again during one's own transfer does not take a second place.
    assert await beta.take(holders[0].attempt_id, account, 2)
    assert await transfers_store.held(db, account) == 2
    # A leg that ends frees its place for the other engine's callee.
    alpha.give_back(holders[0].attempt_id)
    await asyncio.sleep(0)
    await wait_released(db, account, 1)
    assert await beta.take(waiting[0].attempt_id, account, 2)
    assert not await alpha.take(waiting[1].attempt_id, account, 2)
    # An ended attempt holds no place (an engine that died mid-transfer frees it once its call is ended).
    await db.execute(
        "UPDATE attempts SET state = 'ended', outcome = 'transferred', end_reason = 'hangup' WHERE id = $1",
        holders[1].attempt_id,
    )
    assert await transfers_store.held(db, account) == 1
    assert await alpha.take(waiting[1].attempt_id, account, 2)
    # Cap 0: no transfer at all.
    assert not await alpha.take(waiting[2].attempt_id, account, 0)


async def wait_released(db: Database, account: UUID, expected: int) -> None:
    for _ in range(100):
        if await transfers_store.held(db, account) == expected:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"still {await transfers_store.held(db, account)} transfers held")


async def test_a_place_being_taken_is_waited_for_by_the_other_engine(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    """The last place taken by one engine in a transaction not yet committed: the other engine's press
    of 9 waits for it (the account's lock) and then finds the cap reached, instead of counting without
    the uncommitted place and taking a third."""
    who = await customer(db, stack_settings, tmp_path, credits=100)
    send_id = await _send(db, stack_settings, who, 0, 3)
    first, second, third = await _take(send_id, datetime.now(UTC), "alpha")(db, 3)
    account = who.account.id
    alpha, beta = AccountTransfers(db), AccountTransfers(db)
    assert await alpha.take(first.attempt_id, account, 2)
    async with db.transaction() as conn:
        assert await transfers_store.hold(conn, second.attempt_id, account, 2)  # the last place, uncommitted
        other = asyncio.create_task(beta.take(third.attempt_id, account, 2))
        await asyncio.sleep(0.2)  # time for the other engine to count (without the lock, it would now)
    assert not await other
    assert await transfers_store.held(db, account) == 2
