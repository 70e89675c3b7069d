"""A greeting recorded by phone (issue 17): whoever types a customer's personal code — guessed,
overheard — must not choose what the account's sends play first. The greeting waits in the library; the
account's default greeting stays as it was until the customer confirms the new one on the site (or through
the API), and an e-mail tells the customer at once. On the real engine: its recordings backend as the IVR
calls it, its pages and API over HTTP, its e-mails through the test relay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.app import Engine
from engine.domain.accounts import SendDefaults
from engine.services.sends import create_send
from engine.store import Database
from engine.store import accounts as accounts_store
from engine.store.tokens import create_token
from lab import tones
from tests.integration.conftest import wait_for
from tests.integration.dialing import Customer, customer_greeting, targets
from tests.integration.uiclient import UiClient
from tests.security.conftest import PASSWORD, Sink

pytestmark = pytest.mark.integration
SUBJECT = "Un message d'accueil a été enregistré par téléphone"


async def api(engine: Engine, token: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{engine.http_port}/api/v1{path}"
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs) as resp,
    ):
        return resp.status, await resp.json()


async def default_greeting(db: Database, who: Customer) -> Any:
    return (await accounts_store.get_account(db, who.account.id)).defaults.greeting_message_id


async def send_greeting(db: Database, engine: Engine, who: Customer) -> Any:
    """The greeting a send created now with the account's defaults (http.php, e-mail) would play."""
    account = await accounts_store.get_account(db, who.account.id)
    send = await create_send(
        db,
        engine.settings,
        account,
        message_ref=who.message.ref,
        targets=targets(["0612345678"]),
        origin="api",
    )
    return send.greeting_message_id


async def test_a_greeting_recorded_by_phone_waits_for_the_customers_confirmation(
    relayed: Engine, sink: tuple[Sink, int], client: Customer, db: Database, tmp_path: Path
) -> None:
    engine, mails = relayed, sink[0]
    own_ref = await customer_greeting(db, engine.settings, client, tmp_path)
    own = (await engine.services.messages.get(client.account.id, own_ref)).id
    await accounts_store.set_defaults(
        db, client.account.id, SendDefaults(greeting_enabled=True, greeting_message_id=own)
    )

    # Someone with the personal code records an advert as a greeting, by phone.
    raw = tones.write_wav(tmp_path / "take.wav", tones.sine(440.0, 3.0, 0.4))
    advert = await engine.services.recordings.save(client.account.id, raw, is_greeting=True)

    # It is in the library, waiting; the sends keep playing the customer's own greeting.
    assert await default_greeting(db, client) == own
    assert await send_greeting(db, engine, client) == own
    assert advert.is_greeting and advert.origin == "phone" and advert.greeting_pending

    # The customer is told at once, with how to confirm it or get rid of it.
    [mail] = await wait_for(lambda: mails.to(client.account.email, SUBJECT), what="the e-mail")
    body = mail.get_content()
    assert f"n° {advert.ref}" in body and "Messages enregistrés" in body and "code personnel" in body

    # The API shows it as waiting.
    token = (await create_token(db, client.account.id, label="t")).secret
    status, listed = await api(engine, token, "GET", f"/messages/{advert.ref}")
    assert (status, listed["greeting_pending"]) == (200, True)

    # The site says so on the messages page, with a button; a forged request (no token) changes nothing.
    browser = UiClient(engine)
    try:
        assert (await browser.login(client.account.email, PASSWORD)).url.endswith("/tableau-de-bord")
        page = await browser.get("/messages")
        assert page.contains(f"Le message d'accueil n° {advert.ref}")
        assert page.contains("enregistré par téléphone") and page.contains("attend votre confirmation")
        confirm = f"/messages/{advert.ref}/accueil/confirmer"
        assert f'action="{confirm}"' in page.text
        forged = await browser.post(confirm, csrf=False)
        assert forged.status == 403
        assert await default_greeting(db, client) == own

        # Confirmed by the customer: from now on it is the default greeting, and no longer waiting.
        done = await browser.post(confirm)
        assert done.status == 200 and done.url.endswith("/messages"), done.visible
        assert done.contains(f"Le message d'accueil n° {advert.ref} est désormais votre message d'accueil")
        assert not done.contains("attend votre confirmation")
    finally:
        await browser.close()
    assert await default_greeting(db, client) == advert.id
    assert await send_greeting(db, engine, client) == advert.id
    status, listed = await api(engine, token, "GET", f"/messages/{advert.ref}")
    assert (status, listed["greeting_pending"]) == (200, False)


async def test_a_phone_greeting_can_be_dismissed_or_confirmed_through_the_api(
    relayed: Engine, sink: tuple[Sink, int], client: Customer, db: Database, tmp_path: Path
) -> None:
    engine = relayed
    raw = tones.write_wav(tmp_path / "take.wav", tones.sine(440.0, 3.0, 0.4))
    first = await engine.services.recordings.save(client.account.id, raw, is_greeting=True)
    second = await engine.services.recordings.save(client.account.id, raw, is_greeting=True)
    assert await default_greeting(db, client) is None  # no greeting before: still none
    token = (await create_token(db, client.account.id, label="t")).secret

    # Dismissed: it stays in the library as an ordinary greeting, never the default.
    status, body = await api(engine, token, "POST", f"/messages/{first.ref}/dismiss-greeting")
    assert (status, body["greeting_pending"]) == (200, False), body
    assert await default_greeting(db, client) is None
    status, body = await api(engine, token, "POST", f"/messages/{first.ref}/confirm-greeting")
    assert (status, body["code"]) == (404, "not_found"), body  # nothing waits any more

    # Confirmed through the API: the default greeting.
    status, body = await api(engine, token, "POST", f"/messages/{second.ref}/confirm-greeting")
    assert (status, body["greeting_pending"]) == (200, False), body
    assert await default_greeting(db, client) == second.id
    # An uploaded message never waits: there is nothing to confirm.
    status, body = await api(engine, token, "POST", f"/messages/{client.message.ref}/confirm-greeting")
    assert status == 404, body

    # Choosing a waiting greeting as the default (« Paramètres », the API's defaults) confirms it too.
    third = await engine.services.recordings.save(client.account.id, raw, is_greeting=True)
    status, defaults = await api(engine, token, "GET", "/account/defaults")
    assert status == 200, defaults
    status, body = await api(
        engine, token, "PUT", "/account/defaults", json={**defaults, "greeting_ref": third.ref}
    )
    assert status == 200, body
    assert await default_greeting(db, client) == third.id
    status, body = await api(engine, token, "GET", f"/messages/{third.ref}")
    assert body["greeting_pending"] is False
