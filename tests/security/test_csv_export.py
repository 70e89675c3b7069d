"""The results CSV: what a customer (or whoever sent through their account) typed never runs as a
spreadsheet formula — on the real engine over HTTP."""

from __future__ import annotations

import csv
import io
from urllib.parse import urlencode

import pytest

from engine.app import Engine
from engine.store import Database
from engine.store import sends as sends_store
from engine.web.ui.history import csv_cell
from tests.integration.dialing import Customer
from tests.integration.uiclient import UiClient
from tests.security.conftest import PASSWORD

pytestmark = pytest.mark.integration

FORMULAS = ['=HYPERLINK("http://evil.example";"x")', "+1+2", "-2+3", "@SUM(A1:A2)", "=cmd|' /C calc'!A0"]


def test_every_formula_start_is_escaped() -> None:
    for value in ("=1", "+A1", "+1+1", "-1", "@x", "\tx", "\rx"):
        assert csv_cell(value) == "'" + value
    assert csv_cell("Relance été") == "Relance été"
    assert csv_cell("+33612345678") == "+33612345678"  # our own E.164 numbers are data
    assert csv_cell(None) == "" and csv_cell(3) == "3"


async def test_comments_come_out_of_the_csv_as_text(engine: Engine, client: Customer, db: Database) -> None:
    browser = UiClient(engine)
    try:
        await browser.login(client.account.email, PASSWORD)
        for comment in FORMULAS:
            query = urlencode({"email": client.account.email, "pass": PASSWORD, "numero": "0612345678",
                               "ref": str(client.message.ref), "com": comment})  # fmt: skip
            async with browser.http.get(f"{browser.base}/http.php?{query}") as resp:
                assert await resp.text() == "80"
        comments = []
        for send in await sends_store.list_sends(db, client.account.id):
            answer = await browser.get(f"/historique/{send.id}/resultats.csv")
            assert answer.status == 200
            rows = list(csv.reader(io.StringIO(answer.text.lstrip("\ufeff")), delimiter=";"))
            assert rows[0][-1] == "Référence" and len(rows) == 2
            comments.append(rows[1][-1])
        assert sorted(comments) == sorted("'" + c for c in FORMULAS)
    finally:
        await browser.close()
