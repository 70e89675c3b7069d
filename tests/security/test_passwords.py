"""A new password — changed by the customer, reset by link, set by an operator — ends every web session
and revokes every API token, and the customer is told by e-mail; « mot de passe oublié » answers known
and unknown e-mails alike, in time too. On the real engine over HTTP (and the CLI in-process)."""

from __future__ import annotations

import asyncio
import re
import statistics
import time

import aiohttp
import pytest
from yarl import URL

from engine.app import Engine
from engine.cli import main
from engine.settings import Settings
from engine.store import Database
from engine.store.accounts import create_account
from engine.store.tokens import create_token
from engine.web.sessions import SESSION_COOKIE
from tests.integration.conftest import wait_for
from tests.integration.dialing import Customer
from tests.integration.uiclient import UiClient
from tests.security.conftest import PASSWORD, Sink

pytestmark = pytest.mark.integration
NEW = "un-tout-nouveau-secret-7"
CHANGED = "Votre mot de passe a été changé"


async def api_status(engine: Engine, token: str) -> int:
    url = f"http://127.0.0.1:{engine.http_port}/api/v1/account"
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        return resp.status


async def logged_in(browser: UiClient) -> bool:
    return URL((await browser.get("/parametres")).url).path == "/parametres"


class Holder:
    """Everything the old password opened: two browsers (one kept as a copied cookie) and two tokens."""

    def __init__(self, engine: Engine, who: Customer, db: Database) -> None:
        self.engine, self.who, self.db = engine, who, db
        self.browsers = [UiClient(engine), UiClient(engine)]
        self.tokens: list[str] = []
        self.copied_cookie = ""

    async def open(self) -> None:
        for browser in self.browsers:
            assert (await browser.login(self.who.account.email, PASSWORD)).url.endswith("/tableau-de-bord")
        cookie = self.browsers[0].http.cookie_jar.filter_cookies(URL(self.browsers[0].base))[SESSION_COOKIE]
        self.copied_cookie = cookie.value
        for label in ("cron", "crm"):
            self.tokens.append((await create_token(self.db, self.who.account.id, label=label)).secret)
        assert [await api_status(self.engine, t) for t in self.tokens] == [200, 200]

    async def all_ended(self) -> None:
        assert [await api_status(self.engine, t) for t in self.tokens] == [401, 401]
        assert not await logged_in(self.browsers[1])
        thief = UiClient(self.engine)
        try:
            thief.set_cookie(SESSION_COOKIE, self.copied_cookie)
            assert not await logged_in(thief)
        finally:
            await thief.close()

    async def close(self) -> None:
        for browser in self.browsers:
            await browser.close()


def told(sink: Sink, who: Customer, *, tokens: int) -> None:
    [mail] = sink.to(who.account.email, CHANGED)
    text = " ".join(mail.get_content().split())
    assert "toutes les sessions ouvertes sur votre espace privé ont été fermées" in text
    assert f"Vos {tokens} jetons d'API ont été révoqués" in text
    assert "mot de passe oublié" in text


async def test_a_password_change_ends_every_session_and_revokes_every_token(
    relayed: Engine, client: Customer, db: Database, sink: tuple[Sink, int]
) -> None:
    holder = Holder(relayed, client, db)
    try:
        await holder.open()
        changer = holder.browsers[0]
        await changer.get("/parametres")
        answer = await changer.post(
            "/parametres/mot-de-passe", {"current": PASSWORD, "password": NEW, "password2": NEW}
        )
        assert answer.url.endswith("/parametres") and answer.contains("Mot de passe changé")
        assert answer.contains("2 jeton(s) d'API révoqué(s)")
        await holder.all_ended()  # the changer's old cookie included
        assert await logged_in(changer)  # … which now holds a new session
        await wait_for(lambda: sink[0].to(client.account.email, CHANGED), what="the e-mail")
        told(sink[0], client, tokens=2)
    finally:
        await holder.close()


async def test_a_password_reset_ends_every_session_and_revokes_every_token(
    relayed: Engine,
    client: Customer,
    db: Database,
    sink: tuple[Sink, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    holder = Holder(relayed, client, db)
    fresh = UiClient(relayed)
    try:
        await holder.open()
        await fresh.get("/mot-de-passe-oublie")
        await fresh.post("/mot-de-passe-oublie", {"email": client.account.email})
        [mail] = await wait_for(lambda: sink[0].to(client.account.email, "Votre nouveau mot de passe"))
        found = re.search(r"/mot-de-passe/(\S+)", mail.get_content())
        assert found is not None
        path = "/mot-de-passe/" + found.group(1)
        await fresh.get(path)
        done = await fresh.post(path, {"password": NEW, "password2": NEW})
        assert done.contains("Votre mot de passe a été changé")
        logged = capsys.readouterr().err
        assert "/mot-de-passe/…" in logged and found.group(1) not in logged  # the link's token never logged
        await holder.all_ended()
        await wait_for(lambda: sink[0].to(client.account.email, CHANGED), what="the e-mail")
        told(sink[0], client, tokens=2)
    finally:
        await holder.close()
        await fresh.close()


async def test_an_operator_password_ends_every_session_and_revokes_every_token(  # noqa: PLR0917 - fixtures
    relayed: Engine,
    client: Customer,
    db: Database,
    sink: tuple[Sink, int],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    holder = Holder(relayed, client, db)
    try:
        await holder.open()
        monkeypatch.setenv("VOCALCAST_SMTP_RELAY", relayed.settings.smtp_relay)
        rc = await asyncio.to_thread(main, ["account", "password", "--account", client.account.email])
        assert rc == 0 and "new password of client@example.fr" in capsys.readouterr().out
        await holder.all_ended()
        told(sink[0], client, tokens=2)  # sent before the command ended
    finally:
        await holder.close()


async def test_reset_requests_take_as_long_for_known_and_unknown_emails(
    engine: Engine, db: Database, stack_settings: Settings
) -> None:
    rounds = 50
    secret = stack_settings.require("secret_key")
    for i in range(rounds):
        await create_account(db, f"client{i}@example.fr", secret_key=secret, password=PASSWORD)
    browser = UiClient(engine)
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    try:
        await browser.get("/mot-de-passe-oublie")
        for i in range(rounds):
            # Interleaved, each from its own address (the reset limit is per address and per client).
            for kind, email in (("known", f"client{i}@example.fr"), ("unknown", f"personne{i}@example.fr")):
                headers = {"X-Forwarded-For": f"198.51.{100 + (kind == 'known')}.{i}"}
                started = time.perf_counter()
                answer = await browser.post("/mot-de-passe-oublie", {"email": email}, headers=headers)
                timings[kind].append(time.perf_counter() - started)
                assert answer.status == 200 and answer.contains("Si un compte correspond")
        await engine.services.logins.settled()
        assert await db.fetchval("SELECT count(*) FROM password_resets") == rounds  # the work was done
    finally:
        await browser.close()
    known, unknown = statistics.median(timings["known"]), statistics.median(timings["unknown"])
    assert abs(known - unknown) < 0.020, (
        f"median known {known * 1000:.1f} ms, unknown {unknown * 1000:.1f} ms"
    )
