"""The recording line's places for unknown callers while the guess budget is spent (issue 17): counted
in PostgreSQL across every engine, so that two engines claiming at the same moment never hold more than
VOCALCAST_IVR_UNKNOWN_CALLS_WHEN_SPENT places together, and a crashed engine's places come back when
their leases run out."""

from __future__ import annotations

import asyncio

from engine.settings import Settings
from engine.store import Database
from engine.store import ivr as ivr_store

PLACES = 2
LEASE_S = 60.0


async def test_two_engines_claiming_at_once_hold_no_more_than_the_places(
    stack_settings: Settings, db: Database
) -> None:
    async with (
        Database(stack_settings.dsn, min_size=5, max_size=5) as one,
        Database(stack_settings.dsn, min_size=5, max_size=5) as two,
    ):
        # Ten calls at once, five on each engine, each on its own connection.
        calls = [(engine, f"{name}-{i}") for name, engine in (("one", one), ("two", two)) for i in range(5)]
        won = await asyncio.gather(
            *(ivr_store.claim_place(e, call, places=PLACES, lease_s=LEASE_S) for e, call in calls)
        )
        assert sum(won) == PLACES, won
        holders = {call for (_, call), ok in zip(calls, won, strict=True) if ok}
        rows = await db.fetch("SELECT call FROM ivr_checking_calls")
        assert {r["call"] for r in rows} == holders
        # A holder renews its place (its next code); the others are still refused.
        holder = sorted(holders)[0]
        assert await ivr_store.claim_place(two, holder, places=PLACES, lease_s=LEASE_S)
        loser = next(call for _, call in calls if call not in holders)
        assert not await ivr_store.claim_place(one, loser, places=PLACES, lease_s=LEASE_S)
        # A released place goes to the next caller at once.
        await ivr_store.release_place(one, holder)
        assert await ivr_store.claim_place(one, loser, places=PLACES, lease_s=LEASE_S)
        assert not await ivr_store.claim_place(two, "late", places=PLACES, lease_s=LEASE_S)


async def test_a_crashed_engines_places_come_back_when_their_leases_run_out(db: Database) -> None:
    # The crashed engine's two calls never release: their leases are all that holds them.
    for call in ("crashed-1", "crashed-2"):
        assert await ivr_store.claim_place(db, call, places=PLACES, lease_s=0.3)
    assert not await ivr_store.claim_place(db, "alive-1", places=PLACES, lease_s=LEASE_S)
    await asyncio.sleep(0.5)  # the database clock passes the leases' end
    assert await ivr_store.claim_place(db, "alive-1", places=PLACES, lease_s=LEASE_S)
    # A call whose own lease ran out claims anew, as any other (here: the last place, then none left).
    assert await ivr_store.claim_place(db, "crashed-1", places=PLACES, lease_s=LEASE_S)
    assert not await ivr_store.claim_place(db, "crashed-2", places=PLACES, lease_s=LEASE_S)
    # The purge forgets run-out leases too.
    assert await ivr_store.claim_place(db, "short", places=3, lease_s=0.1)
    await asyncio.sleep(0.3)
    assert await ivr_store.purge(db, keep_s=60) == 1
    assert await db.fetchval("SELECT count(*) FROM ivr_checking_calls") == 2
