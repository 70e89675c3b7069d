"""Webhooks in the real PostgreSQL: the triggers of sql/0017 write the outbox in the transaction of the
outcome they report (a rolled-back outcome leaves no event), with the object's state and an increasing
sequence; the account's events and a send's own endpoint decide who gets what; the secret is shown once."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.domain.callevents import CallResult, EndReason
from engine.domain.outcomes import Outcome
from engine.domain.retries import RetryPolicy
from engine.domain.sends import SendStatus
from engine.domain.webhooks import Event
from engine.services.sends import create_send, steer
from engine.services.webhooks import Webhooks
from engine.settings import Settings
from engine.store import Database
from engine.store import attempts as attempts_store
from engine.store import sends as sends_store
from engine.store import webhooks as store
from engine.web.api_sends import recipient_json, send_json
from engine.web.webhook_payloads import render
from tests.integration.dialing import Customer, customer, targets

NUMBERS = ["0612000001", "0612000002"]


def _listened() -> CallResult:
    now = time.time()
    return CallResult(
        outcome=Outcome.listened,
        end_reason=EndReason.message_completed,
        cause=16,
        sip_code=200,
        dialstatus="ANSWER",
        may_fail_over=False,
        originated_at=now - 5,
        ringing_at=now - 4,
        answered_at=now - 3,
        ended_at=now,
        message_started_at=now - 2,
        greeting_plays=0,
        amd_status=None,
        amd_cause=None,
        transfer_outcome=None,
        transfer_started_at=None,
        transfer_answered_at=None,
        transfer_ended_at=None,
    )


async def _events(db: Database, **where: Any) -> list[dict[str, Any]]:
    rows = await db.fetch("SELECT * FROM webhook_events ORDER BY sequence")
    out = [dict(r) for r in rows]
    return [r for r in out if all(r[k] == v for k, v in where.items())]


async def _send_with_claims(db: Database, settings: Settings, who: Customer):  # type: ignore[no-untyped-def]
    send = await create_send(
        db, settings, who.account, message_ref=who.message.ref, targets=targets(NUMBERS), origin="api"
    )
    claims = await attempts_store.claim(
        db,
        send.id,
        [("", 2)],
        [attempts_store.Slot("t", 1, demo=False)] * 2,
        limit=2,
        node="n",
        app="x",
        now=datetime.now(UTC),
    )
    return send, claims


async def test_no_webhook_no_event(stack_settings: Settings, db: Database, tmp_path: Path) -> None:
    who = await customer(db, stack_settings, tmp_path)
    _send, claims = await _send_with_claims(db, stack_settings, who)
    policy = RetryPolicy(extra_attempts=0, interval_s=60)
    await attempts_store.record_results(db, [attempts_store.Result(c, _listened(), policy) for c in claims])
    assert await _events(db) == []


async def test_outcome_rolled_back_leaves_no_event_committed_has_one(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path)
    hooks = Webhooks(db, stack_settings)
    _, secret = await hooks.configure(who.account.id, url="https://hooks.example.fr/in")
    assert secret is not None and secret.startswith("whsec_")
    send, claims = await _send_with_claims(db, stack_settings, who)
    started = await _events(db, type="send.started")
    assert len(started) == 1  # the immediate send was created running (deferred trigger: at commit)
    assert json.loads(started[0]["object"])["progress"]["total"] == 2  # recipients seen at commit
    policy = RetryPolicy(extra_attempts=0, interval_s=60)

    # The dialer's own statement, in a transaction rolled back: neither the outcome nor its events stay.
    async with db.connection() as conn:
        tx = conn.transaction()
        await tx.start()
        await attempts_store.record_results(conn, [attempts_store.Result(claims[0], _listened(), policy)])
        inside = await conn.fetch("SELECT type FROM webhook_events WHERE send_id = $1", send.id)
        assert sorted(r["type"] for r in inside) == ["attempt.final", "recipient.final", "send.started"]
        await tx.rollback()
    assert [e["type"] for e in await _events(db)] == ["send.started"]
    assert (await db.fetchval("SELECT state FROM attempts WHERE id = $1", claims[0].attempt_id)) != "ended"

    # Committed: the attempt's and the recipient's events, with their state, in sequence order.
    await attempts_store.record_results(db, [attempts_store.Result(claims[0], _listened(), policy)])
    events = await _events(db)
    assert [e["type"] for e in events] == ["send.started", "attempt.final", "recipient.final"]
    sequences = [e["sequence"] for e in events]
    assert sequences == sorted(sequences) and len(set(sequences)) == 3
    attempt = json.loads(events[1]["object"])
    assert attempt["id"] == str(claims[0].attempt_id) and attempt["outcome"] == "listened"
    assert attempt["number"] == claims[0].e164
    recipient = json.loads(events[2]["object"])
    assert recipient["state"] == "done" and recipient["outcome"] == "listened"
    assert [a["id"] for a in recipient["attempts_detail"]] == [str(claims[0].attempt_id)]
    assert {e["url"] for e in events} == {"https://hooks.example.fr/in"}
    assert all(e["status"] == "pending" for e in events)


async def test_rendered_objects_have_the_api_fields(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path)
    await Webhooks(db, stack_settings).configure(who.account.id, url="https://hooks.example.fr/in")
    send, claims = await _send_with_claims(db, stack_settings, who)
    policy = RetryPolicy(extra_attempts=0, interval_s=60)
    await attempts_store.record_results(db, [attempts_store.Result(c, _listened(), policy) for c in claims])
    await sends_store.complete_finished(db)
    events = await _events(db)
    assert [e["type"] for e in events].count("send.completed") == 1

    def rendered(row: dict[str, Any]) -> dict[str, Any]:
        return render(
            Event(
                row["id"],
                row["type"],
                row["send_id"],
                row["sequence"],
                row["occurred_at"],
                json.loads(row["object"]),
            )
        )

    # The same fields, and the same values, as the API's functions give for the stored objects now.
    done = rendered(next(e for e in events if e["type"] == "send.completed"))
    stored = await sends_store.get_send(db, send.id)
    api_send = send_json(stored, {who.message.id: who.message.ref})
    assert {k: done["data"][k] for k in api_send} == api_send
    assert done["data"]["status"] == "completed"
    assert done["data"]["progress"]["done"] == 2 and done["data"]["progress"]["outcomes"] == {"listened": 2}
    assert done["sequence"] == max(e["sequence"] for e in events)
    assert done["created_at"].endswith("+00:00")

    api_rows = {r["id"]: recipient_json(r) for r in await sends_store.recipients(db, send.id)}
    for row in (e for e in events if e["type"] == "recipient.final"):
        body = rendered(row)
        expected = api_rows[body["data"]["id"]]
        assert body["data"].keys() == expected.keys()
        assert body["data"]["outcome"] == expected["outcome"] == "listened"
        assert body["data"]["calls"] == expected["calls"]


async def test_send_override_and_event_choice(stack_settings: Settings, db: Database, tmp_path: Path) -> None:
    who = await customer(db, stack_settings, tmp_path)
    hooks = Webhooks(db, stack_settings)
    await hooks.configure(who.account.id, url="https://a.example.fr/", events=["recipient.final"])
    send, claims = await _send_with_claims(db, stack_settings, who)
    assert await _events(db) == []  # send.started not wanted
    await hooks.set_for_send(who.account.id, send.id, url="https://b.example.fr/", events=["attempt.final"])
    policy = RetryPolicy(extra_attempts=0, interval_s=60)
    await attempts_store.record_results(db, [attempts_store.Result(claims[0], _listened(), policy)])
    events = await _events(db)
    assert [(e["type"], e["url"], e["target"]) for e in events] == [
        ("attempt.final", "https://b.example.fr/", "send")
    ]
    await hooks.clear_for_send(who.account.id, send.id)
    await attempts_store.record_results(db, [attempts_store.Result(claims[1], _listened(), policy)])
    assert [(e["type"], e["url"]) for e in await _events(db)][1:] == [
        ("recipient.final", "https://a.example.fr/")
    ]


async def test_cancel_is_send_completed_and_secret_shown_once(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path)
    hooks = Webhooks(db, stack_settings)
    _, first = await hooks.configure(who.account.id, url="https://a.example.fr/")
    _, again = await hooks.configure(who.account.id, url="https://b.example.fr/")
    assert first is not None and again is None
    rotated = await hooks.rotate(who.account.id)
    assert rotated != first
    assert await db.fetchval("SELECT secret FROM webhook_settings") == rotated
    send = await create_send(
        db, stack_settings, who.account, message_ref=who.message.ref, targets=targets(NUMBERS), origin="api"
    )
    await steer(db, send.id, "cancel")
    assert (await sends_store.get_send(db, send.id)).status is SendStatus.cancelled
    events = await _events(db)
    assert [e["type"] for e in events] == ["send.started", "send.completed"]
    assert json.loads(events[1]["object"])["status"] == "cancelled"


async def test_claim_leases_record_and_replay(stack_settings: Settings, db: Database, tmp_path: Path) -> None:
    who = await customer(db, stack_settings, tmp_path)
    hooks = Webhooks(db, stack_settings)
    _, secret = await hooks.configure(who.account.id, url="https://a.example.fr/")
    queued = await hooks.test(who.account.id)
    due = await store.claim_due(db, limit=10, lease_s=60)
    assert [d.id for d in due] == [queued.id] and due[0].secret == secret
    assert await store.claim_due(db, limit=10, lease_s=60) == []  # leased: another engine skips it
    await store.record_try(
        db, queued.id, status=503, error=None, latency_ms=12, outcome="pending", retry_in_s=0
    )
    await store.record_try(db, queued.id, status=200, error=None, latency_ms=7, outcome="delivered")
    found, tries = await hooks.delivery(who.account.id, queued.id)
    assert found.status == "delivered" and found.tries == 2 and found.last_latency_ms == 7
    assert [t.status for t in tries] == [503, 200]
    again = await hooks.replay(who.account.id, queued.id)
    assert again.id == queued.id and again.status == "pending"


async def test_a_number_added_to_the_stop_list_is_an_optout_event(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    """The stop list comes with issue 18's migration: its shape is created here when it is not there yet
    (in a transaction rolled back), hooked by webhook_watch_optouts() as a later migration would."""
    who = await customer(db, stack_settings, tmp_path)
    await Webhooks(db, stack_settings).configure(
        who.account.id, url="https://a.example.fr/", events=["optout.added"]
    )
    async with db.connection() as conn:
        tx = conn.transaction()
        await tx.start()
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS account_stop_list (account_id uuid NOT NULL, "
            "number_hash text NOT NULL, e164 text, added_at timestamptz NOT NULL DEFAULT now(), "
            "source text NOT NULL, "
            "PRIMARY KEY (account_id, number_hash))"
        )
        assert await conn.fetchval("SELECT webhook_watch_optouts()") is True
        await conn.execute(
            "INSERT INTO account_stop_list (account_id, number_hash, e164, source) "
            "VALUES ($1, $2, $3, 'dtmf')",
            who.account.id,
            "a" * 64,
            "+33612000001",
        )
        rows = await conn.fetch("SELECT type, send_id, object FROM webhook_events")
        await tx.rollback()
    assert [(r["type"], r["send_id"]) for r in rows] == [("optout.added", None)]
    data = render(
        Event(uuid.uuid4(), "optout.added", None, 1, datetime.now(UTC), json.loads(rows[0]["object"]))
    )
    assert data["data"]["number"] == "+33612000001" and data["data"]["source"] == "dtmf"
    assert data["data"]["number_hash"] == "a" * 64 and data["send_id"] is None


async def test_the_delivery_log_forgets_finished_events_after_the_setting(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path)
    hooks = Webhooks(db, stack_settings)
    await hooks.configure(who.account.id, url="https://a.example.fr/")
    old_done, old_pending, recent_done = [await hooks.test(who.account.id) for _ in range(3)]
    for event in (old_done, recent_done):
        await store.record_try(db, event.id, status=200, error=None, latency_ms=5, outcome="delivered")
    await db.execute(
        "UPDATE webhook_events SET occurred_at = now() - interval '31 days' WHERE id = ANY($1::uuid[])",
        [old_done.id, old_pending.id],
    )
    assert await store.purge(db, older_than_days=30) == 1
    left = {r["id"] for r in await db.fetch("SELECT id FROM webhook_events")}
    assert left == {old_pending.id, recent_done.id}  # a pending event is never forgotten
    assert await db.fetchval("SELECT count(*) FROM webhook_deliveries WHERE event_id = $1", old_done.id) == 0
