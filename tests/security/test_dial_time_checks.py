"""What the account may do is checked again when its calls are placed (issue 17): a send created while
the account could call abroad calls no number abroad once it cannot (nor transfers there), and the
account's own longest transfer bounds every call's transfer. On the real stack: engine, dialer,
Asterisk and a SIPp trunk."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.app import Engine
from engine.domain.numbers import Number, normalize
from engine.domain.sends import SendStatus, Target
from engine.services import build
from engine.services.sends import create_send
from engine.settings import Settings
from engine.store import Database
from engine.store import accounts as accounts_store
from engine.store import sends as sends_store
from tests.integration.conftest import sipp_ports, wait_for
from tests.integration.dialing import customer, invites_per_number, targets
from tests.integration.test_dialer import callees, fast

pytestmark = pytest.mark.integration
__all__ = ["sipp_ports"]  # the integration tests' fixture: SIPp ports from this instance's block

FRENCH = ["0612345600", "0612345601"]
ABROAD = "+442079460958"


def abroad_number() -> Number:
    number = normalize(ABROAD, allow_international=True)
    assert isinstance(number, Number)
    return number


async def test_an_account_that_lost_the_international_option_calls_nobody_abroad(
    stack_settings: Settings,
    db: Database,
    sipp_ports,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    settings = dataclasses.replace(fast(stack_settings), transfer_max_s=1800)
    sipp = await callees(settings, sipp_ports, tmp_path, trace=True, max_channels=20, max_cps=20)
    who = await customer(db, settings, tmp_path, credits=100)
    accounts = build(settings, db).accounts
    allowed = await accounts.set_options(who.account.id, allow_international=True)
    # Created while it may: a number abroad, and a transfer abroad.
    send = await create_send(
        db,
        settings,
        allowed,
        message_ref=who.message.ref,
        targets=[*targets(FRENCH), Target(abroad_number())],
        origin="cli",
        transfer="+442079460000",
    )
    # Then the operator takes the option away, and caps the account's transfers at 5 minutes.
    await accounts.set_options(who.account.id, allow_international=False)
    await db.execute("UPDATE accounts SET transfer_max_s = 300 WHERE id = $1", who.account.id)

    async with sipp, Engine(settings) as engine:
        engine.dialer.wake()

        async def done() -> bool:
            return (await sends_store.get_send(db, send.id)).status is SendStatus.completed

        await wait_for(done, timeout_s=60, interval_s=0.2, what="the send to complete")
        plan = (await engine.dialer.send_context(send.id)).plan

    rows = {r["e164"]: r for r in await sends_store.recipients(db, send.id)}
    abroad = rows[ABROAD]
    assert (abroad["state"], abroad["wait_reason"], abroad["attempts"]) == (
        "cancelled",
        "no_international",
        0,
    )
    assert await db.fetchval("SELECT count(*) FROM attempts WHERE recipient_id = $1", abroad["id"]) == 0
    assert all(rows["+33" + n[1:]]["state"] == "done" for n in FRENCH)
    invites = invites_per_number(sipp)
    assert sorted(invites) == sorted(FRENCH), invites  # SIPp was never asked for the number abroad
    assert plan.transfer_number is None  # touche 9 no longer reaches abroad
    assert plan.transfer_max_s == 300  # the account's own cap, below the setting's 1800
    # Its credit came back; the report says why it was not called.
    assert (await accounts_store.get_account(db, who.account.id)).reserved == 0
    final = await sends_store.get_send(db, send.id)
    assert final.credits_held == 0
