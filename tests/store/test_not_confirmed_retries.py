"""An answered call nobody confirmed (``not_confirmed``: free for the customer) is tried again at most once,
whatever the send's retry policy (issue 17: with 10 retries, a greeting carrying an advert played 11 times
per person at our cost). The retry table had the row (engine/domain/retries.py) but the store never told it
the recipient's earlier unconfirmed attempts: on that code the second unconfirmed call here was retried."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from engine.domain.outcomes import Outcome
from engine.domain.retries import RetryPolicy
from engine.services.sends import create_send
from engine.settings import Settings
from engine.store import Database
from engine.store import attempts as attempts_store
from tests.integration.dialing import customer, targets
from tests.store.test_sends import _claim_one, _result


async def test_an_unconfirmed_listener_is_called_again_once_whatever_the_policy(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path, credits=10)
    send = await create_send(
        db,
        stack_settings,
        who.account,
        message_ref=who.message.ref,
        targets=targets(["0612000001"]),
        origin="api",
    )
    ten_retries = RetryPolicy(extra_attempts=10, interval_s=0.0)
    unconfirmed = dataclasses.replace(_result(Outcome.not_confirmed), cut="callee")
    cut_by_us = dataclasses.replace(_result(Outcome.not_confirmed), cut="ours", free_retry=True)
    finals = []
    # A call we cut (given back: it does not count), then unconfirmed listens until the recipient is done.
    for result in (cut_by_us, unconfirmed, unconfirmed, unconfirmed):
        state = await db.fetchval("SELECT state FROM send_recipients WHERE send_id = $1", send.id)
        if state == "done":
            break
        await db.execute("UPDATE send_recipients SET next_attempt_at = now() WHERE send_id = $1", send.id)
        claim = await _claim_one(db, send.id)
        recorded = await attempts_store.record_results(
            db, [attempts_store.Result(claim, result, ten_retries, reconciled="cdr")]
        )
        finals.append(recorded[0].final)
    assert finals == [False, False, True]  # the second unconfirmed listen is the last
    row = await db.fetchrow(
        "SELECT state, outcome, attempts FROM send_recipients WHERE send_id = $1", send.id
    )
    assert dict(row) == {"state": "done", "outcome": "not_confirmed", "attempts": 2}
    assert await db.fetchval("SELECT count(*) FROM attempts WHERE send_id = $1", send.id) == 3
