"""Sends in the real PostgreSQL: all-or-nothing creation, credits that never go negative under
concurrency, state transitions, idempotency, and the claim that never hands one recipient to two
engines."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.domain.accounts import InsufficientCredits
from engine.domain.sends import SendStatus
from engine.errors import InvalidInput, NotFound
from engine.sends import create_send, steer
from engine.settings import Settings
from engine.store import Database
from engine.store import sends as sends_store
from engine.store.accounts import balance, create_account
from tests.integration.dialing import customer, targets


async def test_one_hundred_concurrent_sends_never_take_the_balance_below_zero(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path, credits=250)
    numbers = targets([f"06{i:08d}" for i in range(12000000, 12000003)])  # 3 credits each

    async def one() -> bool:
        try:
            await create_send(
                db, stack_settings, who.account, message_ref=who.message.ref, targets=numbers, origin="api"
            )
        except InsufficientCredits:
            return False
        return True

    results = await asyncio.gather(*(one() for _ in range(100)))
    assert results.count(True) == 83  # 83 x 3 = 249 <= 250 < 252
    money = await balance(db, who.account.id)
    assert money.available == 1 and money.reserved == 249
    assert await db.fetchval("SELECT count(*) FROM sends") == 83
    assert await db.fetchval("SELECT count(*) FROM send_recipients") == 249
    ledger = await db.fetchval("SELECT sum(amount) FROM credit_ledger WHERE account_id = $1", who.account.id)
    assert ledger == money.available


async def test_refused_send_creates_nothing(stack_settings: Settings, db: Database, tmp_path: Path) -> None:
    who = await customer(db, stack_settings, tmp_path, credits=2)
    with pytest.raises(InsufficientCredits):
        await create_send(
            db,
            stack_settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets(["0612000001", "0612000002", "0612000003"]),
            origin="http",
        )
    with pytest.raises(InvalidInput) as err:
        await create_send(
            db, stack_settings, who.account, message_ref=99, targets=targets(["0612000001"]), origin="http"
        )
    assert err.value.code == "message_not_found"
    with pytest.raises(InvalidInput) as err:
        await create_send(
            db,
            stack_settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets(["0612000001"]),
            origin="http",
            transfer="0899123456",
        )
    assert err.value.code == "transfer_invalid"
    with pytest.raises(InvalidInput) as err:
        await create_send(
            db,
            stack_settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets(["0145678903"]),
            origin="http",
            voicemail_drop=True,
        )
    assert err.value.code == "drop_not_mobile"
    with pytest.raises(InvalidInput) as err:
        await create_send(
            db,
            stack_settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets(["0612000001"]),
            origin="http",
            sender="0162000000",
        )
    assert err.value.code == "sender_not_verified"
    past = datetime.now(UTC) - timedelta(minutes=1)
    with pytest.raises(InvalidInput) as err:
        await create_send(
            db,
            stack_settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets(["0612000001"]),
            origin="http",
            at=past,
        )
    assert err.value.code == "deferred_past"
    assert await db.fetchval("SELECT count(*) FROM sends") == 0
    assert (await balance(db, who.account.id)).available == 2


async def test_another_accounts_message_is_not_a_valid_reference(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path)
    other = await create_account(
        db, "autre@example.fr", secret_key=stack_settings.require("secret_key"), credits=9
    )
    with pytest.raises(InvalidInput) as err:
        await create_send(
            db,
            stack_settings,
            other.account,
            message_ref=who.message.ref,
            targets=targets(["0612000001"]),
            origin="http",
        )
    assert err.value.code == "message_not_found"
    send = await create_send(
        db,
        stack_settings,
        who.account,
        message_ref=who.message.ref,
        targets=targets(["0612000001"]),
        origin="http",
    )
    with pytest.raises(NotFound):
        await sends_store.get_send(db, send.id, account_id=other.account.id)
    with pytest.raises(NotFound):
        await steer(db, send.id, "cancel", account_id=other.account.id)


async def test_states_cancel_releases_credits_and_idempotency(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path, credits=10)
    later = datetime.now(UTC) + timedelta(hours=1)
    send = await create_send(
        db,
        stack_settings,
        who.account,
        message_ref=who.message.ref,
        targets=targets(["0612000001", "0612000002"]),
        origin="api",
        at=later,
        idempotency_key="k1",
    )
    again = await create_send(
        db,
        stack_settings,
        who.account,
        message_ref=who.message.ref,
        targets=targets(["0612000001", "0612000002"]),
        origin="api",
        at=later,
        idempotency_key="k1",
    )
    assert again.id == send.id and send.status is SendStatus.scheduled
    assert (await balance(db, who.account.id)).available == 8
    with pytest.raises(InvalidInput) as err:
        await steer(db, send.id, "pause")  # not running yet
    assert err.value.code == "send_state"
    cancelled = await steer(db, send.id, "cancel")
    assert cancelled.status is SendStatus.cancelled
    assert (await balance(db, who.account.id)).available == 10
    assert (await sends_store.progress(db, send.id)).cancelled == 2
    with pytest.raises(InvalidInput):
        await steer(db, send.id, "resume")


async def test_concurrent_claims_never_share_a_recipient(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path, credits=100)
    send = await create_send(
        db,
        stack_settings,
        who.account,
        message_ref=who.message.ref,
        targets=targets([f"06{i:08d}" for i in range(12000000, 12000050)]),
        origin="api",
    )
    now = datetime.now(UTC)
    batches = await asyncio.gather(
        *(
            sends_store.claim(db, send.id, ["t"] * 7, node=f"n{i}", app=f"a{i}", demo=False, now=now)
            for i in range(10)
        )
    )
    claimed = [c.recipient_id for batch in batches for c in batch]
    assert len(claimed) == 50 and len(set(claimed)) == 50
    assert await db.fetchval("SELECT count(*) FROM attempts WHERE send_id = $1", send.id) == 50


async def test_deferred_send_starts_at_its_time_not_before(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path, credits=10)
    at = datetime.now(UTC) + timedelta(hours=2)
    send = await create_send(
        db,
        stack_settings,
        who.account,
        message_ref=who.message.ref,
        targets=targets(["0612000001"]),
        origin="api",
        at=at,
    )
    assert await sends_store.start_due(db, at - timedelta(seconds=1)) == []
    assert await sends_store.runnable_sends(db, at) == []
    assert await sends_store.start_due(db, at) == [send.id]
    # Missed while the engine was down: starts as soon as it is back.
    assert (await sends_store.get_send(db, send.id)).status is SendStatus.running
