"""The dialer on the real stack: sends run to completion with the right outcomes, retries, credits,
and no number gets more INVITEs than its allowed attempts (counted in SIPp's log)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.app import Engine
from engine.domain.outcomes import Outcome
from engine.domain.sends import SendStatus
from engine.domain.trunks import Trunk
from engine.services.sends import create_send, steer
from engine.settings import Settings
from engine.stack import asterisk
from engine.stack.root import read_info, root_path
from engine.store import Database
from engine.store import sends as sends_store
from engine.store.credits import balance
from lab.sipp import SippProcess
from tests.integration.conftest import add_trunk, wait_for
from tests.integration.dialing import (
    customer,
    customer_greeting,
    invites_per_number,
    targets,
)
from tests.support.carrier import CALLEES, traced_carrier

pytestmark = pytest.mark.integration


def fast(settings: Settings) -> Settings:
    # A trunk's failure (a 503) puts its recipient back in the queue for a moment, and a recipient no
    # trunk could carry for a few seconds ends as congestion: timers these tests can wait for.
    return dataclasses.replace(
        settings,
        ring_timeout_s=2.0,
        max_cps=50.0,
        trunk_retry_s=0.5,
        trunk_wait_max_s=10.0,
        trunk_check_s=0.5,
    )


# The same timers for engines started as processes.
FAST_TRUNK_ENV = {
    "VOCALCAST_TRUNK_RETRY_S": "0.5",
    "VOCALCAST_TRUNK_WAIT_MAX_S": "10",
    "VOCALCAST_TRUNK_CHECK_S": "0.5",
}


async def trunk_failures(db: Database, send_id) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Each number's calls that its trunk failed (a 503...): never one of its attempts, each an INVITE."""
    rows = await db.fetch(
        "SELECT r.e164, count(*) AS n FROM attempts a JOIN send_recipients r ON r.id = a.recipient_id "
        "WHERE a.send_id = $1 AND a.trunk_failure GROUP BY r.e164",
        send_id,
    )
    return {r["e164"]: r["n"] for r in rows}


async def our_cuts(db: Database, send_id) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Each number's calls cut on our side (an Asterisk restart): each an INVITE, never one of its
    attempts (the retry table gives it back)."""
    rows = await db.fetch(
        "SELECT r.e164, count(*) AS n FROM attempts a JOIN send_recipients r ON r.id = a.recipient_id "
        "WHERE a.send_id = $1 AND a.cut = 'ours' GROUP BY r.e164",
        send_id,
    )
    return {r["e164"]: r["n"] for r in rows}


DEMO_PHONE = Path(__file__).parent.parent.parent / "dialplan/sipp/demo-phone.xml"


async def callees(  # type: ignore[no-untyped-def]
    settings: Settings,
    sipp_ports,
    tmp_path: Path,
    *,
    name: str = "callees",
    scenario: Path = CALLEES,
    trace: bool = False,
    **trunk: Any,
) -> SippProcess:
    """A trunk towards a new SIPp phone (dialer_callees.xml: a behaviour per number), stored and reloaded;
    national numbers, `trunk` sets its limits, priority, deposit... The phone starts with `async with`."""
    sip_port, media_port = sipp_ports()
    await add_trunk(
        settings, Trunk(name=name, host="127.0.0.1", port=sip_port, number_format="national", **trunk)
    )
    return traced_carrier(sip_port, media_port, tmp_path, name=name, scenario=scenario, trace=trace)


async def test_mixed_send_completes_with_one_outcome_each(
    stack_settings: Settings,
    db: Database,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    # Not this test's subject: the trunk's breaker (its 503s are a few numbers' among many successes).
    settings = dataclasses.replace(fast(stack_settings), breaker_min_failures=1000)
    sipp = await callees(settings, sipp_ports, tmp_path, trace=True, max_channels=20, max_cps=20)
    who = await customer(db, settings, tmp_path, credits=100)
    numbers = [f"06123456{i:02d}" for i in range(10)] + [f"06501234{i:02d}" for i in range(10)]
    async with sipp, Engine(settings) as engine:
        send = await create_send(
            db,
            settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets(numbers),
            origin="cli",
            retries=1,
            retry_interval_s=1,
        )
        engine.dialer.wake()

        async def done() -> bool:
            return (await sends_store.get_send(db, send.id)).status is SendStatus.completed

        await wait_for(done, timeout_s=60, interval_s=0.2, what="the send to complete")

    rows = {r["e164"]: r for r in await sends_store.recipients(db, send.id)}
    expected = {
        "0": Outcome.listened,
        "5": Outcome.busy,
        "6": Outcome.rejected,
        "7": Outcome.no_answer,
        "8": Outcome.partial,
        "9": Outcome.congestion,
    }
    allowed = {o: (2 if o.retryable else 1) for o in expected.values()}
    invites = invites_per_number(sipp)
    for e164, row in rows.items():
        last = e164[-1]
        outcome = expected.get(last, Outcome.listened)
        assert row["state"] == "done" and row["outcome"] == outcome.value, (e164, row)
        national = "0" + e164[3:]
        if outcome is Outcome.congestion:
            # The trunk answered 503: its failure, never the callee's. The recipient waited for a trunk
            # (tried again, its attempts given back each time) until the bounded wait ended it.
            assert row["attempts"] == 0, (e164, row)
            assert invites[national] >= 2, (national, invites[national])
            continue
        assert row["attempts"] == allowed[outcome], (e164, row)
        assert invites[national] == allowed[outcome], (national, invites[national])
    # Credits: one per delivered call (listened, partial); the rest came back.
    delivered = sum(1 for r in rows.values() if Outcome(r["outcome"]).consumes_credit)
    final = await sends_store.get_send(db, send.id)
    assert final.credits_used == delivered and final.credits_held == 0
    assert (await balance(db, who.account.id)).available == 100 - delivered
    assert (await balance(db, who.account.id)).reserved == 0
    await asyncio.sleep(0)


async def _until_completed(db: Database, send_id, timeout_s: float = 60) -> None:  # type: ignore[no-untyped-def]
    async def done() -> bool:
        return (await sends_store.get_send(db, send_id)).status is SendStatus.completed

    await wait_for(done, timeout_s=timeout_s, interval_s=0.1, what="the send to complete")


async def test_deferred_start_cancel_pause_resume(
    stack_settings: Settings,
    db: Database,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    settings = fast(stack_settings)
    sipp = await callees(settings, sipp_ports, tmp_path, max_channels=2, max_cps=2)
    who = await customer(db, settings, tmp_path, credits=100, seconds=1.0)
    async with sipp, Engine(settings) as engine:
        soon = datetime.now(UTC) + timedelta(seconds=2)
        deferred = await create_send(
            db,
            settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets(["0611000001"]),
            origin="http",
            at=soon,
        )
        cancelled = await create_send(
            db,
            settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets(["0611000002"]),
            origin="http",
            at=soon,
        )
        await steer(db, cancelled.id, "cancel")
        steered = await create_send(
            db,
            settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets([f"06110001{i:02d}" for i in range(8)]),
            origin="api",
        )
        engine.dialer.wake()

        async def some_calls() -> bool:
            return (await sends_store.progress(db, steered.id)).done >= 2

        await wait_for(some_calls, timeout_s=30, what="the first calls")
        await steer(db, steered.id, "pause")
        attempts_at_pause = (await sends_store.progress(db, steered.id)).attempts
        await wait_for(lambda: engine.calls.active == 0, timeout_s=20, what="calls in progress to finish")
        # Paused: calls in progress finished, nothing new started. Proven once the dialer has placed and
        # finished a whole other send of one call: it went through cycles with a free channel and, the
        # call lasting longer than the trunk's 0.5 s between tokens, with a token too.
        after_pause = await create_send(
            db,
            settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets(["0611000300"]),
            origin="api",
        )
        engine.dialer.wake()
        await _until_completed(db, after_pause.id)
        assert (await sends_store.progress(db, after_pause.id)).attempts == 1
        assert (await sends_store.progress(db, steered.id)).attempts == attempts_at_pause
        assert (await sends_store.get_send(db, steered.id)).status is SendStatus.paused
        await steer(db, steered.id, "resume")
        await _until_completed(db, steered.id)
        await _until_completed(db, deferred.id)

    first_attempt = await db.fetchval("SELECT min(created_at) FROM attempts WHERE send_id = $1", deferred.id)
    assert first_attempt >= soon  # never before its time
    invites = invites_per_number(sipp)
    assert invites["0611000001"] == 1
    assert invites["0611000002"] == 0  # cancelled before start: no INVITE ever
    assert invites["0611000300"] == 1
    assert (await sends_store.get_send(db, cancelled.id)).status is SendStatus.cancelled


async def test_fairness_a_small_send_is_not_stuck_behind_a_big_one(
    stack_settings: Settings,
    db: Database,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    settings = fast(stack_settings)
    sipp = await callees(settings, sipp_ports, tmp_path, max_channels=10, max_cps=50)
    who = await customer(db, settings, tmp_path, credits=1000, seconds=1.0)
    order: list[str] = []
    async with sipp, Engine(settings) as engine:
        engine.dialer.on_originate = lambda claim: order.append(claim.e164)
        big = await create_send(
            db,
            settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets([f"06{i:08d}" for i in range(13000000, 13000100)]),
            origin="web",
        )
        engine.dialer.wake()
        await wait_for(
            lambda: engine.calls.active >= 10, timeout_s=20, what="the big send to fill the channels"
        )
        before = len(order)
        small = await create_send(
            db,
            settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets(["0699999990"]),
            origin="http",
        )
        await _until_completed(db, small.id, timeout_s=30)
        await steer(db, big.id, "cancel")
        await wait_for(lambda: engine.calls.active == 0, timeout_s=20, what="calls to finish")
    position = order.index("+33699999990") - before
    assert 0 <= position < 10, position
    # Counted on the wire too: SIPp saw the small send's INVITE among the next 10 after it was created.
    numbers = [e["number"] for e in sipp.log_events() if e.get("event") == "INVITE"]
    assert numbers.index("0699999990") - before < 10


async def test_failover_only_before_ringing(
    stack_settings: Settings,
    db: Database,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    settings = fast(stack_settings)
    a = await callees(settings, sipp_ports, tmp_path, name="first", priority=10, max_channels=5, max_cps=20)
    # The second trunk's phone answers every call (the demo phone).
    b = await callees(
        settings,
        sipp_ports,
        tmp_path,
        name="second",
        scenario=DEMO_PHONE,
        priority=20,
        max_channels=5,
        max_cps=20,
    )
    who = await customer(db, settings, tmp_path, credits=100, seconds=1.0)
    numbers = ["0612300009", "0612300019", "0612300007", "0612300017", "0612300005"]
    async with a, b, Engine(settings) as engine:
        send = await create_send(
            db, settings, who.account, message_ref=who.message.ref, targets=targets(numbers), origin="api"
        )
        engine.dialer.wake()
        await _until_completed(db, send.id)
    attempts = await db.fetch(
        "SELECT a.id, a.trunk, a.failover_of, a.sip_code, a.outcome, a.ring_s, r.e164 FROM attempts a "
        "JOIN send_recipients r ON r.id = a.recipient_id WHERE a.send_id = $1",
        send.id,
    )
    by_id = {r["id"]: r for r in attempts}
    for row in attempts:
        if row["failover_of"] is not None:
            before = by_id[row["failover_of"]]
            assert before["trunk"] == "first" and row["trunk"] == "second"
            assert before["sip_code"] == 503 and before["ring_s"] is None  # refused before any ringing
    # A call that rang on a trunk (the 7s) or met a busy callee (the 5) never moved to another trunk.
    moved_from = {by_id[r["failover_of"]]["e164"] for r in attempts if r["failover_of"] is not None}
    assert moved_from <= {"+33612300009", "+33612300019"}
    rows = {r["e164"]: r for r in await sends_store.recipients(db, send.id)}
    # Every number refused by the first trunk before ringing was delivered by the second.
    for e164 in ("+33612300009", "+33612300019"):
        assert rows[e164]["outcome"] == "listened"
    # SIPp's own logs agree with our attempts, trunk by trunk.
    for sipp, trunk in ((a, "first"), (b, "second")):
        counted = invites_per_number(sipp)
        for e164 in rows:
            ours = sum(1 for r in attempts if r["trunk"] == trunk and r["e164"] == e164)
            assert counted["0" + e164[3:]] == ours, (trunk, e164)


async def cycles_without_asterisk(engine: Engine, count: int) -> None:
    """Returns after `count` more dialer cycles found Asterisk away, each one able to place a call: when
    it began, the trunk had a free channel and a token (only a claim takes a token; the engine's own limit,
    50 calls/s in `fast`, is looser than the trunk's). Such a cycle says so in the state the health page
    shows, then stops; the test clears that state, wakes the dialer, and waits for it to be set again."""

    def could_call() -> bool:
        now = time.monotonic()
        loads = [t.load(now) for t in engine.dialer.pool.trunks.values()]
        return bool(loads) and all(load.tokens >= 1 and load.active < load.max_channels for load in loads)

    for _ in range(count):
        await wait_for(could_call, interval_s=0.01, what="a free channel and a token")
        engine.dialer.state.blocked_reason = ""
        engine.dialer.wake()
        await wait_for(
            lambda: engine.dialer.state.blocked_reason == "asterisk unavailable",
            interval_s=0.01,
            what="a dialer cycle that finds Asterisk away",
        )


async def test_asterisk_restart_mid_send(
    stack_settings: Settings,
    db: Database,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """Asterisk goes away mid-send: the send waits, resumes when it is back, every recipient ends with one
    outcome and nobody gets more INVITEs than allowed."""
    settings = fast(stack_settings)
    sipp = await callees(settings, sipp_ports, tmp_path, max_channels=10, max_cps=20)
    who = await customer(db, settings, tmp_path, credits=1000, seconds=1.5)
    numbers = [f"06{i:08d}" for i in range(15000000, 15000060)]
    root = root_path(settings)
    async with sipp, Engine(settings) as engine:
        send = await create_send(
            db,
            settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets(numbers),
            origin="api",
            retries=1,
            retry_interval_s=1,
        )
        engine.dialer.wake()

        async def some() -> bool:
            return (await sends_store.progress(db, send.id)).attempts >= 20

        await wait_for(some, timeout_s=30, what="a third of the calls")
        asterisk.stop(settings, root)
        try:
            await wait_for(lambda: not engine.ari.ready, what="the engine to notice")
            # Cycles run one after another: once one has found Asterisk away, a cycle that began before
            # (and may have been claiming) is over.
            await cycles_without_asterisk(engine, 1)
            down = await sends_store.progress(db, send.id)
            assert down.pending > 0  # work left to claim
            originates_while_down = engine.dialer.originates
            # Two more whole cycles (the second begins after the first ended), each able to place a call:
            # a cycle that claimed work without Asterisk would show here.
            await cycles_without_asterisk(engine, 2)
            assert (await sends_store.progress(db, send.id)).attempts == down.attempts
            assert engine.dialer.originates == originates_while_down
        finally:
            info = read_info(root)
            assert info is not None
            asterisk.start(settings, info)
        await _until_completed(db, send.id, timeout_s=90)
    rows = await sends_store.recipients(db, send.id, limit=1000)
    invites = invites_per_number(sipp)
    failed_by_trunk = await trunk_failures(db, send.id)
    cut = await our_cuts(db, send.id)
    for row in rows:
        assert row["state"] == "done"
        assert row["attempts"] <= 2, row
        given_back = failed_by_trunk.get(row["e164"], 0) + cut.get(row["e164"], 0)
        assert invites["0" + row["e164"][3:]] <= row["attempts"] + given_back, row


async def test_voicemail_drop_through_the_operators_direct_deposit(
    stack_settings: Settings,
    db: Database,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """A trunk that offers direct deposit: the number goes out with the operator's prefix and header, the
    mailbox platform answers, and the message is left without greeting: outcome voicemail."""
    settings = fast(stack_settings)
    sipp = await callees(
        settings,
        sipp_ports,
        tmp_path,
        name="deposit",
        trace=True,
        deposit_prefix="999",
        deposit_header="X-Voicemail-Deposit: 1",
    )
    who = await customer(db, settings, tmp_path, credits=10, seconds=1.0)
    greeting = await customer_greeting(db, settings, who, tmp_path)
    async with sipp, Engine(settings) as engine:
        send = await create_send(
            db,
            settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets(["0612300010", "0650300011"]),
            origin="api",
            voicemail_drop=True,
            greeting_ref=greeting,
        )
        engine.dialer.wake()
        await _until_completed(db, send.id)
    rows = await sends_store.recipients(db, send.id)
    assert sorted(r["outcome"] for r in rows) == ["voicemail", "voicemail"]
    invites = [m for m in sipp.messages() if m.method == "INVITE"]
    assert sorted(m.start_line.split("@")[0] for m in invites) == [
        "INVITE sip:9990612300010",
        "INVITE sip:9990650300011",
    ]
    assert all(m.header("X-Voicemail-Deposit") == "1" for m in invites)
