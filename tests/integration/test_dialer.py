"""The dialer on the real stack: sends run to completion with the right outcomes, retries, credits,
and no number gets more INVITEs than its allowed attempts (counted in SIPp's log)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from engine.app import Engine
from engine.domain.outcomes import Outcome
from engine.domain.sends import SendStatus
from engine.domain.trunks import Trunk
from engine.sends import create_send
from engine.settings import Settings
from engine.store import Database
from engine.store import sends as sends_store
from engine.store.accounts import balance
from tests.integration.conftest import add_trunk, wait_for
from tests.integration.dialing import (
    SIPP_DIR,
    EngineProcess,
    customer,
    engine_env,
    invites_per_number,
    targets,
)
from tests.support.sipp import SippProcess

pytestmark = pytest.mark.integration


def fast(settings: Settings) -> Settings:
    return dataclasses.replace(settings, ring_timeout_s=2.0, max_cps=50.0)


async def test_mixed_send_completes_with_one_outcome_each(
    stack_settings: Settings,
    db: Database,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    settings = fast(stack_settings)
    sip_port, media_port = sipp_ports()
    await add_trunk(
        settings,
        Trunk(
            name="callees",
            host="127.0.0.1",
            port=sip_port,
            number_format="national",
            max_channels=20,
            max_cps=20,
        ),
    )
    who = await customer(db, settings, tmp_path, credits=100)
    numbers = [f"06123456{i:02d}" for i in range(10)] + [f"06501234{i:02d}" for i in range(10)]
    sipp = SippProcess(
        SIPP_DIR / "dialer_callees.xml",
        local_port=sip_port,
        media_port=media_port,
        workdir=tmp_path,
        extra_args=["-aa"],
    )
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
        assert row["attempts"] == allowed[outcome], (e164, row)
        national = "0" + e164[3:]
        assert invites[national] == allowed[outcome], (national, invites[national])
    # Credits: one per delivered call (listened, partial); the rest came back.
    delivered = sum(1 for r in rows.values() if Outcome(r["outcome"]).consumes_credit)
    final = await sends_store.get_send(db, send.id)
    assert final.credits_used == delivered and final.credits_held == 0
    assert (await balance(db, who.account.id)).available == 100 - delivered
    assert (await balance(db, who.account.id)).reserved == 0
    await asyncio.sleep(0)


async def test_kill_9_mid_send_loses_nobody_and_calls_nobody_twice(
    stack_settings: Settings,
    db: Database,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """A 200-recipient send; the engine is killed (-9) halfway and restarted: every recipient ends
    with exactly one final outcome, and no number got more INVITEs than its allowed attempts."""
    sip_port, media_port = sipp_ports()
    await add_trunk(
        stack_settings,
        Trunk(
            name="callees",
            host="127.0.0.1",
            port=sip_port,
            number_format="national",
            max_channels=40,
            max_cps=40,
        ),
    )
    who = await customer(db, stack_settings, tmp_path, credits=1000, seconds=1.5)
    numbers = [f"06{i:08d}" for i in range(12000000, 12000200)]
    env = engine_env(
        {"VOCALCAST_RING_TIMEOUT_S": "2", "VOCALCAST_MAX_CPS": "60", "VOCALCAST_MAX_CHANNELS": "40"}
    )
    sipp = SippProcess(
        SIPP_DIR / "dialer_callees.xml",
        local_port=sip_port,
        media_port=media_port,
        workdir=tmp_path,
        trace_messages=False,
        extra_args=["-aa"],
    )
    first = EngineProcess(env, tmp_path / "engine-1.log")
    second = EngineProcess(env, tmp_path / "engine-2.log")
    async with sipp:
        await first.start()
        try:
            send = await create_send(
                db,
                stack_settings,
                who.account,
                message_ref=who.message.ref,
                targets=targets(numbers),
                origin="cli",
                retries=1,
                retry_interval_s=1,
            )

            async def halfway() -> bool:
                return (await sends_store.progress(db, send.id)).attempts >= 100

            await wait_for(halfway, timeout_s=60, interval_s=0.05, what="half of the attempts")
            first.kill()
            await first.stop()
            assert first.proc is not None and first.proc.returncode == -9
            in_flight = (await sends_store.progress(db, send.id)).calling
            await second.start()

            async def done() -> bool:
                return (await sends_store.get_send(db, send.id)).status is SendStatus.completed

            await wait_for(done, timeout_s=120, interval_s=0.2, what="the send to complete after the restart")
        finally:
            first.kill()
            await first.stop()
            await second.stop()

    rows = await sends_store.recipients(db, send.id, limit=1000)
    assert len(rows) == 200
    assert all(r["state"] == "done" and r["outcome"] for r in rows)
    invites = invites_per_number(sipp)
    for row in rows:
        outcome = Outcome(row["outcome"])
        allowed = 2 if outcome.retryable else 1
        national = "0" + row["e164"][3:]
        assert invites[national] <= min(allowed, row["attempts"]), (row, invites[national])
        assert invites[national] >= 1 or row["outcome"] == "failed", row
    assert in_flight > 0  # the kill really hit calls in progress
    reconciled = await db.fetchval(
        "SELECT count(*) FROM attempts WHERE send_id = $1 AND reconciled IS NOT NULL", send.id
    )
    assert reconciled >= 1
    final = await sends_store.get_send(db, send.id)
    assert final.credits_held == 0
