"""The customer's private space over real HTTP against the engine and the real PostgreSQL: sessions,
CSRF, throttling, password reset by e-mail, every page's validation in French, accounts kept apart,
nothing half-created; and, at scale, a bounded number of queries per page with no sequential scan."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import hashlib
import io
import json
import re
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import urlencode
from uuid import UUID

import aiohttp
import pytest
from aiosmtpd.smtp import SMTP

from engine.app import Engine
from engine.domain.accounts import PARIS
from engine.services.contacts_import import import_contacts_csv
from engine.services.messages import Messages
from engine.services.sends import create_send
from engine.settings import Settings
from engine.store import Database
from engine.store import contacts as contacts_store
from engine.store import groups as groups_store
from engine.store import messages as messages_store
from engine.store import sends as sends_store
from engine.store import stoplists as stoplists_store
from engine.store import tokens as tokens_store
from engine.store.accounts import (
    company_name,
    find_by_code,
    get_account,
    set_company_name,
    set_password,
)
from engine.store.credits import balance
from lab import tones
from tests.integration.conftest import wait_for
from tests.integration.dialing import Customer, customer, targets
from tests.integration.uiclient import UiClient, logged_queries

pytestmark = pytest.mark.integration
PASSWORD = "motdepasse-solide-42"


@pytest.fixture
async def engine(stack_settings: Settings, db: Database) -> AsyncIterator[Engine]:
    running = Engine(stack_settings)
    running.run_dialer = False
    running.run_mail = False
    async with running:
        yield running


@pytest.fixture
async def alice(db: Database, stack_settings: Settings, tmp_path: Path) -> Customer:
    (tmp_path / "a").mkdir()
    who = await customer(db, stack_settings, tmp_path / "a", credits=50, email="alice@example.fr")
    await set_password(db, who.account.id, PASSWORD)
    return who


@pytest.fixture
async def browser(engine: Engine) -> AsyncIterator[UiClient]:
    client = UiClient(engine)
    yield client
    await client.close()


PAGES = [
    "/tableau-de-bord",
    "/messages",
    "/messages/nouveau",
    "/envoi/simple",
    "/envoi/contact",
    "/envoi/groupe",
    "/contacts",
    "/contacts/groupes",
    "/contacts/transfert",
    "/historique",
    "/parametres",
    "/parametres/donnees/numero",
    "/parametres/donnees/supprimer-compte",
]


async def test_every_page_answers_in_french(browser: UiClient, alice: Customer) -> None:
    for path in PAGES:
        answer = await browser.get(path)
        assert answer.url.endswith("/connexion?suite=" + path), answer.url
    answer = await browser.login(alice.account.email, PASSWORD)
    assert answer.status == 200 and answer.url.endswith("/tableau-de-bord"), (answer.status, answer.url)
    for path in PAGES:
        answer = await browser.get(path)
        assert answer.status == 200, (path, answer.status, answer.text[-2000:])
        assert '<html lang="fr">' in answer.text
        assert answer.headers["Cache-Control"] == "no-store"
        assert "Content-Security-Policy" in answer.headers and "Mode démonstration" not in answer.text
    # Demo mode shows on every page (an engine of its own, started in demo mode).
    demo = Engine(dataclasses.replace(browser.engine.settings, demo=True, http_port=0, node="test-demo"))
    demo.run_dialer = demo.run_mail = demo.run_ivr = False
    async with demo:
        visitor = UiClient(demo)
        try:
            await visitor.login(alice.account.email, PASSWORD)
            for path in PAGES:
                assert (await visitor.get(path)).contains("Mode démonstration : les appels aboutissent"), path
        finally:
            await visitor.close()


# --- sessions, CSRF, throttling ---------------------------------------------------------------------


async def test_login_csrf_cookie_logout(browser: UiClient, alice: Customer, engine: Engine) -> None:
    await browser.get("/connexion")
    forged = await browser.post(
        "/connexion", {"email": alice.account.email, "password": PASSWORD}, csrf=False
    )
    assert forged.status == 403 and forged.contains("Formulaire expiré")
    answer = await browser.post("/connexion", {"email": alice.account.email, "password": PASSWORD})
    assert answer.url.endswith("/tableau-de-bord")
    cookies = {c.key: c for c in browser.http.cookie_jar}
    session = cookies["vocalcast_session"]
    assert session["httponly"] and session["samesite"] == "Lax" and not session["secure"]
    stolen = session.value
    # A POST without the token is refused even with a valid session: nothing changes.
    refused = await browser.post("/contacts/groupes", {"action": "create", "name": "Pirates"}, csrf=False)
    assert refused.status == 403
    assert "Pirates" not in (await browser.get("/contacts/groupes")).text
    # A tampered cookie is no session at all.
    browser.set_cookie("vocalcast_session", stolen[:-2] + "xx")
    assert (await browser.get("/parametres")).url.endswith("/connexion?suite=/parametres")
    browser.set_cookie("vocalcast_session", stolen)
    assert (await browser.get("/parametres")).status == 200
    out = await browser.post("/deconnexion")
    assert out.url.endswith("/connexion") and out.contains("Vous êtes déconnecté")
    # Logged out server-side: the copied cookie opens nothing any more.
    browser.set_cookie("vocalcast_session", stolen)
    assert (await browser.get("/tableau-de-bord")).url.endswith("/connexion?suite=/tableau-de-bord")


def test_cookies_are_secure_behind_https(stack_settings: Settings) -> None:
    from engine.web.sessions import cookie_options

    assert cookie_options(dataclasses.replace(stack_settings, public_url="https://vocal.example.fr"))[
        "secure"
    ]
    assert not cookie_options(dataclasses.replace(stack_settings, public_url=""))["secure"]


async def test_failed_logins_are_throttled_across_interfaces(
    browser: UiClient, alice: Customer, engine: Engine
) -> None:
    for _ in range(engine.settings.login_max_failures):
        wrong = await browser.login(alice.account.email, "mauvais-mot-de-passe")
        assert wrong.status == 401 and wrong.contains("Adresse e-mail ou mot de passe incorrect")
    blocked = await browser.login(alice.account.email, PASSWORD)
    assert blocked.status == 429 and blocked.contains("Trop de tentatives")
    # The same window as http.php: the manual's interface refuses this account too (82).
    query = urlencode({"email": alice.account.email, "pass": PASSWORD, "numero": "0612345678", "ref": "1"})
    async with browser.http.get(f"{browser.base}/http.php?{query}") as resp:
        assert await resp.text() == "82" and "Retry-After" in resp.headers


# --- password reset by e-mail ---------------------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(BytesParser(policy=policy.default).parsebytes(envelope.content))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
async def relay_engine(stack_settings: Settings, db: Database) -> AsyncIterator[tuple[Engine, Sink]]:
    sink = Sink()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(sink), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = dataclasses.replace(
        stack_settings, smtp_relay=f"127.0.0.1:{port}", mail_from="espace@vocal.test"
    )
    running = Engine(settings)
    running.run_dialer = False
    running.run_mail = False
    async with running:
        yield running, sink
    server.close()
    await server.wait_closed()


async def test_forgotten_password_by_one_time_link(
    relay_engine: tuple[Engine, Sink], alice: Customer, db: Database
) -> None:
    engine, sink = relay_engine
    old = UiClient(engine)
    fresh = UiClient(engine)
    try:
        await old.login(alice.account.email, PASSWORD)
        assert (await old.get("/parametres")).status == 200
        await fresh.get("/mot-de-passe-oublie")
        unknown = await fresh.post("/mot-de-passe-oublie", {"email": "personne@example.fr"})
        await fresh.get("/mot-de-passe-oublie")
        known = await fresh.post("/mot-de-passe-oublie", {"email": alice.account.email.upper()})
        # The same answer whether the address is a customer's or not.
        assert unknown.status == known.status == 200
        assert unknown.contains("Si un compte correspond") and known.contains("Si un compte correspond")
        await wait_for(lambda: sink.messages, what="the reset e-mail")
        assert len(sink.messages) == 1
        mail = sink.messages[0]
        assert mail["To"] == alice.account.email and mail["From"] == "espace@vocal.test"
        link = re.search(r"http://\S+/mot-de-passe/(\S+)", mail.get_content())
        assert link is not None
        path = "/mot-de-passe/" + link.group(1)
        token_digest = hashlib.sha256(link.group(1).encode()).hexdigest()
        assert (
            await db.fetchval("SELECT count(*) FROM password_resets WHERE token_sha256 = $1", token_digest)
            == 1
        )
        assert (await fresh.get(path)).status == 200
        mismatch = await fresh.post(
            path, {"password": "nouveau-mot-de-passe-1", "password2": "autre-chose-123"}
        )
        assert mismatch.status == 400 and mismatch.contains("ne sont pas identiques")
        weak = await fresh.post(path, {"password": "court", "password2": "court"})
        assert weak.status == 400 and weak.contains("Mot de passe refusé")
        done = await fresh.post(
            path, {"password": "nouveau-mot-de-passe-1", "password2": "nouveau-mot-de-passe-1"}
        )
        assert done.url.endswith("/connexion") and done.contains("Votre mot de passe a été changé")
        assert (await fresh.get(path)).status == 410  # used once
        # Sessions opened before the reset are closed.
        assert (await old.get("/parametres")).url.endswith("/connexion?suite=/parametres")
        assert (await fresh.login(alice.account.email, "nouveau-mot-de-passe-1")).url.endswith(
            "/tableau-de-bord"
        )
    finally:
        await old.close()
        await fresh.close()


# --- accounts kept apart ---------------------------------------------------------------------------------


@pytest.fixture
async def bob(db: Database, stack_settings: Settings, tmp_path: Path) -> Customer:
    (tmp_path / "b").mkdir()
    who = await customer(db, stack_settings, tmp_path / "b", credits=50, email="bob@example.fr")
    # A second message, so that bob has a reference alice does not.
    wav = tmp_path / "b" / "second.wav"
    tones.write_wav(wav, tones.sine(500.0, 1.5, 0.4))
    await Messages(db, stack_settings).add(who.account.id, wav, title="Second", origin="file")
    return who


async def test_another_accounts_urls_are_refused(
    browser: UiClient, alice: Customer, bob: Customer, db: Database, stack_settings: Settings
) -> None:
    bob_id = bob.account.id
    later = datetime.now(UTC) + timedelta(days=2)
    send = await create_send(
        db,
        stack_settings,
        bob.account,
        message_ref=2,
        targets=targets(["0612345678"]),
        origin="web",
        at=later,
    )
    contact = await contacts_store.create_contact(db, bob_id, phone="0611111111", allow_international=False)
    group = await groups_store.create_group(db, bob_id, "Clients de Bob")
    token = await tokens_store.create_token(db, bob_id, label="bob")
    await browser.login(alice.account.email, PASSWORD)
    for path in (
        f"/historique/{send.id}",
        f"/historique/{send.id}/progression.json",
        f"/historique/{send.id}/resultats.csv",
        "/messages/2/ecoute",
        f"/contacts/{contact.id}",
        f"/contacts/groupes/{group.id}",
        f"/envoi/groupe?groupe={group.id}",
        "/historique/not-a-uuid",
    ):
        answer = await browser.get(path)
        assert answer.status == 404, (path, answer.status)
        assert bob.account.email not in answer.text and "Clients de Bob" not in answer.text
    for path, form in (
        (f"/historique/{send.id}/action", {"action": "cancel"}),
        ("/messages/2/supprimer", {}),
        ("/messages/2/renommer", {"title": "volé"}),
        (f"/contacts/{contact.id}", {"action": "delete"}),
        (f"/contacts/groupes/{group.id}", {"selected": str(contact.id)}),
        (f"/parametres/jetons/{token.token.id}/revoquer", {}),
    ):
        await browser.get("/tableau-de-bord")
        assert (await browser.post(path, form)).status == 404, path
    await browser.get("/contacts")
    await browser.post("/contacts", [("action", "delete"), ("selected", str(contact.id))])
    await browser.get("/contacts/groupes")
    await browser.post("/contacts/groupes", {"action": "delete", "group_id": str(group.id)})
    await browser.get("/envoi/groupe")
    await browser.post("/envoi/groupe", [("groups", str(group.id)), ("scope", "all"), ("action", "preview")])
    counters = await browser.get(f"/historique/progression.json?ids={send.id}")
    assert counters.text == "[]"
    # Bob's things are all still there, untouched.
    assert (await sends_store.get_send(db, send.id)).status.value == "scheduled"
    assert (await messages_store.get_message(db, bob_id, 2)).title == "Second"
    assert (await contacts_store.get_contact(db, bob_id, contact.id)).id == contact.id
    assert (await groups_store.get_group(db, bob_id, group.id)).name == "Clients de Bob"
    assert (await tokens_store.list_tokens(db, bob_id))[0].active
    # And none of it shows on alice's pages.
    for path in (
        "/historique",
        "/messages",
        "/contacts",
        "/contacts/groupes",
        "/parametres",
        "/envoi/groupe",
    ):
        text = (await browser.get(path)).text
        assert "Second" not in text and "Clients de Bob" not in text and str(send.id) not in text, path


# --- sends -------------------------------------------------------------------------------------------------

MESSY = "06 12 34 56 78\n0612345678\n+33 6 12 34 56 79;01.45.67.89.03\n0899 12 34 56\nbonjour\n612345680\n"


async def test_send_simple_report_then_confirm_once(browser: UiClient, alice: Customer, db: Database) -> None:
    await browser.login(alice.account.email, PASSWORD)
    await browser.get("/envoi/simple")
    form = {"numbers": MESSY, "message": "1", "mode": "now", "comment": "Soldes", "retries": "0",
            "retry_minutes": "30", "purpose": "information", "action": "preview"}  # fmt: skip
    review = await browser.post("/envoi/simple", form)
    assert review.status == 200, review.text[-1500:]
    assert (
        review.contains("4 numéros acceptés")
        and review.contains("2 refusés")
        and review.contains("1 doublon")
    )
    assert review.contains("Numéro surtaxé") and review.contains("Le numéro contient des lettres")
    assert review.contains("Déjà présent ligne 1")
    assert review.contains("Cet envoi réservera 4 crédits")
    assert await db.fetchval("SELECT count(*) FROM sends") == 0  # the review creates nothing
    assert (await balance(db, alice.account.id)).available == 50
    key = re.search(r'name="idempotency_key" value="([^"]+)"', review.text)
    assert key is not None
    confirm = {**form, "action": "confirm", "idempotency_key": key.group(1)}
    first = await browser.post("/envoi/simple", confirm)
    assert re.search(r"/historique/[0-9a-f-]{36}$", first.url), first.url
    assert first.contains("Envoi lancé : 4 numéro(s)")
    again = await browser.post("/envoi/simple", confirm)  # a double click
    assert again.url == first.url
    sends = await sends_store.list_sends(db, alice.account.id)
    assert len(sends) == 1 and sends[0].origin == "web" and sends[0].comment == "Soldes"
    assert sends[0].recipients_total == 4 and (await balance(db, alice.account.id)).available == 46


async def test_deferred_send_is_scheduled_in_paris_time(
    browser: UiClient, alice: Customer, db: Database
) -> None:
    await browser.login(alice.account.email, PASSWORD)
    await browser.get("/envoi/simple")
    at = (datetime.now(UTC) + timedelta(days=3)).astimezone(PARIS).replace(hour=15, minute=30)
    form = {"numbers": "0612345678", "message": "1", "mode": "later", "at": at.strftime("%Y-%m-%dT%H:%M"),
            "retries": "0", "retry_minutes": "30", "purpose": "information", "action": "preview"}  # fmt: skip
    review = await browser.post("/envoi/simple", form)
    assert review.contains(f"Différé, le {at:%d/%m/%Y} à 15h30 (heure de Paris)")
    assert review.contains("Programmer l'envoi")
    key = re.search(r'name="idempotency_key" value="([^"]+)"', review.text)
    assert key is not None
    done = await browser.post("/envoi/simple", {**form, "action": "confirm", "idempotency_key": key.group(1)})
    assert done.contains("Envoi programmé")
    send = (await sends_store.list_sends(db, alice.account.id))[0]
    assert send.status.value == "scheduled" and send.start_at == at.replace(second=0, microsecond=0)
    assert done.contains("État : Programmé") and done.contains("Annuler l'envoi")
    cancelled = await browser.post(f"/historique/{send.id}/action", {"action": "cancel"})
    assert cancelled.contains("Envoi annulé.") and cancelled.contains("État : Annulé")
    assert (await balance(db, alice.account.id)).available == 50
    again = await browser.post(f"/historique/{send.id}/action", {"action": "pause"})
    assert again.contains("Impossible : cet envoi est « annulé »")


async def test_send_errors_are_shown_beside_their_fields(
    browser: UiClient, alice: Customer, db: Database
) -> None:
    await browser.login(alice.account.email, PASSWORD)
    await browser.get("/envoi/simple")
    base = {"numbers": "0612345678", "message": "1", "mode": "now", "retries": "0", "retry_minutes": "30",
            "purpose": "information", "action": "preview"}  # fmt: skip
    cases = [
        ({"transfer": "3615"}, "transfer", "Numéro de transfert refusé"),
        ({"mode": "later", "at": "2001-01-01T10:00"}, "at", "déjà passée"),
        ({"mode": "later", "at": "2031-03-30T02:30"}, "at", "n'existe pas à Paris"),
        ({"retries": "11"}, "retries", "entre 0 et 10"),
        ({"retries": "2", "retry_minutes": "0"}, "retry_minutes", "entre 1 minute et 24 heures"),
        ({"message": "99"}, "message", "La référence du message n'est pas valide"),
        ({"sender": "0162000000"}, "sender", "n'est pas déclaré et vérifié"),
        ({"greeting": "on"}, "greeting_ref", "Choisissez le message d'accueil"),
        ({"numbers": "bonjour"}, "numbers", "Aucun numéro valable"),
        (
            {"numbers": "\n".join(f"06{i:08d}" for i in range(12000000, 12000051))},
            "credits",
            "Crédits insuffisants",
        ),
        ({"drop": "on", "numbers": "0145678903"}, "drop", "que vers des mobiles"),
        ({"purpose": "commercial"}, "purpose", "le nom de votre entreprise n'est pas enregistré"),  # 98
        ({"purpose": "pub"}, "purpose", "Indiquez l'objet de l'envoi"),
        ({"purpose": ""}, "purpose", "Indiquez l'objet de l'envoi"),  # every web send states it
    ]
    for change, field, text in cases:
        answer = await browser.post("/envoi/simple", {**base, **change})
        assert answer.status == 400, (change, answer.status)
        assert answer.contains(text), (change, text)
        if field not in {"credits"}:
            assert f'id="{field}-error"' in answer.text, (change, field)
        await browser.get("/envoi/simple")
    # The company named, a commercial send still needs a usable presented number (98 too).
    await set_company_name(db, alice.account.id, "Acme Énergie")
    answer = await browser.post("/envoi/simple", {**base, "purpose": "commercial"})
    assert answer.status == 400 and answer.contains("doit présenter un numéro émetteur vérifié")
    assert 'id="sender-error"' in answer.text
    assert await db.fetchval("SELECT count(*) FROM sends") == 0


async def test_send_to_a_contact_saves_it_with_the_send_or_not_at_all(
    browser: UiClient, alice: Customer, db: Database
) -> None:
    await browser.login(alice.account.email, PASSWORD)
    await browser.get("/contacts/groupes")
    await browser.post("/contacts/groupes", {"action": "create", "name": "Clients"})
    group = await groups_store.group_by_name(db, alice.account.id, "Clients")
    form = {"societe": "Boulangerie Dupont", "nom": "Dupont", "prenom": "Hélène", "phone": "06 98 76 54 32",
            "group_id": str(group.id), "message": "1", "mode": "now", "retries": "0",
            "retry_minutes": "30", "purpose": "information"}  # fmt: skip
    await browser.get("/envoi/contact")
    review = await browser.post("/envoi/contact", {**form, "action": "preview"})
    assert review.status == 200 and review.contains("Hélène Dupont (Boulangerie Dupont) — 06 98 76 54 32")
    key = re.search(r'name="idempotency_key" value="([^"]+)"', review.text)
    assert key is not None
    # The credits go away between the review and the confirmation: neither contact nor send is kept.
    await db.execute("UPDATE accounts SET balance = 0 WHERE id = $1", alice.account.id)
    refused = await browser.post(
        "/envoi/contact", {**form, "action": "confirm", "idempotency_key": key.group(1)}
    )
    assert refused.status == 400 and refused.contains("Crédits insuffisants")
    assert await contacts_store.count_contacts(db, alice.account.id) == 0
    await db.execute("UPDATE accounts SET balance = 5 WHERE id = $1", alice.account.id)
    done = await browser.post(
        "/envoi/contact", {**form, "action": "confirm", "idempotency_key": key.group(1)}
    )
    assert "/historique/" in done.url
    page = await contacts_store.list_contacts(db, alice.account.id)
    assert [(c.prenom, c.e164, [g.name for g in c.groups]) for c in page.contacts] == [
        ("Hélène", "+33698765432", ["Clients"])
    ]
    send = (await sends_store.list_sends(db, alice.account.id))[0]
    rows = await sends_store.recipients(db, send.id)
    assert rows[0]["e164"] == "+33698765432"


async def test_send_to_part_of_a_group(browser: UiClient, alice: Customer, db: Database) -> None:
    account_id = alice.account.id
    group = await groups_store.create_group(db, account_id, "Équipe")
    other = await groups_store.create_group(db, account_id, "Vide")
    ids = []
    for i, phone in enumerate(("0611000001", "0611000002", "0611000003")):
        contact = await contacts_store.create_contact(
            db, account_id, phone=phone, allow_international=False, nom=f"N{i}", group_ids=[group.id]
        )
        ids.append(contact.id)
    await browser.login(alice.account.email, PASSWORD)
    await browser.get(f"/envoi/groupe?groupe={group.id}")
    base = [
        ("message", "1"),
        ("mode", "now"),
        ("retries", "0"),
        ("retry_minutes", "30"),
        ("purpose", "information"),
    ]
    empty = await browser.post(
        "/envoi/groupe", [("groups", str(other.id)), ("scope", "all"), ("action", "preview"), *base]
    )
    assert empty.status == 400 and empty.contains("Le groupe de contacts est vide")
    listing = await browser.post(
        "/envoi/groupe", [("groups", str(group.id)), ("scope", "part"), ("action", "members"), *base]
    )
    assert listing.contains("06 11 00 00 02")
    chosen = [
        ("groups", str(group.id)),
        ("scope", "part"),
        ("members", str(ids[0])),
        ("members", str(ids[2])),
    ]
    review = await browser.post("/envoi/groupe", [*chosen, ("action", "preview"), *base])
    assert review.status == 200 and review.contains("2 numéros à appeler")
    key = re.search(r'name="idempotency_key" value="([^"]+)"', review.text)
    assert key is not None
    await browser.post(
        "/envoi/groupe", [*chosen, ("action", "confirm"), ("idempotency_key", key.group(1)), *base]
    )
    send = (await sends_store.list_sends(db, account_id))[0]
    assert sorted(r["e164"] for r in await sends_store.recipients(db, send.id)) == [
        "+33611000001",
        "+33611000003",
    ]


# --- messages, contacts, settings ---------------------------------------------------------------------


async def test_messages_upload_rename_and_delete_in_use(
    browser: UiClient, alice: Customer, db: Database, stack_settings: Settings, tmp_path: Path
) -> None:
    await browser.login(alice.account.email, PASSWORD)
    await browser.get("/messages/nouveau")
    bad = aiohttp.FormData()
    bad.add_field("csrf", browser.csrf)
    bad.add_field("title", "")
    bad.add_field("file", b"ceci n'est pas un son", filename="notes.mp3", content_type="audio/mpeg")
    refused = await browser.post("/messages/nouveau", bad, csrf=False)
    assert refused.status == 400 and 'id="file-error"' in refused.text
    assert len(await messages_store.list_messages(db, alice.account.id)) == 1  # nothing stored
    wav = tmp_path / "accueil.wav"
    tones.write_wav(wav, tones.sine(600.0, 1.5, 0.4))
    good = aiohttp.FormData()
    good.add_field("csrf", browser.csrf)
    good.add_field("title", "Accueil")
    good.add_field("greeting", "on")
    good.add_field("file", wav.read_bytes(), filename="accueil.wav", content_type="audio/wav")
    added = await browser.post("/messages/nouveau", good, csrf=False)
    assert added.url.endswith("/messages") and added.contains("Message d'accueil enregistré : référence n° 2")
    listen = await browser.http.get(browser.base + "/messages/2/ecoute")
    assert listen.status == 200 and (await listen.read())[:4] == b"RIFF"
    renamed = await browser.post("/messages/2/renommer", {"title": "   "})
    assert renamed.status == 400 and renamed.contains("Le titre doit compter de 1 à 120 caractères")
    await browser.post("/messages/2/renommer", {"title": "Accueil été"})
    assert (await messages_store.get_message(db, alice.account.id, 2)).title == "Accueil été"
    later = datetime.now(UTC) + timedelta(days=1)
    await create_send(db, stack_settings, alice.account, message_ref=1, targets=targets(["0612345678"]),
                      origin="web", at=later)  # fmt: skip
    in_use = await browser.post("/messages/1/supprimer")
    assert in_use.status == 409 and in_use.contains("utilisé par un envoi programmé")
    assert (await browser.post("/messages/2/supprimer")).contains("Message n° 2 supprimé")


async def test_contacts_entry_groups_and_cp1252_import(
    browser: UiClient, alice: Customer, db: Database
) -> None:
    await browser.login(alice.account.email, PASSWORD)
    await browser.get("/contacts")
    bad = await browser.post("/contacts", {"action": "add", "nom": "x" * 101, "phone": "06 12"})
    assert bad.status == 400 and 'id="nom-error"' in bad.text and 'id="phone-error"' in bad.text
    assert bad.contains("Numéro trop court")
    assert await contacts_store.count_contacts(db, alice.account.id) == 0
    await browser.post(
        "/contacts", {"action": "add", "nom": "Martin", "prenom": "Zoé", "phone": "0612345678"}
    )
    twice = await browser.post("/contacts", {"action": "add", "nom": "Autre", "phone": "06 12 34 56 78"})
    assert twice.status == 400 and twice.contains("Ce numéro figure déjà dans vos contacts")
    csv_text = "Société;Nom;Prénom;Téléphone;Groupe\r\nCafé Noël;Lefèvre;Anaïs;06 01 02 03 04;Clients été\r\n"
    csv_text += ";Durand;;0612345678;\r\n;;;0899123456;\r\n"
    form = aiohttp.FormData()
    await browser.get("/contacts/transfert")
    form.add_field("csrf", browser.csrf)
    form.add_field("file", csv_text.encode("cp1252"), filename="contacts.csv", content_type="text/csv")
    report = await browser.post("/contacts/transfert", form, csrf=False)
    assert report.status == 200, report.text[-800:]
    assert report.contains("1 contact créé") and report.contains("1 contact déjà connu")
    assert (
        report.contains("1 groupe créé")
        and report.contains("1 ligne refusée")
        and report.contains("Numéro surtaxé")
    )
    search = await browser.get("/contacts?q=lefevre")
    assert search.contains("Anaïs") and search.contains("Café Noël") and search.contains("Clients été")
    group = await groups_store.group_by_name(db, alice.account.id, "Clients été")
    await browser.get("/contacts/groupes")
    renamed = await browser.post(
        "/contacts/groupes", {"action": "rename", "group_id": str(group.id), "name": ""}
    )
    assert renamed.status == 400 and renamed.contains("Le nom du groupe doit compter")
    await browser.post(
        "/contacts/groupes", {"action": "rename", "group_id": str(group.id), "name": "Clients hiver"}
    )
    members = await browser.get(f"/contacts/groupes/{group.id}")
    assert members.contains("Groupe « Clients hiver » : 1 contact")


async def test_stop_list_import_page(
    browser: UiClient, alice: Customer, db: Database, stack_settings: Settings
) -> None:
    """Issue 18: the customer imports its stop list on « Transfert » (clear or hashed numbers), through the
    service behind POST /api/v1/account/stoplist, and reads the counts in French (404 before)."""
    await browser.login(alice.account.email, PASSWORD)
    page = await browser.get("/contacts/transfert")
    assert page.contains("Importer une liste d'opposition")
    hashed = hashlib.sha256(b"+33622222222").hexdigest()
    text = f"numéro;nom\r\n06 11 11 11 11;Dupont\r\n{hashed};\r\nbonjour\r\n+33611111111;\r\n"

    def form(data: bytes, csrf: str) -> aiohttp.FormData:
        out = aiohttp.FormData()
        out.add_field("csrf", csrf)
        out.add_field("file", data, filename="opposition.csv", content_type="text/csv")
        return out

    forged = await browser.post("/contacts/opposition", form(text.encode("cp1252"), "x"), csrf=False)
    assert forged.status == 403
    numbers = ["+33611111111", "+33622222222", "+33633333333"]
    key = stack_settings.require("secret_key")
    assert await stoplists_store.stopped(db, alice.account.id, numbers, key=key) == set()
    report = await browser.post("/contacts/opposition", form(text.encode("cp1252"), browser.csrf), csrf=False)
    assert report.status == 200, report.text[-800:]
    assert report.contains("5 lignes lues")
    assert report.contains("2 numéros ajoutés à votre liste d'opposition")
    assert report.contains("1 numéro déjà sur la liste ou en double")
    assert report.contains("2 lignes refusées") and report.contains("bonjour")
    stopped = await stoplists_store.stopped(db, alice.account.id, numbers, key=key)
    assert stopped == {"+33611111111", "+33622222222"}
    binary = await browser.post("/contacts/opposition", form(b"\x00\x01\x02", browser.csrf), csrf=False)
    assert binary.status == 400 and 'id="stopfile-error"' in binary.text


async def test_settings_purpose_and_company_name(browser: UiClient, alice: Customer, db: Database) -> None:
    """Issue 18: the customer sets the purpose of its e-mail and HTTP sends and the company its commercial
    calls name on « Paramètres », under the CLI's rule, refusals in French (no such form before: 404)."""
    await browser.login(alice.account.email, PASSWORD)
    page = await browser.get("/parametres")
    assert page.contains("Envois commerciaux")
    assert 'id="f-purpose-information" name="purpose" value="information" checked' in page.text
    nameless = await browser.post("/parametres/entreprise", {"company_name": " ", "purpose": "commercial"})
    assert nameless.status == 400 and 'id="company_name-error"' in nameless.text
    assert nameless.contains("Indiquez d'abord le nom de votre entreprise")
    assert (await get_account(db, alice.account.id)).default_purpose == "information"
    named = await browser.post(
        "/parametres/entreprise", {"company_name": "Acme  Énergie", "purpose": "commercial"}
    )
    assert named.contains("Objet des envois et nom de l'entreprise enregistrés")
    assert 'name="company_name" type="text" value="Acme Énergie"' in named.text
    assert 'id="f-purpose-commercial" name="purpose" value="commercial" checked' in named.text
    assert (await get_account(db, alice.account.id)).default_purpose == "commercial"
    removed = await browser.post("/parametres/entreprise", {"company_name": "", "purpose": "commercial"})
    assert removed.status == 400 and removed.contains("tant que vos envois sont commerciaux par défaut")
    assert await company_name(db, alice.account.id) == "Acme Énergie"
    odd = await browser.post("/parametres/entreprise", {"company_name": "Acme", "purpose": "pub"})
    assert odd.status == 400 and 'id="purpose-error"' in odd.text
    back = await browser.post("/parametres/entreprise", {"company_name": "", "purpose": "information"})
    assert back.contains("enregistrés") and await company_name(db, alice.account.id) is None
    assert (await get_account(db, alice.account.id)).default_purpose == "information"


async def test_settings_defaults_senders_tokens_password_code(
    browser: UiClient, alice: Customer, db: Database
) -> None:
    await browser.login(alice.account.email, PASSWORD)
    await browser.get("/parametres")
    bad = await browser.post("/parametres/options", {"retries": "12", "retry_minutes": "30", "transfer": ""})
    assert bad.status == 400 and 'id="retries-error"' in bad.text
    transfer = await browser.post(
        "/parametres/options", {"retries": "1", "retry_minutes": "30", "transfer": "3615"}
    )
    assert transfer.status == 400 and 'id="transfer-error"' in transfer.text
    ok = await browser.post(
        "/parametres/options", {"retries": "2", "retry_minutes": "45", "transfer": "01 45 67 89 03"}
    )
    assert ok.contains("Options d'envoi par défaut enregistrées")
    account = await get_account(db, alice.account.id)
    assert account.defaults.retries == 2 and account.defaults.retry_interval_s == 2700
    assert account.defaults.transfer_number == "+33145678903"
    form = await browser.get("/envoi/simple")  # the defaults prefill the send form
    assert 'name="transfer" type="tel" value="01 45 67 89 03"' in form.text
    declared = await browser.post("/parametres/emetteurs", {"number": "0162000001"})
    assert declared.contains("En attente de vérification")
    mobile = await browser.post("/parametres/emetteurs", {"number": "12"})
    assert mobile.status == 400 and 'id="number-error"' in mobile.text
    created = await browser.post("/parametres/jetons", {"label": "Mon CRM"})
    secret = re.search(r'<code class="token" id="new-token">(vc_[^<]+)</code>', created.text)
    assert secret is not None
    assert (await tokens_store.authenticate(db, secret.group(1))) is not None
    assert secret.group(1) not in (await browser.get("/parametres")).text  # shown once
    token_id = (await tokens_store.list_tokens(db, alice.account.id))[0].id
    await browser.post(f"/parametres/jetons/{token_id}/revoquer")
    assert (await tokens_store.authenticate(db, secret.group(1))) is None
    wrong = await browser.post(
        "/parametres/mot-de-passe",
        {"current": "faux", "password": "tout-nouveau-42", "password2": "tout-nouveau-42"},
    )
    assert wrong.status == 400 and wrong.contains("Mot de passe actuel incorrect")
    changed = await browser.post(
        "/parametres/mot-de-passe",
        {"current": PASSWORD, "password": "tout-nouveau-42", "password2": "tout-nouveau-42"},
    )
    assert changed.contains("Mot de passe changé")
    code_page = await browser.post("/parametres/code")
    code = re.search(r'<strong class="code">(\d{8})</strong>', code_page.text)
    assert code is not None
    secret_key = browser.engine.settings.require("secret_key")
    assert (await find_by_code(db, code.group(1), secret_key=secret_key)).id == alice.account.id  # type: ignore[union-attr]


# --- at scale: bounded queries, no sequential scan --------------------------------------------------------

LARGE_TABLES = {
    "contacts", "contact_groups", "group_members", "sends", "send_recipients", "attempts", "credit_ledger",
    "messages", "web_sessions", "api_tokens", "sender_numbers", "rate_events", "accounts",
}  # fmt: skip
MAX_QUERIES_PER_PAGE = 12


def _seq_scans(plan: object) -> list[str]:
    found = []
    if isinstance(plan, dict):
        if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") in LARGE_TABLES:
            found.append(str(plan["Relation Name"]))
        for value in plan.values():
            found += _seq_scans(value)
    elif isinstance(plan, list):
        for value in plan:
            found += _seq_scans(value)
    return found


async def _populate(db: Database, settings: Settings, who: Customer, other: Customer) -> tuple[UUID, int]:
    """100,000 contacts (a group of 50,000), a 10,000-recipient send with outcomes and attempts."""
    lines = ["Société;Nom;Prénom;Téléphone;Groupe"]
    for i in range(100_000):
        lines.append(
            f"Société {i % 997};Nom{i:06d};Prénom{i % 313};06{20000000 + i:08d};{'Grand' if i % 2 else ''}"
        )
    report = await import_contacts_csv(
        db, who.account.id, "\r\n".join(lines).encode(), allow_international=False
    )
    assert report.imported == 100_000
    await import_contacts_csv(
        db, other.account.id, b"Nom;Telephone\r\nAutre;0611223344\r\n", allow_international=False
    )
    await db.execute("UPDATE accounts SET balance = 20000 WHERE id = $1", who.account.id)
    numbers = [f"07{30000000 + i:08d}" for i in range(10_000)]
    big = await create_send(db, settings, who.account, message_ref=1, targets=targets(numbers), origin="web")
    for n in range(3):  # a little history of the other account too
        await create_send(
            db, settings, other.account, message_ref=1, targets=targets([f"061122334{n}"]), origin="api"
        )
    await db.execute(
        "UPDATE send_recipients SET state = 'done', attempts = 1, final_at = now(), "
        "outcome = (ARRAY['listened','busy','no_answer','transferred','voicemail'])[1 + id % 5] "
        "WHERE send_id = $1 AND id % 4 <> 0",
        big.id,
    )
    await db.execute(
        "INSERT INTO attempts (id, send_id, recipient_id, attempt_no, node, app, trunk, state, outcome, "
        "talk_s) "
        "SELECT gen_random_uuid(), send_id, id, 1, 'test', 'vocalcast-test', 't', 'ended', outcome, 12.5 "
        "FROM send_recipients WHERE send_id = $1 AND state = 'done'",
        big.id,
    )
    await db.execute("ANALYZE")
    group = await groups_store.group_by_name(db, who.account.id, "Grand")
    return big.id, group.id


async def test_pages_at_scale_run_bounded_indexed_queries(
    browser: UiClient, alice: Customer, bob: Customer, db: Database, stack_settings: Settings
) -> None:
    send_id, group_id = await _populate(db, stack_settings, alice, bob)
    await browser.login(alice.account.email, PASSWORD)
    first = await browser.get("/contacts")
    cursor = re.search(r"apres=([^\"&]+)", first.text)
    assert cursor is not None
    detail = await browser.get(f"/historique/{send_id}")
    after = re.search(r"\?apres=(\d+)", detail.text)
    assert after is not None
    pages = [
        *PAGES,
        f"/contacts?apres={cursor.group(1)}",
        "/contacts?q=nom0999",
        "/contacts?q=06 20 00",
        f"/contacts/groupes/{group_id}",
        f"/envoi/groupe?groupe={group_id}",
        f"/historique/{send_id}",
        f"/historique/{send_id}?apres={after.group(1)}",
        f"/historique/{send_id}/progression.json",
        f"/historique/progression.json?ids={send_id}",
    ]
    statements: dict[str, tuple[str, tuple[object, ...]]] = {}
    counts: dict[str, int] = {}
    async with logged_queries(browser.engine) as log:
        for path in pages:
            with log.recording():
                answer = await browser.get(path)
            assert answer.status == 200, path
            assert 1 <= len(log.queries) <= MAX_QUERIES_PER_PAGE, (path, len(log.queries), log.queries)
            counts[path] = len(log.queries)
            for query, args in log.queries:
                statements.setdefault(query, (path, args))
        with log.recording():
            async with browser.http.get(f"{browser.base}/historique/{send_id}/resultats.csv") as resp:
                body = await resp.text()
        assert body.count("\r\n") == 10_001  # heading + every recipient
        # Pages of 1,000 recipients: the query count grows with the send, ten for 10,000, never a scan.
        assert len(log.queries) <= 4 + 10_000 // 1000 + 1
        for query, args in log.queries:
            statements.setdefault(query, ("resultats.csv", args))
    assert len(statements) >= 20
    scans = {}
    async with db.transaction() as conn:
        # With sequential scans priced out, any that remains is one no index can replace.
        await conn.execute("SET LOCAL enable_seqscan = off")
        # The check itself can fail: a filter no index serves is caught.
        unindexed = await conn.fetchval("EXPLAIN (FORMAT JSON) SELECT count(*) FROM contacts WHERE nom = 'x'")
        assert _seq_scans(json.loads(unindexed)) == ["contacts"]
        for query, (path, args) in statements.items():
            if not query.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE", "DELETE", "INSERT")):
                continue
            plan = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + query, *args))
            if found := _seq_scans(plan):
                scans[query] = (path, found)
    assert scans == {}
    print("queries per page:", counts)


async def test_my_data_download_number_search_and_account_deletion(
    browser: UiClient, alice: Customer, db: Database, stack_settings: Settings
) -> None:
    number = "+33611000001"
    await contacts_store.create_contact(
        db, alice.account.id, phone=number, allow_international=False, nom="Dupont"
    )
    await browser.login(alice.account.email, PASSWORD)
    page = await browser.get("/parametres")
    assert page.contains("Mes données") and 'action="/parametres/donnees/export"' in page.text
    async with browser.http.post(browser.base + "/parametres/donnees/export", data={"csrf": "x"}) as forged:
        assert forged.status == 403
    async with browser.http.post(
        browser.base + "/parametres/donnees/export", data={"csrf": browser.csrf}
    ) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/zip"
        body = await resp.read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        contacts = list(csv.DictReader(io.StringIO(archive.read("contacts.csv").decode())))
        assert [(c["e164"], c["nom"]) for c in contacts] == [(number, "Dupont")]
        assert json.loads(archive.read("manifest.json"))["files"]["contacts.json"] == 1
    exports = stack_settings.state_dir / "exports"
    await wait_for(lambda: not any(exports.iterdir()), what="the archive removed from the server")

    found = await browser.get("/parametres/donnees/numero?numero=06+11+00+00+01")
    assert found.status == 200 and found.contains("Contacts 1")
    form = {"csrf": browser.csrf, "numero": "0611000001", "action": "export"}
    async with browser.http.post(browser.base + "/parametres/donnees/numero", data=form) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(await resp.read())) as archive:
            assert len(json.loads(archive.read("contacts.json"))) == 1
    unconfirmed = await browser.post(
        "/parametres/donnees/numero", {"numero": "0611000001", "action": "erase"}
    )
    assert unconfirmed.status == 400 and unconfirmed.contains("Cochez la case")

    await browser.get("/parametres/donnees/supprimer-compte")
    wrong = await browser.post("/parametres/donnees/supprimer-compte", {"password": "pas-le-bon-42"})
    assert wrong.status == 400 and wrong.contains("Mot de passe incorrect")
    assert await db.fetchval("SELECT count(*) FROM contacts WHERE account_id = $1", alice.account.id) == 1
    gone = await browser.post("/parametres/donnees/supprimer-compte", {"password": PASSWORD})
    assert gone.url.endswith("/connexion") and gone.contains("Votre compte et vos données ont été supprimés")
    assert await db.fetchval("SELECT count(*) FROM contacts WHERE account_id = $1", alice.account.id) == 0
    assert (await browser.get("/parametres")).url.startswith(browser.base + "/connexion")
    again = await browser.login(alice.account.email, PASSWORD)
    assert not again.url.endswith("/tableau-de-bord")
