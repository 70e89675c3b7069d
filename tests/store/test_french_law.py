"""French law in the real PostgreSQL (issue 18, sql/0016_french_law.sql): stop lists (clear and hashed
numbers meet; account and operator lists), consent, the history of an account's commercial attempts and
refusals across its sends, and send creation that refuses an unlawful commercial send whole."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.errors import InvalidInput
from engine.services.sends import create_send, steer
from engine.settings import Settings
from engine.store import Database, stoplists
from engine.store import commercial as commercial_store
from engine.store import consent as consent_store
from engine.store.accounts import (
    company_name,
    create_account,
    get_account,
    set_company_name,
    set_default_purpose,
)
from engine.store.contacts import create_contact
from engine.store.credits import balance
from engine.store.senders import declare_sender, verify_sender
from engine.store.stoplists import Entry
from tests.integration.dialing import customer, targets

A, B, C = "+33611000001", "+33611000002", "+33611000003"
AUTOMATED_SENDER = "01 62 00 00 01"  # ARCEP's block for automated calls


async def test_existing_and_new_accounts_default_to_information(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path)
    assert who.account.default_purpose == "information"
    key = stack_settings.require("secret_key")
    made = await create_account(
        db, "pro@example.fr", secret_key=key, default_purpose="commercial", company_name="Acme Énergie"
    )
    assert made.account.default_purpose == "commercial"
    assert await company_name(db, made.account.id) == "Acme Énergie"
    await set_company_name(db, who.account.id, "Acme Énergie")
    await set_default_purpose(db, who.account.id, "commercial")
    assert (await get_account(db, who.account.id)).default_purpose == "commercial"


async def test_a_commercial_default_purpose_needs_a_company_name(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    """L221-16: a commercial call says on whose behalf it calls; an account whose http.php and e-mail sends
    are commercial cannot be without the name (failed on the code before: each change was accepted)."""
    who = await customer(db, stack_settings, tmp_path)
    with pytest.raises(InvalidInput) as refused:
        await create_account(
            db,
            "pro@example.fr",
            secret_key=stack_settings.require("secret_key"),
            default_purpose="commercial",
        )
    assert refused.value.code == "company_required"
    assert await db.fetchval("SELECT count(*) FROM accounts") == 1  # nothing created
    with pytest.raises(InvalidInput) as refused:
        await set_default_purpose(db, who.account.id, "commercial")
    assert refused.value.code == "company_required"
    assert (await get_account(db, who.account.id)).default_purpose == "information"
    await set_company_name(db, who.account.id, "Acme Énergie")
    await set_default_purpose(db, who.account.id, "commercial")
    with pytest.raises(InvalidInput) as refused:
        await set_company_name(db, who.account.id, None)  # `vocalcast account company off`
    assert refused.value.code == "company_required"
    assert "commerciaux par défaut" in refused.value.message_fr
    assert await company_name(db, who.account.id) == "Acme Énergie"
    await set_default_purpose(db, who.account.id, "information")
    await set_company_name(db, who.account.id, None)  # allowed once its sends are information
    assert await company_name(db, who.account.id) is None


async def test_a_hashed_entry_and_a_clear_number_are_the_same_number(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    one = await customer(db, stack_settings, tmp_path)
    other = await customer(db, stack_settings, tmp_path, email="autre@example.fr")
    hashed = hashlib.sha256(A.encode()).hexdigest()
    assert await stoplists.add(db, one.account.id, [Entry(hashed)], source="import") == 1
    assert await stoplists.add(db, one.account.id, [Entry.of(A)], source="dtmf") == 0  # already there
    assert await stoplists.stopped(db, one.account.id, [A, B]) == {A}
    assert await stoplists.stopped(db, other.account.id, [A, B]) == set()  # an account's own list
    row = await db.fetchrow("SELECT e164, source FROM account_stop_list")
    assert row is not None
    assert (row["e164"], row["source"]) == (A, "import")  # the clear number learnt, the first source kept
    assert await stoplists.add_operator(db, [Entry.of(B)]) == 1
    assert await stoplists.stopped(db, other.account.id, [A, B, C]) == {B}  # the operator's: every account
    assert await stoplists.remove(db, one.account.id, A)
    assert await stoplists.stopped(db, one.account.id, [A]) == set()


async def test_consent_recorded_withdrawn_and_read(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path)
    await create_contact(db, who.account.id, phone=A, allow_international=False)
    given = datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert not await consent_store.record(db, who.account.id, B, given_at=given, source="web")  # no contact
    assert await consent_store.record(
        db, who.account.id, A, given_at=given, source="formulaire", proof="case"
    )
    consents = await consent_store.consents(db, who.account.id, [A, B])
    assert set(consents) == {A} and consents[A].valid_at(given + timedelta(days=1))
    assert await consent_store.withdraw(db, who.account.id, A, at=given + timedelta(days=2))
    assert not (await consent_store.consents(db, who.account.id, [A]))[A].valid_at(given + timedelta(days=3))
    with pytest.raises(Exception, match="contacts_consent_given"):
        await db.execute("UPDATE contacts SET consent_at = NULL")  # a withdrawal without a consent


async def _commercial_customer(settings: Settings, db: Database, tmp: Path, email: str = "client@example.fr"):  # type: ignore[no-untyped-def]
    who = await customer(db, settings, tmp, email=email)
    await set_company_name(db, who.account.id, "Acme Énergie")  # L221-16: whose call it is
    await declare_sender(db, who.account.id, AUTOMATED_SENDER)
    await verify_sender(db, who.account.id, AUTOMATED_SENDER)
    given = datetime.now(UTC) - timedelta(days=1)
    for number in (A, B):
        await create_contact(db, who.account.id, phone=number, allow_international=False)
        await consent_store.record(db, who.account.id, number, given_at=given, source="formulaire")
    await create_contact(db, who.account.id, phone=C, allow_international=False)  # no consent
    return who


async def _nothing_created(db: Database, who) -> None:  # type: ignore[no-untyped-def]
    assert await db.fetchval("SELECT count(*) FROM sends") == 0
    assert await db.fetchval("SELECT count(*) FROM send_recipients") == 0
    assert (await balance(db, who.account.id)).reserved == 0


async def test_commercial_send_refused_whole_98_then_99(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await _commercial_customer(stack_settings, db, tmp_path)
    base = {"message_ref": who.message.ref, "origin": "api", "purpose": "commercial"}
    # 98: hidden caller ID (no presented number) — even with a recipient without consent (98 comes first).
    with pytest.raises(InvalidInput) as refused:
        await create_send(
            db, stack_settings, who.account, targets=targets(["0611000003"]), sender=None, **base
        )
    assert refused.value.code == "commercial_no_sender"
    await _nothing_created(db, who)
    # 98 too: an account without a company name to announce (L221-16), even for a lawful send otherwise.
    await set_company_name(db, who.account.id, None)
    with pytest.raises(InvalidInput) as refused:
        await create_send(
            db, stack_settings, who.account, targets=targets(["0611000001"]), sender=AUTOMATED_SENDER, **base
        )
    assert refused.value.code == "commercial_no_company" and "entreprise" in refused.value.message_fr
    await _nothing_created(db, who)
    await set_company_name(db, who.account.id, "Acme Énergie")
    # 99: a contact without consent among consented ones.
    with pytest.raises(InvalidInput) as refused:
        await create_send(
            db, stack_settings, who.account, targets=targets(["0611000001", "0611000003"]),
            sender=AUTOMATED_SENDER, **base,
        )  # fmt: skip
    assert refused.value.code == "commercial_no_consent"
    # 99: a pasted number that is no contact at all.
    with pytest.raises(InvalidInput) as refused:
        await create_send(
            db,
            stack_settings,
            who.account,
            targets=targets(["0611000009"]),
            sender=AUTOMATED_SENDER,
            **base,
        )
    assert refused.value.code == "commercial_no_consent"
    # 99: consented but stop-listed.
    await stoplists.add(db, who.account.id, [Entry.of(B)], source="dtmf")
    with pytest.raises(InvalidInput) as refused:
        await create_send(
            db,
            stack_settings,
            who.account,
            targets=targets(["0611000002"]),
            sender=AUTOMATED_SENDER,
            **base,
        )
    assert refused.value.code == "commercial_no_consent"
    await _nothing_created(db, who)
    # Lawful: consented, not stop-listed, a number of the automated-call blocks presented.
    send = await create_send(
        db,
        stack_settings,
        who.account,
        targets=targets(["0611000001"]),
        sender=AUTOMATED_SENDER,
        **base,
    )
    assert send.purpose == "commercial" and send.recipients_total == 1
    # Its calls must name the company until it ends: removing the name meanwhile is refused.
    with pytest.raises(InvalidInput) as refused:
        await set_company_name(db, who.account.id, None)
    assert refused.value.code == "company_required"
    assert "envoi commercial n'est pas terminé" in refused.value.message_fr
    await steer(db, send.id, "cancel")
    await set_company_name(db, who.account.id, None)


async def test_information_send_leaves_stop_listed_numbers_out(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path)
    await stoplists.add(db, who.account.id, [Entry.of(A)], source="dtmf")
    await stoplists.add_operator(db, [Entry.of(B)])
    send = await create_send(
        db,
        stack_settings,
        who.account,
        message_ref=who.message.ref,
        targets=targets(["0611000001", "0611000002", "0611000003"]),
        origin="http",
    )
    assert send.purpose == "information" and send.stop_listed_skipped == 2
    numbers = await db.fetch("SELECT e164 FROM send_recipients WHERE send_id = $1", send.id)
    assert [r["e164"] for r in numbers] == [C]
    assert (await balance(db, who.account.id)).reserved == 1  # no credit held for the skipped numbers
    with pytest.raises(InvalidInput) as refused:
        await create_send(
            db, stack_settings, who.account, message_ref=who.message.ref, targets=targets(["0611000001"]),
            origin="http",
        )  # fmt: skip
    assert refused.value.code == "all_stop_listed"


async def _attempt(db: Database, send_id, number: str, at: datetime, *, sip_code: int | None = None) -> None:  # type: ignore[no-untyped-def]
    recipient = await db.fetchval(
        "SELECT id FROM send_recipients WHERE send_id = $1 AND e164 = $2", send_id, number
    )
    await db.execute(
        "INSERT INTO attempts (id, send_id, recipient_id, attempt_no, node, app, trunk, state, created_at, "
        "ended_at, outcome, sip_code) VALUES (gen_random_uuid(), $1, $2, 1, 'n', 'a', 't', 'ended', $3, $3, "
        "'rejected', $4)",
        send_id,
        recipient,
        at,
        sip_code,
    )


async def test_history_counts_the_accounts_commercial_attempts_only(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await _commercial_customer(stack_settings, db, tmp_path)
    other = await _commercial_customer(stack_settings, db, tmp_path, email="autre@example.fr")
    now = datetime.now(UTC)

    async def send(account, purpose: str):  # type: ignore[no-untyped-def]
        return await create_send(
            db, stack_settings, account, message_ref=(who if account is who.account else other).message.ref,
            targets=targets(["0611000001"]), origin="api", purpose=purpose, sender=AUTOMATED_SENDER,  # type: ignore[arg-type]
        )  # fmt: skip

    first, second = await send(who.account, "commercial"), await send(who.account, "commercial")
    info = await send(who.account, "information")
    elsewhere = await send(other.account, "commercial")
    await _attempt(db, first.id, A, now - timedelta(days=3))
    await _attempt(db, second.id, A, now - timedelta(days=1), sip_code=603)
    await _attempt(db, info.id, A, now - timedelta(hours=1))  # information: the cap does not count it
    await _attempt(db, elsewhere.id, A, now - timedelta(hours=2))  # another advertiser
    await _attempt(db, first.id, A, now - timedelta(days=70))  # older than any rule looks
    history = (await commercial_store.histories(db, who.account.id, [A, B], now))[A]
    assert sorted(history.attempts) == [now - timedelta(days=3), now - timedelta(days=1)]
    assert list(history.refusals) == [now - timedelta(days=1)]
    assert B not in await commercial_store.histories(db, who.account.id, [A, B], now)


async def test_hold_postpones_or_leaves_out_pending_recipients_only(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await _commercial_customer(stack_settings, db, tmp_path)
    send = await create_send(
        db, stack_settings, who.account, message_ref=who.message.ref,
        targets=targets(["0611000001", "0611000002"]), origin="api", purpose="commercial",
        sender=AUTOMATED_SENDER,
    )  # fmt: skip
    now = datetime.now(UTC)
    due = await commercial_store.due(db, send.id, now, limit=10)
    assert [d.e164 for d in due] == [A, B]
    later = now + timedelta(hours=1)
    await commercial_store.hold(
        db,
        [commercial_store.Wait(due[0].recipient_id, "outside_hours", later),
         commercial_store.Wait(due[1].recipient_id, "stop_listed", None)],
    )  # fmt: skip
    rows = {
        r["e164"]: r
        for r in await db.fetch("SELECT e164, state, wait_reason, next_attempt_at FROM send_recipients")
    }
    assert (rows[A]["state"], rows[A]["wait_reason"], rows[A]["next_attempt_at"]) == (
        "pending",
        "outside_hours",
        later,
    )
    assert (rows[B]["state"], rows[B]["wait_reason"]) == ("cancelled", "stop_listed")
    assert await commercial_store.due(db, send.id, now, limit=10) == []


async def test_retries_of_a_commercial_send_go_through_the_legal_row(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    """A busy line on Friday 19:55 (Paris) is tried again on Monday 10:00, not at 20:00; a 603 silences
    the number for 60 days; the same busy line in an information send is tried again at 20:00."""
    from zoneinfo import ZoneInfo

    from engine.domain.outcomes import Outcome
    from engine.store import attempts as attempts_store
    from tests.store.test_sends import _result

    paris = ZoneInfo("Europe/Paris")
    who = await _commercial_customer(stack_settings, db, tmp_path)
    options = {"message_ref": who.message.ref, "origin": "api", "sender": AUTOMATED_SENDER, "retries": 3}
    commercial = await create_send(
        db, stack_settings, who.account, targets=targets(["0611000001", "0611000002"]),
        purpose="commercial", retry_interval_s=600, **options,  # type: ignore[arg-type]
    )  # fmt: skip
    information = await create_send(
        db, stack_settings, who.account, targets=targets(["0611000003"]), purpose="information",
        retry_interval_s=600, **options,  # type: ignore[arg-type]
    )  # fmt: skip
    claims = []
    for send in (commercial, information):
        claims += await attempts_store.claim(
            db, send.id, [("", 2)], [attempts_store.Slot("t", 1, demo=False)] * 2, limit=2, node="n", app="x",
            now=datetime.now(UTC),
        )  # fmt: skip
    by_number = {c.e164: c for c in claims}
    policy = commercial.retry
    friday_evening = datetime(2026, 12, 11, 19, 55, tzinfo=paris)
    await attempts_store.record_results(
        db,
        [
            attempts_store.Result(by_number[A], _result(Outcome.busy), policy),
            attempts_store.Result(by_number[B], _result(Outcome.busy, sip_code=603), policy),
            attempts_store.Result(by_number[C], _result(Outcome.busy), policy),
        ],
        now=friday_evening.timestamp(),
    )
    rows = {
        r["e164"]: r
        for r in await db.fetch("SELECT e164, state, next_attempt_at FROM send_recipients ORDER BY e164")
    }
    assert rows[A]["state"] == "pending"
    assert rows[A]["next_attempt_at"] == datetime(2026, 12, 14, 10, tzinfo=paris)  # Monday 10:00
    assert rows[B]["state"] == "pending"
    assert rows[B]["next_attempt_at"] >= datetime.now(UTC) + timedelta(days=60)  # 60 days after the 603
    assert rows[C]["next_attempt_at"] == datetime(2026, 12, 11, 20, 0, tzinfo=paris)  # no legal row


async def test_only_numbers_of_arceps_ranges_are_verified_or_presented(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    """ARCEP 2022-1583 holds for every automated call: a geographic number is not verified; one verified
    before the rule (written straight in the table here) is refused when given (94) and not presented
    as the account's default (the call is hidden)."""
    import dataclasses

    from engine.store.accounts import set_defaults

    who = await customer(db, stack_settings, tmp_path)
    geographic = await declare_sender(db, who.account.id, "01 72 36 01 70")
    with pytest.raises(InvalidInput) as refused:
        await verify_sender(db, who.account.id, "0172360170")
    assert refused.value.code == "sender_not_automated" and "Arcep" in refused.value.message_fr
    await db.execute(
        "UPDATE sender_numbers SET status = 'verified', verified_at = now() WHERE id = $1", geographic.id
    )
    options = {"message_ref": who.message.ref, "targets": targets(["0611000001"]), "origin": "http"}
    with pytest.raises(InvalidInput) as refused:
        await create_send(db, stack_settings, who.account, sender="0172360170", **options)  # type: ignore[arg-type]
    assert refused.value.code == "sender_not_verified" and "tranches réservées" in refused.value.message_fr
    await set_defaults(
        db, who.account.id, dataclasses.replace(who.account.defaults, sender_number_id=geographic.id)
    )
    send = await create_send(db, stack_settings, await get_account(db, who.account.id), **options)  # type: ignore[arg-type]
    assert send.sender_e164 is None  # hidden, never the geographic number


async def test_a_number_stopped_mid_send_is_left_out_of_the_sends_under_way(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Opt-out during a send (or an import, hashed): the account's sends under way leave the number out
    (cancelled, "liste d'opposition"); another account's send is untouched; the operator's list stops
    it everywhere; a number already called keeps its outcome."""
    from engine.store import sends as sends_store

    who = await customer(db, stack_settings, tmp_path)
    other = await customer(db, stack_settings, tmp_path, email="autre@example.fr")
    numbers = targets(["0611000001", "0611000002", "0611000003"])
    mine = await create_send(
        db, stack_settings, who.account, message_ref=who.message.ref, targets=numbers, origin="api"
    )
    theirs = await create_send(
        db, stack_settings, other.account, message_ref=other.message.ref, targets=numbers, origin="api"
    )
    await db.execute(
        "UPDATE send_recipients SET state = 'done', outcome = 'listened' WHERE send_id = $1 AND e164 = $2",
        mine.id,
        C,
    )
    await stoplists.add(
        db, who.account.id, [Entry(hashlib.sha256(A.encode()).hexdigest()), Entry.of(C)], source="import"
    )

    async def states(send_id) -> dict[str, tuple[str, str | None]]:  # type: ignore[no-untyped-def]
        rows = await db.fetch(
            "SELECT e164, state, wait_reason FROM send_recipients WHERE send_id = $1", send_id
        )
        return {r["e164"]: (r["state"], r["wait_reason"]) for r in rows}

    assert await states(mine.id) == {
        A: ("cancelled", "stop_listed"),
        B: ("pending", None),
        C: ("done", None),  # already called: its outcome stands
    }
    assert {s for s, _ in (await states(theirs.id)).values()} == {"pending"}
    await stoplists.add_operator(db, [Entry.of(B)])
    assert (await states(theirs.id))[B] == ("cancelled", "stop_listed")
    assert (await states(mine.id))[B] == ("cancelled", "stop_listed")
    # The called person's own objection (the opt-out key in another send's call) reads "opposition".
    fresh = await create_send(
        db, stack_settings, other.account, message_ref=other.message.ref, targets=targets(["0611000003"]),
        origin="api",
    )  # fmt: skip
    await stoplists.add(db, other.account.id, [Entry.of(C)], source="dtmf")
    assert (await states(fresh.id))[C] == ("cancelled", "refused")
    # Nothing left to call: the send completes and gives back what the left-out numbers held.
    await sends_store.complete_finished(db)
    assert (await sends_store.get_send(db, mine.id)).status.value == "completed"
    assert (await balance(db, who.account.id)).reserved == 0


async def test_two_claims_at_once_cannot_both_take_a_numbers_last_allowed_attempt(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Two of the account's commercial sends to one number that has 3 attempts in 30 days, claimed at the
    same moment (two engines): the account's lock lets one claim it, the other sees its attempt."""
    import asyncio
    import contextlib
    import functools

    from engine.services.dialing.lawgate import claim_lawfully
    from engine.store import attempts as attempts_store

    who = await _commercial_customer(stack_settings, db, tmp_path)
    options = {"message_ref": who.message.ref, "origin": "api", "sender": AUTOMATED_SENDER}
    sends = [
        await create_send(
            db, stack_settings, who.account, targets=targets(["0611000001"]), purpose="commercial", **options
        )
        for _ in range(3)
    ]
    # A Tuesday at 11:00 in Paris: within the calling hours.
    now = datetime(2026, 12, 15, 10, tzinfo=UTC)
    for earlier in (1, 2, 3):
        await _attempt(db, sends[0].id, A, now - timedelta(days=earlier))
    await db.execute(
        "UPDATE send_recipients SET state = 'done', outcome = 'rejected' WHERE send_id = $1", sends[0].id
    )
    # Each claim waits (a moment at most) for the other to have passed its gate too: without the lock
    # both would read 3 attempts and claim; with it, the second gate waits for the first claim's commit.
    gated = 0
    both_gated = asyncio.Event()

    async def one(send_id) -> int:  # type: ignore[no-untyped-def]
        take = functools.partial(
            attempts_store.claim,
            send_id=send_id,
            classes=[("", 1)],
            slots=[attempts_store.Slot("t", 1, demo=False)],
            limit=1,
            node="n",
            app="x",
            now=now,
        )

        async def take_with_the_other(conn, *, only):  # type: ignore[no-untyped-def]
            nonlocal gated
            gated += 1
            if gated == 2:
                both_gated.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(both_gated.wait(), 1.0)
            return await take(conn, only=only)

        return len(await claim_lawfully(db, send_id, who.account.id, now, limit=5, claim=take_with_the_other))

    claimed = await asyncio.gather(one(sends[1].id), one(sends[2].id))
    assert sorted(claimed) == [0, 1]  # the 4th attempt once, never a 5th
    held = await db.fetchval("SELECT wait_reason FROM send_recipients WHERE state = 'pending'")
    assert held == "cap_reached"


async def test_a_send_presenting_a_number_no_trunk_lists_says_it_waits_for_a_line(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Issue 18: a send presenting a number goes only through the trunks listing it. When none may carry
    its recipients they are said to wait ("aucune ligne ne peut appeler ce numéro"), then end as
    congestion after the trunk wait — while a hidden send to the same numbers, which any trunk carries,
    is not touched (each presented number is judged on its own trunks)."""
    from engine.store import sends as sends_store

    who = await customer(db, stack_settings, tmp_path)
    presenting = await create_send(
        db, stack_settings, who.account, message_ref=who.message.ref, targets=targets([A]), origin="api"
    )
    hidden = await create_send(
        db, stack_settings, who.account, message_ref=who.message.ref, targets=targets([A]), origin="api"
    )
    await db.execute("UPDATE sends SET sender_e164 = '+33162000001' WHERE id = $1", presenting.id)
    assert sorted(await sends_store.presented_numbers(db), key=str) == sorted([None, "+33162000001"], key=str)

    async def reason(send_id) -> tuple[str, str | None]:  # type: ignore[no-untyped-def]
        row = await db.fetchrow("SELECT state, wait_reason FROM send_recipients WHERE send_id = $1", send_id)
        return row["state"], row["wait_reason"]

    # No trunk lists +33162000001 (routable None for it); every number is carried for hidden calls ('').
    assert await sends_store.mark_waiting(db, None, 3600, presented="+33162000001") == (1, 0)
    assert await sends_store.mark_waiting(db, "", 3600, presented=None) == (0, 0)
    assert await reason(presenting.id) == ("pending", "no_route")
    assert await reason(hidden.id) == ("pending", None)
    # Judged again for the hidden send, the presenting send's wait is not cleared (nor restarted).
    await sends_store.mark_waiting(db, "", 3600, presented=None)
    assert await reason(presenting.id) == ("pending", "no_route")
    # Past the trunk wait: congestion, no attempt used.
    assert await sends_store.mark_waiting(db, None, 0, presented="+33162000001") == (0, 1)
    assert await reason(presenting.id) == ("done", "no_route")  # the report: not called, no line
    assert await db.fetchval("SELECT outcome FROM send_recipients WHERE send_id = $1", presenting.id) == (
        "congestion"
    )
    assert await reason(hidden.id) == ("pending", None)
