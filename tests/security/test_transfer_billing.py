"""Transfers unmetered (issue 17): one credit bought up to 30 minutes of a second outbound leg. Each
transfer's started minutes beyond the first now cost VOCALCAST_TRANSFER_MINUTE_CREDITS credits, charged
once, recorded per attempt and shown for invoicing: per send in the API and the web report, per recipient
in the results CSV. On the real database and engine over HTTP."""

from __future__ import annotations

import csv
import dataclasses
import io
import uuid
from pathlib import Path

import aiohttp
import pytest

from engine.app import Engine
from engine.services.sends import create_send
from engine.settings import Settings
from engine.store import Database
from engine.store import transfers as transfers_store
from engine.store.accounts import set_password
from engine.store.credits import balance
from engine.store.tokens import create_token
from tests.integration.dialing import customer, targets
from tests.integration.uiclient import UiClient

pytestmark = pytest.mark.integration

# (talk after the call centre answered, seconds) -> started minutes beyond the first
TRANSFERS = {150.0: 2, 45.0: 0, 60.0: 0, 61.0: 1}
UNIT = 2


async def ended_transfer(db: Database, send_id: uuid.UUID, recipient_id: int, transfer_s: float) -> None:
    """An attempt the dialer recorded: answered, transferred, the call centre talked ``transfer_s``."""
    await db.execute(
        "INSERT INTO attempts (id, send_id, recipient_id, attempt_no, node, app, trunk, state, answered_at, "
        "ended_at, outcome, transfer_outcome, transfer_s) VALUES ($1, $2, $3, 1, 'test', 'test', 'demo', "
        "'ended', now(), now(), 'transferred', 'answered', $4)",
        uuid.uuid4(),
        send_id,
        recipient_id,
        transfer_s,
    )


async def test_transfer_minutes_beyond_the_first_are_charged_once_and_reported(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    settings = dataclasses.replace(stack_settings, transfer_minute_credits=UNIT)
    who = await customer(db, settings, tmp_path, credits=100)
    numbers = [f"06123456{i:02d}" for i in range(len(TRANSFERS))]
    send = await create_send(
        db, settings, who.account, message_ref=who.message.ref, targets=targets(numbers), origin="cli"
    )
    recipients = await db.fetch("SELECT id FROM send_recipients WHERE send_id = $1 ORDER BY id", send.id)
    for row, transfer_s in zip(recipients, TRANSFERS, strict=True):
        await ended_transfer(db, send.id, row["id"], transfer_s)
    before = await balance(db, who.account.id)
    due = UNIT * sum(TRANSFERS.values())  # 2 × (2 + 0 + 0 + 1) = 6

    assert await transfers_store.bill(db, unit=UNIT) == due
    assert await transfers_store.bill(db, unit=UNIT) == 0  # once only
    after = await balance(db, who.account.id)
    assert before.available - after.available == due
    assert after.reserved == before.reserved
    charged = await db.fetch(
        "SELECT transfer_s, transfer_credits FROM attempts WHERE send_id = $1 ORDER BY transfer_s", send.id
    )
    assert [(r["transfer_s"], r["transfer_credits"]) for r in charged] == [
        (45.0, 0),
        (60.0, 0),
        (61.0, 2),
        (150.0, 4),
    ]

    # The send's report says it: transfers answered, their minutes, the credits they cost.
    engine = Engine(settings)
    engine.run_dialer = False
    async with engine:
        token = (await create_token(db, who.account.id, label="t")).secret
        url = f"http://127.0.0.1:{engine.http_port}/api/v1/sends/{send.id}"
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp,
        ):
            assert resp.status == 200
            detail = await resp.json()
        # The web report and the results CSV say it too, in French, for invoicing.
        await set_password(db, who.account.id, "motdepasse-solide-42")
        browser = UiClient(engine)
        try:
            await browser.login(who.account.email, "motdepasse-solide-42")
            report = await browser.get(f"/historique/{send.id}")
            exported = await browser.get(f"/historique/{send.id}/resultats.csv")
        finally:
            await browser.close()
    assert detail["transfers"] == {"answered": 4, "minutes": 1 + 1 + 2 + 3, "credits": due}
    assert report.status == 200
    assert report.contains("Transferts aboutis 4"), report.visible
    assert report.contains("Minutes de transfert 7 (minutes commencées)"), report.visible
    assert report.contains(f"Crédits de transfert {due}"), report.visible
    assert exported.status == 200
    rows = list(csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff")), delimiter=";"))
    by_recipient = [(r["Minutes de transfert"], r["Crédits de transfert"]) for r in rows]
    # Recipients in order: 150 s (3 started minutes, 2 × 2 credits), 45 s, 60 s, 61 s (2 minutes, 2 credits).
    assert by_recipient == [("3", "4"), ("1", "0"), ("1", "0"), ("2", "2")]
    assert sum(int(m) for m, _ in by_recipient) == detail["transfers"]["minutes"]
    assert sum(int(c) for _, c in by_recipient) == due
