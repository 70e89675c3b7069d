"""No daily spending cap (issue 17): a stolen account, or a runaway script, could spend every credit in
a day. With a cap, the dialer places no more of the account's calls once the day's spending reaches it;
the other recipients wait for the next day and the report says why. On the real stack: engine, dialer,
Asterisk and a SIPp trunk; what was called is SIPp's own log."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from engine.app import Engine
from engine.services.sends import create_send
from engine.settings import Settings
from engine.store import Database
from engine.store import sends as sends_store
from engine.store.spending import daily_spending, set_daily_cap
from engine.store.tokens import create_token
from tests.integration.conftest import sipp_ports, wait_for
from tests.integration.dialing import customer, invites_per_number, targets
from tests.integration.test_dialer import callees, fast

pytestmark = pytest.mark.integration
__all__ = ["sipp_ports"]  # the integration tests' fixture: SIPp ports from this instance's block

CAP = 3
NUMBERS = [f"06123456{i:02d}" for i in range(5)] + [f"06123457{i:02d}" for i in range(3)]  # all listen


async def test_the_dialer_stops_at_the_daily_cap_and_the_report_says_why(
    stack_settings: Settings,
    db: Database,
    sipp_ports,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    settings = dataclasses.replace(fast(stack_settings), daily_spend_cap=1000)  # the account's own cap wins
    sipp = await callees(settings, sipp_ports, tmp_path, trace=True, max_channels=20, max_cps=20)
    who = await customer(db, settings, tmp_path, credits=100)
    await set_daily_cap(db, who.account.id, CAP)
    async with sipp, Engine(settings) as engine:
        send = await create_send(
            db, settings, who.account, message_ref=who.message.ref, targets=targets(NUMBERS), origin="cli"
        )
        engine.dialer.wake()

        async def settled() -> bool:
            rows = await sends_store.recipients(db, send.id)
            done = [r for r in rows if r["state"] == "done"]
            waiting = [r for r in rows if r["state"] == "pending" and r["wait_reason"] == "daily_cap"]
            return len(done) + len(waiting) == len(NUMBERS) and len(waiting) > 0

        await wait_for(settled, timeout_s=60, interval_s=0.2, what="the cap to hold the rest back")
        token = (await create_token(db, who.account.id, label="t")).secret
        url = f"http://127.0.0.1:{engine.http_port}/api/v1/sends/{send.id}/recipients"
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp,
        ):
            assert resp.status == 200
            report = await resp.json()

    rows = await sends_store.recipients(db, send.id)
    called = [r for r in rows if r["state"] == "done"]
    waiting = [r for r in rows if r["state"] == "pending"]
    assert len(called) == CAP, [dict(r) for r in rows]
    assert len(waiting) == len(NUMBERS) - CAP
    # Nobody else was called: SIPp saw exactly CAP calls, one per called number.
    invites = invites_per_number(sipp)
    assert sum(invites.values()) == CAP, invites
    # The others wait for the next French day, and the report says why.
    tomorrow = datetime.now(UTC) + timedelta(hours=1)
    assert all(r["wait_reason"] == "daily_cap" and r["next_attempt_at"] > tomorrow for r in waiting)
    notes = [item["note"] for item in report["recipients"] if item["state"] == "pending"]
    assert len(notes) == len(waiting)
    assert all("plafond de dépenses quotidien" in note for note in notes), notes
    spending = await daily_spending(db, who.account.id, default_cap=settings.daily_spend_cap)
    assert (spending.cap, spending.spent) == (CAP, CAP)
