"""An account's http.php and API limited to its own servers (`vocalcast account clients`): a stolen
password or token is worth nothing from elsewhere, the pages stay open — on the real engine."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from engine.app import Engine
from engine.cli import main
from engine.store import Database
from engine.store.tokens import create_token
from tests.integration.dialing import Customer
from tests.integration.uiclient import UiClient
from tests.security.conftest import PASSWORD

pytestmark = pytest.mark.integration
OURS, ELSEWHERE = "198.51.100.7", "203.0.113.9"


async def http_php(engine: Engine, who: Customer, address: str) -> str:
    params = {
        "email": who.account.email,
        "pass": PASSWORD,
        "numero": "0612345678",
        "ref": str(who.message.ref),
    }
    url = f"http://127.0.0.1:{engine.http_port}/http.php"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=params, headers={"X-Forwarded-For": address}) as resp,
    ):
        return await resp.text()


async def api(engine: Engine, token: str, address: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{engine.http_port}/api/v1/account"
    headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": address}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        body = await resp.json()
        return resp.status, body.get("code", "")


async def clients(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["account", "clients", *args]) == 0
    return capsys.readouterr().out


async def test_http_php_and_the_api_only_from_the_accounts_servers(
    engine: Engine, client: Customer, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    token = (await create_token(db, client.account.id, label="crm")).secret
    email = client.account.email
    assert "from anywhere" in await clients(capsys, "--account", email)
    assert await http_php(engine, client, ELSEWHERE) == "80"
    out = await clients(capsys, "--account", email, "--allow", "198.51.100.0/24", "2001:db8::1")
    assert "from 198.51.100.0/24, 2001:db8::1/128" in out

    assert await http_php(engine, client, OURS) == "80"
    assert await http_php(engine, client, ELSEWHERE) == "82"  # as a wrong password: nothing learnt
    assert await api(engine, token, OURS) == (200, "")
    assert await api(engine, token, ELSEWHERE) == (403, "client_not_allowed")
    refusal = await db.fetchrow("SELECT account_id, client, detail FROM refused_requests")
    assert refusal["account_id"] == client.account.id and refusal["client"] == ELSEWHERE
    assert refusal["detail"].startswith("client address not allowed")  # the customer can be told why
    # The pages stay open to the customer's browser, wherever it is.
    browser = UiClient(engine)
    try:
        assert (await browser.login(email, PASSWORD)).url.endswith("/tableau-de-bord")
    finally:
        await browser.close()

    assert "from anywhere" in await clients(capsys, "--account", email, "--anywhere")
    assert await http_php(engine, client, ELSEWHERE) == "80"
    assert await db.fetchval("SELECT count(*) FROM sends") == 3


async def test_a_bad_network_is_refused(
    engine: Engine, client: Customer, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    rc = await asyncio.to_thread(
        main, ["account", "clients", "--account", client.account.email, "--allow", "10.0.0.300"]
    )
    assert rc != 0 and "10.0.0.300" in capsys.readouterr().err
