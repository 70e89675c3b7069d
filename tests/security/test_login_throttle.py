"""The login throttle against parallel guesses, other spellings and strangers, over real HTTP and SMTP:
http.php, the login page and the e-mail intake on an engine with the real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import smtplib
from collections.abc import AsyncIterator
from email.message import EmailMessage

import aiohttp
import pytest

from engine.app import Engine
from engine.settings import Settings
from engine.store import Database
from tests.conftest import PORT_BASE
from tests.integration.dialing import Customer
from tests.integration.uiclient import UiClient
from tests.security.conftest import PASSWORD, Checks

pytestmark = pytest.mark.integration
WRONG = "pas-le-bon-mot-de-passe"


async def http_php(
    engine: Engine, who: Customer, *, password: str, email: str | None = None, address: str = "203.0.113.7"
) -> tuple[int, str, str | None]:
    """One http.php request as if from ``address`` (the README's proxy on loopback names the client in
    X-Forwarded-For): (HTTP status, code, Retry-After)."""
    params = {
        "email": who.account.email if email is None else email,
        "pass": password,
        "numero": "0612345678",
        "ref": str(who.message.ref),
    }
    url = f"http://127.0.0.1:{engine.http_port}/http.php"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=params, headers={"X-Forwarded-For": address}) as resp,
    ):
        return resp.status, await resp.text(), resp.headers.get("Retry-After")


async def bad_logins(db: Database) -> int:
    """Failed logins the intake recorded after checking the password (throttled ones are not checked)."""
    return int(await db.fetchval("SELECT count(*) FROM refused_requests WHERE detail LIKE 'bad login%'"))


async def test_parallel_guesses_are_checked_at_most_the_budget(
    engine: Engine, client: Customer, db: Database, stack_settings: Settings, password_checks: Checks
) -> None:
    budget = stack_settings.login_max_failures
    answers = await asyncio.gather(*(http_php(engine, client, password=WRONG) for _ in range(60)))
    # http.php's contract holds whatever happens: HTTP 200 and a code.
    assert {(status, code) for status, code, _ in answers} == {(200, "82")}
    assert password_checks.count <= budget, f"{password_checks.count} passwords checked, budget {budget}"
    assert await bad_logins(db) <= budget
    throttled = [after for _, _, after in answers if after is not None]
    assert len(throttled) >= 60 - budget
    assert all(0 < int(a) <= stack_settings.login_window_s for a in throttled)


async def test_parallel_guesses_from_many_addresses_are_checked_at_most_the_account_budget(
    engine: Engine, client: Customer, stack_settings: Settings, password_checks: Checks
) -> None:
    guesses = [http_php(engine, client, password=WRONG, address=f"203.0.113.{i}") for i in range(1, 61)]
    answers = await asyncio.gather(*guesses)
    assert {(status, code) for status, code, _ in answers} == {(200, "82")}
    assert password_checks.count <= stack_settings.login_account_max_failures


async def test_other_spellings_of_the_login_share_its_budget(
    engine: Engine, client: Customer, stack_settings: Settings, password_checks: Checks
) -> None:
    email = client.account.email
    assert email == "client@example.fr"
    # One login, many spellings: the accounts table compares them equal (NFKC, trimmed, lower-cased).
    spellings = [
        "CLIENT@EXAMPLE.FR",
        "  client@example.fr ",
        "\uff43lient@example.fr",  # fullwidth 'c'
        "c\uff4cient@example.fr",  # fullwidth 'l'
        "cl\uff49ent@example.fr",  # fullwidth 'i'
        "client@\uff45xample.fr",  # fullwidth 'e'
        "\u2102lient@example.fr",  # double-struck 'C'
        "client@example.\uff46r",  # fullwidth 'f'
    ]
    # Each guess from a new address: only the login's own budget across addresses can stop them.
    guesses = [
        http_php(engine, client, password=WRONG, email=spellings[i % 8], address=f"203.0.113.{i}")
        for i in range(1, 65)
    ]
    assert {a[:2] for a in await asyncio.gather(*guesses)} == {(200, "82")}
    assert password_checks.count <= stack_settings.login_account_max_failures
    # The budget is spent for every spelling: the right password from yet another address is not checked.
    checked = password_checks.count
    status, code, retry_after = await http_php(engine, client, password=PASSWORD, address="192.0.2.1")
    assert (status, code) == (200, "82") and retry_after is not None
    assert password_checks.count == checked


async def test_a_stranger_cannot_lock_a_customer_out_of_its_usual_address(
    engine: Engine, client: Customer, db: Database
) -> None:
    home = "198.51.100.20"
    assert (await http_php(engine, client, password=PASSWORD, address=home))[:2] == (200, "80")
    # Strangers guess, in parallel and from everywhere, far beyond every budget…
    stranger = [http_php(engine, client, password=WRONG, address=f"203.0.113.{i % 7}") for i in range(60)]
    assert {a[:2] for a in await asyncio.gather(*stranger)} == {(200, "82")}
    # … but a trusted pair has its own budget, which only someone at the customer's address can spend:
    # the customer's script, with its right password from its usual address, still sends.
    status, code, retry_after = await http_php(engine, client, password=PASSWORD, address=home)
    assert (status, code, retry_after) == (200, "80", None)
    # A new address of the customer's is not protected: the stranger spent the account's budget there.
    assert (await http_php(engine, client, password=PASSWORD, address="192.0.2.99"))[1] == "82"
    assert await db.fetchval("SELECT count(*) FROM sends") == 2


async def test_password_checks_run_in_a_bounded_pool(
    engine: Engine, client: Customer, stack_settings: Settings, password_checks: Checks
) -> None:
    # Right passwords from 12 addresses at once: every one is checked, never more at once than the pool.
    # Each address logged in once before, so each keeps its own budget: counted before it is checked, a
    # login from a new address takes a place in the account's budget across addresses, and more of them than
    # that budget overlapping (a loaded machine) are rightly refused beyond it.
    addresses = [f"198.51.100.{i}" for i in range(12)]
    for address in addresses:
        assert (await http_php(engine, client, password=PASSWORD, address=address))[:2] == (200, "80")
    password_checks.count = password_checks.most_at_once = 0
    logins = [http_php(engine, client, password=PASSWORD, address=address) for address in addresses]
    assert {a[:2] for a in await asyncio.gather(*logins)} == {(200, "80")}
    assert password_checks.count == len(addresses)
    assert password_checks.most_at_once <= stack_settings.password_workers


async def test_the_login_page_counts_before_it_checks(
    engine: Engine, client: Customer, stack_settings: Settings, password_checks: Checks
) -> None:
    browsers = [UiClient(engine) for _ in range(30)]
    try:
        for browser in browsers:
            await browser.get("/connexion")
        answers = await asyncio.gather(
            *(b.post("/connexion", {"email": client.account.email, "password": WRONG}) for b in browsers)
        )
        assert sorted({a.status for a in answers}) == [401, 429]
        assert password_checks.count <= stack_settings.login_max_failures
        # Throttled, the right password is not even checked.
        right = {"email": client.account.email, "password": PASSWORD}
        throttled = await browsers[0].post("/connexion", right)
        assert throttled.status == 429 and password_checks.count <= stack_settings.login_max_failures
    finally:
        for browser in browsers:
            await browser.close()


# --- the e-mail intake behind a relay ---------------------------------------------------------------------

RELAY = "127.0.0.1"  # the tests' SMTP client plays the README's Postfix relay on this machine


@pytest.fixture
async def relayed_engine(stack_settings: Settings, db: Database) -> AsyncIterator[Engine]:
    settings = dataclasses.replace(
        stack_settings, intake_address="message@vocalcast.test", mail_trusted_relays=(RELAY,), smtp_relay=""
    )
    running = Engine(settings)
    running.run_dialer = False
    async with running:
        yield running


def relay_mail(engine: Engine, who: Customer, password: str, *, client_ip: str) -> None:
    """A mail as the relay passes it on: its own Received header names the client it took it from."""
    message = EmailMessage()
    message["Received"] = (
        f"from mail.client.example (mail.client.example [{client_ip}]) by relay.vocalcast.test (Postfix) "
        "with ESMTPS id 4Q; Sat, 5 Dec 2026 10:00:00 +0100 (CET)"
    )
    message["From"] = who.account.email
    message["To"] = engine.settings.intake_address
    message["Subject"] = f"{password}:0612345678:{who.message.ref}:relayed"
    message.set_content("")
    with smtplib.SMTP("127.0.0.1", PORT_BASE + 25, timeout=10) as smtp:
        smtp.send_message(message)


async def test_behind_a_trusted_relay_a_stranger_cannot_block_the_customers_mail(
    relayed_engine: Engine, client: Customer, db: Database
) -> None:
    home = "198.51.100.30"
    await asyncio.to_thread(relay_mail, relayed_engine, client, PASSWORD, client_ip=home)
    assert await db.fetchval("SELECT count(*) FROM sends") == 1
    for i in range(12):
        await asyncio.to_thread(relay_mail, relayed_engine, client, WRONG, client_ip=f"203.0.113.{i}")
    clients = {r["client"] for r in await db.fetch("SELECT client FROM refused_requests WHERE code = '82'")}
    assert clients == {f"smtp:203.0.113.{i}" for i in range(12)}  # the real senders, not the relay
    await asyncio.to_thread(relay_mail, relayed_engine, client, PASSWORD, client_ip=home)
    assert await db.fetchval("SELECT count(*) FROM sends") == 2


async def test_an_untrusted_peer_cannot_choose_its_address_by_header(
    engine: Engine, client: Customer, db: Database
) -> None:
    # The same mail to an engine that trusts no relay: the Received header is the sender's own word.
    await asyncio.to_thread(relay_mail, engine, client, WRONG, client_ip="198.51.100.30")
    assert await db.fetchval("SELECT client FROM refused_requests") == "smtp:127.0.0.1"
