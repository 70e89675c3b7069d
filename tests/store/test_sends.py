"""Sends in the real PostgreSQL: all-or-nothing creation, credits that never go negative under
concurrency, state transitions, idempotency, and the claim that never hands one recipient to two
engines."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.domain.accounts import InsufficientCredits
from engine.domain.callevents import CallResult, EndReason
from engine.domain.contacts import NewContact
from engine.domain.outcomes import Outcome
from engine.domain.retries import RetryPolicy
from engine.domain.sends import SendStatus
from engine.errors import InvalidInput, NotFound
from engine.services.dialing.results import ResultWriter
from engine.services.sends import Sends, create_send, steer
from engine.settings import PROJECT_ROOT, Settings
from engine.store import Database
from engine.store import attempts as attempts_store
from engine.store import contacts as contacts_store
from engine.store import groups as groups_store
from engine.store import sends as sends_store
from engine.store.accounts import create_account
from engine.store.credits import balance
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
            attempts_store.claim(
                db,
                send.id,
                [("", 7)],
                [attempts_store.Slot("t", 1, demo=False)] * 7,
                limit=7,
                node=f"n{i}",
                app=f"a{i}",
                now=now,
            )
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


def _result(outcome: Outcome, *, sip_code: int | None = None) -> CallResult:
    now = time.time()
    answered = outcome is Outcome.listened
    return CallResult(
        outcome=outcome,
        end_reason=EndReason.message_completed if answered else EndReason.dial_failed,
        cause=16 if answered else 17,
        sip_code=sip_code,
        dialstatus=None if answered else "BUSY",
        may_fail_over=False,
        originated_at=now - 5,
        ringing_at=now - 4,
        answered_at=now - 3 if answered else None,
        ended_at=now,
        message_started_at=now - 2 if answered else None,
        greeting_plays=0,
        amd_status=None,
        amd_cause=None,
        transfer_outcome=None,
        transfer_started_at=None,
        transfer_answered_at=None,
        transfer_ended_at=None,
    )


async def test_results_written_in_batches_each_move_their_own_recipient(
    stack_settings: Settings, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    who = await customer(db, stack_settings, tmp_path, credits=10)
    send = await create_send(
        db,
        stack_settings,
        who.account,
        message_ref=who.message.ref,
        targets=targets([f"06{i:08d}" for i in range(12000000, 12000007)]),
        origin="api",
    )
    trunks = ["a", "b", "a", "b", "a", "b", "a"]
    claims = await attempts_store.claim(
        db,
        send.id,
        [("", len(trunks))],
        [attempts_store.Slot(t, 1, demo=False) for t in trunks],
        limit=len(trunks),
        node="n",
        app="x",
        now=datetime.now(UTC),
    )
    assert [c.trunk for c in claims] == trunks
    assert [c.attempt_no for c in claims] == [1] * 7
    policy = RetryPolicy(extra_attempts=1, interval_s=600)
    listened, busy, moved, bad, last_busy, twice, other = claims
    statements: list[int] = []
    record_results = attempts_store.record_results

    async def counted(
        db_: Database, results: list[attempts_store.Result], **kwargs: Any
    ) -> list[attempts_store.Recorded]:
        statements.append(len(results))
        return await record_results(db_, results, **kwargs)

    monkeypatch.setattr(attempts_store, "record_results", counted)
    writer = ResultWriter(db)
    # The busy recipient's second attempt: its last one under the policy.
    await db.execute("UPDATE send_recipients SET attempts = 2 WHERE id = $1", last_busy.recipient_id)
    last_busy = dataclasses.replace(last_busy, attempt_no=2)
    # Results of calls that end together: one statement (an attempt's second result, from a racing
    # reconciliation, goes into the next one).
    outcomes = await asyncio.gather(
        writer.record(attempts_store.Result(listened, _result(Outcome.listened), policy)),
        writer.record(attempts_store.Result(busy, _result(Outcome.busy), policy)),
        writer.record(attempts_store.Result(moved, _result(Outcome.busy), policy, failed_over=True)),
        writer.record(attempts_store.Result(last_busy, _result(Outcome.busy), policy)),
        writer.record(attempts_store.Result(twice, _result(Outcome.listened), policy)),
        writer.record(attempts_store.Result(twice, _result(Outcome.busy), policy, reconciled="cdr")),
    )
    assert statements == [5, 1]
    assert [(r.final, r.outcome) for r in outcomes] == [
        (True, Outcome.listened),
        (False, Outcome.busy),
        (False, Outcome.busy),  # failed over: the recipient stays calling
        (True, Outcome.busy),
        (True, Outcome.listened),
        (True, Outcome.busy),  # the attempt was recorded already: nothing changes
    ]
    # A result the database refuses (an int4 column cannot hold this code) fails alone.
    statements.clear()
    refused, written = await asyncio.gather(
        writer.record(attempts_store.Result(bad, _result(Outcome.busy, sip_code=2**40), policy)),
        writer.record(attempts_store.Result(other, _result(Outcome.listened), policy)),
        return_exceptions=True,
    )
    assert statements == [2, 1, 1]
    assert isinstance(refused, Exception)
    assert written == attempts_store.Recorded(True, Outcome.listened)
    rows = {
        r["id"]: r
        for r in await db.fetch(
            # Busy: retried after half the send's interval (RetryTiming.busy), 5 of its 10 minutes.
            "SELECT id, state, outcome, next_attempt_at > now() + interval '4 minutes' AS later "
            "FROM send_recipients WHERE send_id = $1",
            send.id,
        )
    }
    assert (rows[listened.recipient_id]["state"], rows[listened.recipient_id]["outcome"]) == (
        "done",
        "listened",
    )
    assert (rows[busy.recipient_id]["state"], rows[busy.recipient_id]["later"]) == ("pending", True)
    assert rows[moved.recipient_id]["state"] == "calling"
    assert rows[bad.recipient_id]["state"] == "calling"  # left to reconciliation
    assert (rows[last_busy.recipient_id]["state"], rows[last_busy.recipient_id]["outcome"]) == (
        "done",
        "busy",
    )
    assert (rows[twice.recipient_id]["state"], rows[twice.recipient_id]["outcome"]) == ("done", "listened")
    attempts = {
        r["id"]: (r["state"], r["outcome"], r["reconciled"])
        for r in await db.fetch(
            "SELECT id, state, outcome, reconciled FROM attempts WHERE send_id = $1", send.id
        )
    }
    assert attempts[twice.attempt_id] == ("ended", "listened", None)
    assert attempts[bad.attempt_id] == ("originating", None, None)
    assert attempts[moved.attempt_id] == ("ended", "busy", None)
    assert attempts[other.attempt_id] == ("ended", "listened", None)


async def _send_of(db: Database, settings: Settings, who: object, numbers: list[str]) -> sends_store.Send:
    return await create_send(
        db,
        settings,
        who.account,  # type: ignore[attr-defined]
        message_ref=who.message.ref,  # type: ignore[attr-defined]
        targets=targets(numbers),
        origin="api",
    )


async def _all_listened(db: Database, send_id: object) -> None:
    await db.execute(
        "UPDATE send_recipients SET state = 'done', outcome = 'listened', final_at = now() "
        "WHERE send_id = $1",
        send_id,
    )


async def test_a_send_whose_books_do_not_add_up_never_keeps_the_others_from_completing(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path, credits=10)
    broken = await _send_of(db, stack_settings, who, ["0612000001", "0612000002"])
    healthy = await _send_of(db, stack_settings, who, ["0612000003"])
    for send in (broken, healthy):
        await _all_listened(db, send.id)
    await db.execute("UPDATE sends SET credits_held = 0 WHERE id = $1", broken.id)

    # Both have nobody left to call: both complete, the healthy one with its credits settled.
    assert set(await sends_store.complete_finished(db)) == {broken.id, healthy.id}

    final = await sends_store.get_send(db, healthy.id)
    assert (final.status, final.credits_used, final.credits_held) == (SendStatus.completed, 1, 0)
    # Nothing of the broken send was settled (its recipients still wait, its credits did not move).
    unsettled = await db.fetchval(
        "SELECT count(*) FROM send_recipients WHERE send_id = $1 AND NOT settled", broken.id
    )
    assert unsettled == 2
    assert (await sends_store.get_send(db, broken.id)).credits_used == 0


async def test_migration_0011_marks_outcomes_settled_before_0007_and_only_those(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path, credits=10)
    # Completed before 0007: its credits moved call by call, then 0007 said its recipients were unsettled.
    old = await _send_of(db, stack_settings, who, ["0612000001", "0612000002"])
    await _all_listened(db, old.id)
    await db.execute(
        "UPDATE sends SET status = 'completed', credits_held = 0, credits_used = 2 WHERE id = $1", old.id
    )
    # Since 0007: final outcomes waiting for the next settlement, covered by the credits the send holds.
    recent = await _send_of(db, stack_settings, who, ["0612000003", "0612000004"])
    await _all_listened(db, recent.id)

    await db.execute((PROJECT_ROOT / "sql" / "0011_settled_before_0007.sql").read_text())

    settled = {
        r["send_id"]: r["settled"]
        for r in await db.fetch(
            "SELECT send_id, bool_and(settled) AS settled FROM send_recipients GROUP BY 1"
        )
    }
    assert settled == {old.id: True, recent.id: False}
    assert await sends_store.settle(db) == 2
    assert (await sends_store.get_send(db, recent.id)).credits_used == 2
    assert (await sends_store.get_send(db, old.id)).credits_used == 2


async def test_a_contact_saved_with_its_send_is_kept_with_it_or_not_at_all(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path, credits=1)
    account_id = who.account.id
    sends = Sends(db, stack_settings)
    group = await groups_store.create_group(db, account_id, "Clients")
    known = await contacts_store.create_contact(
        db, account_id, phone="0698765432", allow_international=False, societe="Boulangerie", nom="Dupont"
    )
    # A refused send keeps neither the new contact nor the changes to a known one.
    with pytest.raises(InvalidInput) as err:
        await sends.create_for_contact(
            who.account, NewContact("0611223344", nom="Neuf"), group_id=group.id, message_ref=99, origin="web"
        )
    assert err.value.code == "message_not_found"
    with pytest.raises(InvalidInput):
        await sends.create_for_contact(
            who.account,
            NewContact("06 98 76 54 32", nom="Durand", prenom="Hélène"),
            group_id=group.id,
            message_ref=99,
            origin="web",
        )
    assert await contacts_store.count_contacts(db, account_id) == 1
    assert await contacts_store.get_contact(db, account_id, known.id) == known
    assert (await groups_store.get_group(db, account_id, group.id)).member_count == 0
    # The number is already a contact: it keeps its contact, its names brought up to date (a blank société
    # keeps the stored one), joins the group, and the send calls it as that contact.
    send = await sends.create_for_contact(
        who.account,
        NewContact("06 98 76 54 32", nom="Durand", prenom="Hélène"),
        group_id=group.id,
        message_ref=who.message.ref,
        origin="web",
    )
    saved = await contacts_store.get_contact(db, account_id, known.id)
    assert (saved.societe, saved.nom, saved.prenom) == ("Boulangerie", "Durand", "Hélène")
    assert [g.name for g in saved.groups] == ["Clients"]
    rows = await db.fetch("SELECT e164, contact_id FROM send_recipients WHERE send_id = $1", send.id)
    assert [(r["e164"], r["contact_id"]) for r in rows] == [("+33698765432", known.id)]
    # No credit left: the new contact is not kept either.
    with pytest.raises(InsufficientCredits):
        await sends.create_for_contact(
            who.account, NewContact("0611223344", nom="Neuf"), group_id=None, message_ref=who.message.ref,
            origin="web",
        )  # fmt: skip
    assert await contacts_store.count_contacts(db, account_id) == 1


async def test_a_cut_of_ours_gives_the_attempt_back_and_stages_are_kept_until_the_end(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Issue 16. A call cut on our side (free_retry: the unobserved rule) is not the recipient's: it is
    pending again at once with its attempt given back, even under the manual's default of no retry; a
    cut of the callee's uses the attempt. The last stage written in a batch is kept on the attempt, and
    an ended attempt's stage is never overwritten by a late batch."""
    who = await customer(db, stack_settings, tmp_path, credits=10)
    send = await create_send(
        db,
        stack_settings,
        who.account,
        message_ref=who.message.ref,
        targets=targets(["0612000001", "0612000002"]),
        origin="api",
    )
    ours, callee = await attempts_store.claim(
        db,
        send.id,
        [("", 2)],
        [attempts_store.Slot("t", 1, demo=False)] * 2,
        limit=2,
        node="n",
        app="x",
        now=datetime.now(UTC),
    )
    at = time.time()
    await attempts_store.record_stages(
        db,
        [
            attempts_store.StageRow(ours.attempt_id, "message", at - 1, "v1;stage=message;o=1.000"),
            attempts_store.StageRow(callee.attempt_id, "star_wait", at - 2, "v1;stage=star_wait;o=1.000"),
        ],
    )
    no_retry = RetryPolicy()
    cut = dataclasses.replace(_result(Outcome.not_confirmed), cut="ours", free_retry=True)
    hung_up = dataclasses.replace(_result(Outcome.not_confirmed), cut="callee")
    recorded = await attempts_store.record_results(
        db,
        [
            attempts_store.Result(ours, cut, no_retry, reconciled="cdr"),
            attempts_store.Result(callee, hung_up, no_retry, reconciled="cdr"),
        ],
    )
    assert [r.final for r in recorded] == [False, True]
    # A late batch (written after the results) changes nothing.
    await attempts_store.record_stages(
        db, [attempts_store.StageRow(ours.attempt_id, "ringing", at, "v1;stage=ringing;o=1.000")]
    )
    rows = {
        r["id"]: r
        for r in await db.fetch(
            "SELECT id, state, outcome, attempts, wait_reason, next_attempt_at <= now() AS due "
            "FROM send_recipients WHERE send_id = $1",
            send.id,
        )
    }
    assert dict(rows[ours.recipient_id]) | {"id": None} == {
        "id": None,
        "state": "pending",
        "outcome": None,
        "attempts": 0,
        "wait_reason": "our_cut",
        "due": True,
    }
    assert (rows[callee.recipient_id]["state"], rows[callee.recipient_id]["outcome"]) == (
        "done",
        "not_confirmed",
    )
    assert rows[callee.recipient_id]["attempts"] == 1
    stages = {
        r["id"]: (r["stage"], r["cut"], r["snapshot"])
        for r in await db.fetch("SELECT id, stage, cut, snapshot FROM attempts WHERE send_id = $1", send.id)
    }
    assert stages[ours.attempt_id] == ("message", "ours", "v1;stage=message;o=1.000")
    assert stages[callee.attempt_id] == ("star_wait", "callee", "v1;stage=star_wait;o=1.000")


async def _claim_one(db: Database, send_id: object) -> attempts_store.Claim:
    claims = await attempts_store.claim(
        db,
        send_id,  # type: ignore[arg-type]
        [("", 1)],
        [attempts_store.Slot("t", 1, demo=False)],
        limit=1,
        node="n",
        app="x",
        now=datetime.now(UTC),
    )
    assert len(claims) == 1
    return claims[0]


async def _books(db: Database, send_id: object) -> dict[str, Any]:
    """The send's recipients by state, and the credits it holds (its column and its ledger)."""
    row = await db.fetchrow(
        "SELECT s.credits_held, (SELECT coalesce(sum(held), 0) FROM credit_ledger l WHERE l.send_id = s.id) "
        "AS ledger FROM sends s WHERE s.id = $1",
        send_id,
    )
    assert row is not None
    states = {
        r["state"]: r["n"]
        for r in await db.fetch(
            "SELECT state, count(*) AS n FROM send_recipients WHERE send_id = $1 GROUP BY state", send_id
        )
    }
    return {"held": row["credits_held"], "ledger": row["ledger"], **states}


async def test_a_call_handed_back_after_its_send_was_cancelled_ends_cancelled_and_frees_its_credit(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    """A claimed call the dialer hands back (lease expired, no trunk, engine stopping) once its send was
    cancelled, or while the cancel is in progress: its recipient ends cancelled, not pending in a send
    nobody calls any more, and the credit it held is released. A paused send gets it back pending."""
    who = await customer(db, stack_settings, tmp_path, credits=10)
    send = await _send_of(db, stack_settings, who, ["0612000001", "0612000002", "0612000003"])
    first = await _claim_one(db, send.id)
    await steer(db, send.id, "cancel")  # the two pending ones are cancelled, their credits released
    assert await _books(db, send.id) == {"held": 1, "ledger": 1, "calling": 1, "cancelled": 2}
    await attempts_store.requeue(db, first)
    assert await _books(db, send.id) == {"held": 0, "ledger": 0, "cancelled": 3}
    assert (await balance(db, who.account.id)).available == 10
    assert await db.fetchval("SELECT count(*) FROM attempts WHERE send_id = $1", send.id) == 0

    # The cancel in progress (its send locked) while the call is handed back: the hand-back waits for it.
    other = await _send_of(db, stack_settings, who, ["0612000004", "0612000005"])
    second = await _claim_one(db, other.id)
    async with db.transaction() as conn:
        await conn.execute("SELECT 1 FROM sends WHERE id = $1 FOR UPDATE", other.id)
        handed_back = asyncio.create_task(attempts_store.requeue(db, second))
        await asyncio.sleep(0.3)
        assert not handed_back.done()  # waiting for the cancel
        await sends_store.change_status(conn, other.id, "cancel")
    await handed_back
    assert await _books(db, other.id) == {"held": 0, "ledger": 0, "cancelled": 2}

    # Paused: the recipient goes back pending, its credit still held for when the send resumes.
    paused = await _send_of(db, stack_settings, who, ["0612000006"])
    third = await _claim_one(db, paused.id)
    await steer(db, paused.id, "pause")
    await attempts_store.requeue(db, third)
    assert await _books(db, paused.id) == {"held": 1, "ledger": 1, "pending": 1}
    assert await db.fetchval("SELECT attempts FROM send_recipients WHERE id = $1", third.recipient_id) == 0


async def test_a_result_recorded_while_its_send_is_being_cancelled_ends_its_recipient(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    """A result that would retry its recipient (busy), written while a cancel of its send is in progress:
    it waits for the cancel and ends the recipient (a cancelled send retries nobody), so the settlement
    releases its credit; it never goes back pending in a send nobody calls any more."""
    who = await customer(db, stack_settings, tmp_path, credits=10)
    send = await _send_of(db, stack_settings, who, ["0612000001", "0612000002"])
    claim = await _claim_one(db, send.id)
    policy = RetryPolicy(extra_attempts=2, interval_s=600)
    async with db.transaction() as conn:
        await conn.execute("SELECT 1 FROM sends WHERE id = $1 FOR UPDATE", send.id)
        recorded = asyncio.create_task(
            attempts_store.record_results(db, [attempts_store.Result(claim, _result(Outcome.busy), policy)])
        )
        await asyncio.sleep(0.3)
        await sends_store.change_status(conn, send.id, "cancel")
    assert [r.final for r in await recorded] == [True]
    await sends_store.settle(db)
    assert await _books(db, send.id) == {"held": 0, "ledger": 0, "cancelled": 1, "done": 1}
