"""French law on the real stack (issue 18): a commercial send keeps to the calling hours of article
D223-9 with the dialer's clock moved to a Friday noon (VOCALCAST_CLOCK_OFFSET_S / Dialer.clock), and its
refusals through http.php and the API create nothing; its call opens with the preamble, whose opt-out
key stops the number for the account's later sends."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.app import Engine
from engine.domain.preamble import opt_out_text, preamble_text
from engine.domain.sends import SendStatus
from engine.domain.stoplists import number_hash
from engine.domain.trunks import Trunk
from engine.errors import InvalidInput
from engine.media.spoken import spoken
from engine.services.dialing import contexts as contexts_module
from engine.services.sends import create_send
from engine.settings import Settings
from engine.store import Database
from engine.store import consent as consent_store
from engine.store import sends as sends_store
from engine.store.accounts import set_company_name
from engine.store.contacts import create_contact
from engine.store.senders import declare_sender, verify_sender
from engine.web.api_sends import recipient_json
from lab import tones
from lab.dtmfpcap import write_rfc2833_pcap
from lab.rtpcapture import RtpCapture, samples_to
from lab.sipp import SippProcess
from tests.integration.conftest import add_trunk, wait_for
from tests.integration.dialing import customer, invites_per_number, targets
from tests.integration.test_dialer import callees, fast
from tests.support import audiomatch

pytestmark = pytest.mark.integration

PARIS = ZoneInfo("Europe/Paris")
SIPP_DIR = Path(__file__).parent.parent / "sipp"
SENDER = "01 62 00 00 01"  # in ARCEP's blocks for automated calls
SENDER_E164 = "+33162000001"  # the trunks' carriers accept it as a presented number
# A Friday that is no public holiday.
FRIDAY = datetime(2026, 12, 11, tzinfo=PARIS)


def paris(hour: int, minute: int, second: int = 0) -> datetime:
    return FRIDAY.replace(hour=hour, minute=minute, second=second)


@pytest.fixture
def short_preamble(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests of the calling hours: every call still opens with a preamble, a short one (the real one
    lasts about 10 s, which these tests' calls would spend listening)."""
    monkeypatch.setattr(contexts_module, "preamble_text", lambda _company, _key: "Appel commercial.")


@pytest.mark.usefixtures("short_preamble")
async def test_commercial_send_stops_at_13_and_resumes_at_14(
    stack_settings: Settings,
    db: Database,
    sipp_ports: Any,
    tmp_path: Path,
) -> None:
    # The test moves the dialer's clock by an hour: a recipient waiting for the (new) trunk's first
    # qualify must not see that hour as a trunk wait (fast() ends such waits after 10 s as congestion).
    settings = dataclasses.replace(fast(stack_settings), max_channels=1, trunk_wait_max_s=86400.0)
    sipp = await callees(settings, sipp_ports, tmp_path, max_channels=1, max_cps=5, presented=(SENDER_E164,))
    who = await customer(db, settings, tmp_path, credits=100, seconds=1.0)
    await set_company_name(db, who.account.id, "Acme Énergie")
    await declare_sender(db, who.account.id, SENDER)
    await verify_sender(db, who.account.id, SENDER)
    numbers = [f"061100040{i}" for i in range(5)]  # last digits 0-4: they answer and listen
    for raw in numbers:
        contact = await create_contact(db, who.account.id, phone=raw, allow_international=False)
        await consent_store.record(
            db, who.account.id, contact.e164, given_at=datetime(2026, 1, 5, tzinfo=UTC), source="formulaire"
        )
    placed: list[datetime] = []  # the dialer's clock at each originate

    async with sipp, Engine(settings) as engine:
        clock = engine.dialer.clock

        def stand_at(at: datetime) -> None:
            clock.offset_s = at.timestamp() - time.time()

        engine.dialer.on_originate = lambda _claim: placed.append(clock.now())
        stand_at(paris(12, 59, 30))
        send = await create_send(
            db,
            settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets(numbers),
            origin="api",
            purpose="commercial",
            sender=SENDER,
        )
        engine.dialer.wake()
        await wait_for(lambda: len(placed) >= 1, timeout_s=20, what="a first call before 13:00")
        # Two seconds before the lunch break: the call in progress ends, nothing new starts after 13:00.
        stand_at(paris(12, 59, 58))

        async def all_held() -> bool:
            rows = await db.fetch(
                "SELECT state, wait_reason, next_attempt_at FROM send_recipients WHERE send_id = $1 "
                "AND state <> 'done'",
                send.id,
            )
            return bool(rows) and all(
                r["state"] == "pending"
                and r["wait_reason"] == "outside_hours"
                and r["next_attempt_at"] == paris(14, 0)
                for r in rows
            )

        await wait_for(all_held, timeout_s=20, what="the recipients left to wait for 14:00")
        # The report says why and until when (the API's recipients, as the customer reads them).
        report = [recipient_json(r) for r in await sends_store.recipients(db, send.id)]
        held = [r for r in report if r["state"] == "pending"]
        assert held and all(r["waiting"] == "outside_hours" for r in held)
        assert {r["note"] for r in held} == {
            "En attente : hors plage horaire, appel possible à partir de 11/12 à 14h00."
        }
        assert {r["next_attempt_at"] for r in held} == {"2026-12-11T13:00:00+00:00"}
        before_break = len(placed)
        # In the break: nothing is placed (the dialer runs its cycles with a free channel meanwhile).
        stand_at(paris(13, 30))
        engine.dialer.wake()
        await asyncio.sleep(1.0)
        assert len(placed) == before_break
        assert (await sends_store.get_send(db, send.id)).status is SendStatus.running
        # A second before 14:00: the calls resume at 14:00:00.
        stand_at(paris(13, 59, 59))

        async def completed() -> bool:
            return (await sends_store.get_send(db, send.id)).status is SendStatus.completed

        await wait_for(completed, timeout_s=60, what="the send to complete after 14:00")

    morning = [at for at in placed if at < paris(13, 0)]
    afternoon = [at for at in placed if at >= paris(14, 0)]
    assert morning and afternoon, placed
    assert len(morning) + len(afternoon) == len(placed) == len(numbers)  # none in 13:00-14:00
    invites = invites_per_number(sipp)
    assert all(invites[n] == 1 for n in numbers), invites


@pytest.mark.usefixtures("short_preamble")
async def test_commercial_send_on_a_public_holiday_waits_for_the_next_working_day(
    stack_settings: Settings,
    db: Database,
    sipp_ports: Any,
    tmp_path: Path,
) -> None:
    # The clock moves by days: no trunk wait may end meanwhile (see the lunch-break test).
    settings = dataclasses.replace(fast(stack_settings), trunk_wait_max_s=86400.0 * 7)
    sipp = await callees(settings, sipp_ports, tmp_path, max_channels=2, max_cps=5, presented=(SENDER_E164,))
    who = await customer(db, settings, tmp_path, credits=100, seconds=1.0)
    await set_company_name(db, who.account.id, "Acme Énergie")
    await declare_sender(db, who.account.id, SENDER)
    await verify_sender(db, who.account.id, SENDER)
    numbers = ["0611000500", "0611000501"]
    for raw in numbers:
        contact = await create_contact(db, who.account.id, phone=raw, allow_international=False)
        await consent_store.record(
            db, who.account.id, contact.e164, given_at=datetime(2026, 1, 5, tzinfo=UTC), source="formulaire"
        )
    christmas = datetime(2026, 12, 25, 11, tzinfo=PARIS)  # a Friday, within the hours of a working day
    monday = datetime(2026, 12, 28, 10, tzinfo=PARIS)  # Saturday 26 (Alsace-Moselle) and Sunday pass
    placed: list[datetime] = []

    async with sipp, Engine(settings) as engine:
        clock = engine.dialer.clock
        engine.dialer.on_originate = lambda _claim: placed.append(clock.now())
        clock.offset_s = christmas.timestamp() - time.time()
        send = await create_send(
            db,
            settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets(numbers),
            origin="api",
            purpose="commercial",
            sender=SENDER,
        )
        engine.dialer.wake()

        async def held() -> bool:
            rows = await db.fetch(
                "SELECT wait_reason, next_attempt_at FROM send_recipients WHERE send_id = $1", send.id
            )
            return all(r["wait_reason"] == "holiday" and r["next_attempt_at"] == monday for r in rows)

        await wait_for(held, timeout_s=20, what="the recipients held for the holiday")
        assert placed == []
        clock.offset_s = (monday - timedelta(seconds=1)).timestamp() - time.time()
        engine.dialer.wake()

        async def completed() -> bool:
            return (await sends_store.get_send(db, send.id)).status is SendStatus.completed

        await wait_for(completed, timeout_s=60, what="the send to complete on Monday")

    assert len(placed) == 2 and all(at >= monday for at in placed), placed
    assert invites_per_number(sipp) == dict.fromkeys(numbers, 1)


async def test_opt_out_key_in_the_preamble_stops_the_number_for_later_sends(
    stack_settings: Settings,
    db: Database,
    sipp_ports: Any,
    tmp_path: Path,
) -> None:
    """A SIPp callee presses 0 during the preamble (800 ms after answering): it hears the preamble's
    start then the thanks, never the message; the number goes on the account's stop list (dtmf), is not
    called again, and the account's later sends leave it out."""
    settings = fast(stack_settings)
    sip_port, media_port = sipp_ports()
    listed = Trunk(
        name="optout", host="127.0.0.1", port=sip_port, number_format="national", presented=(SENDER_E164,)
    )
    await add_trunk(settings, listed)
    # The preferred trunk, whose carrier does not accept SENDER: no call of these sends may use it (were
    # one to, its INVITE to a closed port would end as a trunk failure, recorded on the attempt).
    await add_trunk(settings, Trunk(name="unlisted", host="127.0.0.1", port=9, priority=1, qualify=False))
    pcap = tmp_path / "zero.pcap"
    write_rfc2833_pcap(pcap, "0")
    sipp = SippProcess(
        SIPP_DIR / "callee_answer_dtmf.xml",
        local_port=sip_port,
        media_port=media_port,
        workdir=tmp_path,
        keys={"pcap": str(pcap)},
        recv_timeout_ms=20000,
        extra_args=["-aa"],
    )
    who = await customer(db, settings, tmp_path, credits=100, seconds=2.0)
    await set_company_name(db, who.account.id, "Acme Énergie")
    await declare_sender(db, who.account.id, SENDER)
    await verify_sender(db, who.account.id, SENDER)
    stopper, other = "0611000600", "0611000601"
    contact = await create_contact(db, who.account.id, phone=stopper, allow_international=False)
    await consent_store.record(
        db, who.account.id, contact.e164, given_at=datetime(2026, 1, 5, tzinfo=UTC), source="formulaire"
    )
    placed: list[str] = []

    async with sipp, Engine(settings) as engine:
        engine.dialer.clock.offset_s = paris(11, 0).timestamp() - time.time()
        engine.dialer.on_originate = lambda claim: placed.append(claim.e164)

        async def completed(send_id: Any) -> bool:
            return (await sends_store.get_send(db, send_id)).status is SendStatus.completed

        async with RtpCapture([media_port]) as capture:
            first = await create_send(
                db,
                settings,
                who.account,
                message_ref=who.message.ref,
                targets=targets([stopper]),
                origin="api",
                purpose="commercial",
                sender=SENDER,
                retries=2,
                retry_interval_s=60,
            )
            engine.dialer.wake()
            await wait_for(lambda: completed(first.id), timeout_s=30, what="the commercial send to end")
        stop = await db.fetchrow(
            "SELECT e164, source FROM account_stop_list WHERE account_id = $1 AND number_hash = $2",
            who.account.id,
            number_hash(contact.e164),
        )
        assert stop is not None and (stop["e164"], stop["source"]) == (contact.e164, "dtmf")
        outcome = await db.fetchval("SELECT outcome FROM send_recipients WHERE send_id = $1", first.id)
        assert outcome == "not_confirmed"  # retryable, but stopped: its two retries are never used
        # Another commercial send to it is refused whole (code 99); an information send leaves it out.
        with pytest.raises(InvalidInput) as refused:
            await create_send(
                db,
                settings,
                who.account,
                message_ref=who.message.ref,
                targets=targets([stopper]),
                origin="api",
                purpose="commercial",
                sender=SENDER,
            )
        assert refused.value.code == "commercial_no_consent"
        second = await create_send(
            db,
            settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets([stopper, other]),
            origin="api",
            purpose="information",
            sender=SENDER,
        )
        assert second.stop_listed_skipped == 1
        engine.dialer.wake()
        await wait_for(lambda: completed(second.id), timeout_s=30, what="the information send to end")

    assert placed == [contact.e164, "+33611000601"]
    trunks = await db.fetch(
        "SELECT DISTINCT a.trunk FROM attempts a JOIN send_recipients r ON r.id = a.recipient_id "
        "WHERE r.send_id = ANY($1::uuid[])",
        [first.id, second.id],
    )
    assert [r["trunk"] for r in trunks] == ["optout"]
    assert invites_per_number(sipp) == {stopper: 1, other: 1}
    # On the wire, the first call: the preamble from its start, then the thanks; no message.
    media = settings.media_dir
    preamble = (await spoken(media, preamble_text("Acme Énergie", "0"))).path.with_suffix(".wav")
    thanks = (await spoken(media, opt_out_text("Acme Énergie"))).path.with_suffix(".wav")
    heard = audiomatch.Heard(samples_to(capture.streams, media_port))
    preamble_start = tones.read_wav(preamble)[0][: 8000 * 6 // 10]
    opening = audiomatch.find(heard, preamble_start, trim_end=0)
    closing = audiomatch.find(heard, tones.read_wav(thanks)[0])
    assert len(opening) == 1 and len(closing) == 1, (opening, closing)
    assert opening[0].start_s < 1.0 and closing[0].start_s > opening[0].end_s, (opening, closing)
    assert tones.tone_duration_s(heard.samples, 700.0) < 0.1  # the message's tone never played
