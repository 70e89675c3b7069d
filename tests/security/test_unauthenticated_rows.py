"""What strangers make the service write stays bounded: refusals of clients that never logged in are
rationed, and the purge job clears old rate events, refusals and throttle rows — on the real engine."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from engine.app import Engine
from engine.settings import Settings
from engine.store import Database
from tests.integration.conftest import wait_for
from tests.integration.dialing import Customer
from tests.security.conftest import PASSWORD

pytestmark = pytest.mark.integration


async def http_php(engine: Engine, params: dict[str, str], address: str) -> str:
    url = f"http://127.0.0.1:{engine.http_port}/http.php"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=params, headers={"X-Forwarded-For": address}) as resp,
    ):
        return await resp.text()


async def test_refusals_of_strangers_are_rationed(engine: Engine, client: Customer, db: Database) -> None:
    ration = engine.settings.refusals_per_client_per_min
    empty = {"email": "", "pass": "", "numero": "", "ref": ""}
    answers = await asyncio.gather(*(http_php(engine, empty, "203.0.113.50") for _ in range(100)))
    assert set(answers) == {"87"}  # every request still gets its code
    assert await db.fetchval("SELECT count(*) FROM refused_requests") == ration
    # Another client has its own ration; a customer's refusals are all kept.
    assert await http_php(engine, empty, "203.0.113.51") == "87"
    params = {"email": client.account.email, "pass": PASSWORD, "numero": "12", "ref": str(client.message.ref)}
    for _ in range(ration + 5):
        assert await http_php(engine, params, "203.0.113.50") == "84"
    rows = await db.fetch("SELECT client, account_id FROM refused_requests")
    assert sum(1 for r in rows if r["account_id"] == client.account.id) == ration + 5
    assert sum(1 for r in rows if r["client"] == "203.0.113.51") == 1


async def test_the_purge_job_clears_old_rows_and_keeps_recent_ones(
    stack_settings: Settings, db: Database, client: Customer
) -> None:
    account = client.account.id
    await db.execute(
        "INSERT INTO rate_events (kind, key, at) VALUES ('login', 'old', now() - interval '2 days'), "
        "('login', 'new', now())"
    )
    await db.execute(
        "INSERT INTO refused_requests (origin, code, at) VALUES ('http', '82', now() - interval '100 days'), "
        "('http', '82', now() - interval '1 day')"
    )
    await db.execute(
        "INSERT INTO login_throttle (key, failures, window_start, strikes) VALUES "
        "('pair:old', 5, now() - interval '60 days', 5), ('pair:new', 5, now(), 0)"
    )
    await db.execute(
        "INSERT INTO login_trusted (account_id, client, last_success_at) VALUES "
        "($1, 'old', now() - interval '31 days'), ($1, 'new', now() - interval '29 days')",
        account,
    )
    engine = Engine(stack_settings)
    engine.run_dialer = False
    async with engine:  # the job runs at start, then every hour

        async def purged() -> bool:
            return not await db.fetchval(
                "SELECT (SELECT count(*) FROM rate_events WHERE key = 'old') "
                "+ (SELECT count(*) FROM refused_requests WHERE at < now() - interval '50 days') "
                "+ (SELECT count(*) FROM login_throttle WHERE key = 'pair:old') "
                "+ (SELECT count(*) FROM login_trusted WHERE client = 'old')"
            )

        await wait_for(purged, what="the purge")
    assert await db.fetchval("SELECT key FROM rate_events") == "new"
    assert await db.fetchval("SELECT count(*) FROM refused_requests") == 1
    assert await db.fetchval("SELECT key FROM login_throttle") == "pair:new"
    assert await db.fetchval("SELECT client FROM login_trusted") == "new"
