"""A new customer's path through the private space in headless Chromium, on the real stack: log in,
upload an MP3, read the report of a messy list, call oneself with a test, send with a greeting and a
transfer to SIPp phones, watch the progress reach the end, read the chart, export the results, import a
cp1252 CSV, be refused another account's pages. axe-core checks every main page; screenshots are kept
in tests/artifacts/."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.app import Engine
from engine.domain.trunks import Trunk
from engine.settings import Settings
from engine.store import Database
from engine.store.accounts import create_account
from lab import tones
from tests.e2e.webdriver import Browser
from tests.integration.conftest import add_trunk
from tests.support.callee import Behaviour, callee, marker_tone_pcap

pytestmark = pytest.mark.integration
PASSWORD = "un-mot-de-passe-solide"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
STAR, TRANSFER, CENTRE = Behaviour.star, Behaviour.transfer, Behaviour.centre


@dataclass
class Site:
    engine: Engine
    url: str
    artifacts: Path
    tmp: Path


@pytest.fixture
async def site(
    stack_settings: Settings, db: Database, sipp_ports, tmp_path: Path, artifacts: Path
) -> AsyncIterator[Site]:  # type: ignore[no-untyped-def]
    settings = dataclasses.replace(stack_settings, ring_timeout_s=5.0, star_wait_s=3.0)
    sip_port, media_port = sipp_ports()
    name = f"e2e{uuid.uuid4().hex[:6]}"
    await add_trunk(settings, Trunk(name=name, host="127.0.0.1", port=sip_port, number_format="national",
                                    max_channels=10, max_cps=10))  # fmt: skip
    # Behaviour 04 presses * then 9 (then speaks); 05, the call centre, answers and speaks.
    transfer = marker_tone_pcap(tmp_path / "transfer.pcap", 700.0, digits="*9", lead_s=1.5)
    centre = marker_tone_pcap(tmp_path / "centre.pcap", 1500.0, lead_s=1.0)
    phones = callee(
        tmp_path / "sipp", sip_port=sip_port, media_port=media_port, transfer=transfer, centre=centre
    )
    engine = Engine(settings)
    engine.run_mail = False
    async with phones, engine:
        yield Site(engine, f"http://127.0.0.1:{engine.http_port}", artifacts / "ui", tmp_path)


async def axe_serious(browser: Browser) -> list[dict[str, object]]:
    """axe-core's serious and critical violations on the page as it is."""
    await browser.script(AXE.read_text() + "\nreturn true;")
    violations = await browser.async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map(v => "
        "({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))));"
    )
    return [v for v in violations if v["impact"] in {"serious", "critical"}]


async def axe_check(browser: Browser, page: str) -> None:
    serious = await axe_serious(browser)
    assert serious == [], (page, serious)


async def shot(browser: Browser, site: Site, name: str) -> None:
    site.artifacts.mkdir(parents=True, exist_ok=True)
    await browser.screenshot(site.artifacts / f"{name}.png")


async def make_mp3(target: Path) -> None:
    wav = target.with_suffix(".wav")
    tones.write_wav(wav, tones.silence(0.2) + tones.sine(880.0, 2.0, 0.4) + tones.silence(0.2))
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav), "-codec:a", "libmp3lame", "-b:a",
        "64k", str(target),
    )  # fmt: skip
    assert await asyncio.wait_for(proc.wait(), 60) == 0


async def upload(browser: Browser, path: Path, *, title: str = "", greeting: bool = False) -> None:
    await browser.go("/messages/nouveau")
    if title:
        await browser.fill({"#f-title": title})
    if greeting:
        await browser.click("#f-greeting")
    await (await browser.find("#f-file")).type(str(path))
    await browser.click("form[data-upload] button[type=submit]")


async def test_a_new_customers_path(site: Site, db: Database, stack_settings: Settings) -> None:
    await create_account(
        db,
        "nouveau@client.fr",
        secret_key=stack_settings.require("secret_key"),
        password=PASSWORD,
        credits=100,
    )
    async with Browser.start(site.url, site.tmp) as browser:
        # Connexion
        await browser.go("/tableau-de-bord")
        assert (await browser.path()).startswith("/connexion")
        await axe_check(browser, "connexion")
        await shot(browser, site, "01-connexion")
        await browser.fill({"#f-email": "nouveau@client.fr", "#f-password": PASSWORD})
        await browser.click("button.primary")
        await browser.wait_path("/tableau-de-bord")
        text = await browser.text()
        assert "100 crédits disponibles" in text
        assert "Pour enregistrer un message, composez le 01 72 36 01 70" in text
        await axe_check(browser, "tableau de bord")
        await shot(browser, site, "02-tableau-de-bord")

        # Enregistrer un message: a bad file is refused in French, an MP3 and a greeting are kept.
        bad = site.tmp / "pas-un-son.mp3"
        bad.write_bytes(b"ceci n'est pas un fichier audio" * 10)
        await upload(browser, bad)
        await browser.wait_for("document.querySelector('#file-error')", what="the refusal beside the field")
        refusal = await browser.text("#file-error")
        assert "Erreur" in refusal and "MP3" in refusal, refusal
        await axe_check(browser, "enregistrer un message (erreur)")
        await shot(browser, site, "03-enregistrer-erreur")
        mp3 = site.tmp / "promotion.mp3"
        await make_mp3(mp3)
        await upload(browser, mp3, title="Promotion de printemps")
        await browser.wait_path("/messages")
        assert "référence n° 1 « Promotion de printemps »" in await browser.text(".notice")
        greeting = site.tmp / "accueil.wav"
        tones.write_wav(greeting, tones.sine(660.0, 1.2, 0.4))
        await upload(browser, greeting, title="Accueil", greeting=True)
        await browser.wait_path("/messages")
        text = await browser.text()
        assert "Promotion de printemps" in text and "Fichier" in text and "message d'accueil" in text
        assert await browser.script(
            "return document.querySelectorAll('audio[src=\"/messages/1/ecoute\"]').length"
        )
        await axe_check(browser, "messages enregistrés")
        await shot(browser, site, "04-messages")

        # Envoi simple: the per-line report of a messy list, before anything is created.
        await browser.go("/envoi/simple")
        await axe_check(browser, "envoi simple")
        messy = "06 12 34 56 78\n0612345678\n+33 6 12 34 56 79\n0899 12 34 56\nbonjour\n612345680"
        await browser.fill({"#f-numbers": messy, "#f-message": "1", "#f-comment": "Printemps"})
        await browser.click("button[value=preview]")
        await browser.wait_for("document.querySelector('#report-title')", what="the report")
        report = await browser.text()
        assert "3 numéros acceptés" in report and "2 refusés" in report and "1 doublon" in report
        assert "Numéro surtaxé" in report and "Cet envoi réservera 3 crédits" in report
        await axe_check(browser, "vérification de l'envoi")
        await shot(browser, site, "05-envoi-rapport")
        await browser.click("button[value=edit]")
        await browser.wait_for("document.querySelector('#f-numbers')", what="the form again")

        # M'envoyer un test: one SIPp phone, the same options (the greeting), at once.
        await browser.click("#f-greeting")
        await browser.fill({"#f-greeting_ref": "2", "#f-test_number": STAR.dial(1)})
        await browser.click("button[value=test]")
        await browser.wait_for("document.querySelector('fieldset.test .notice a')", what="the test notice")
        assert "Appel de test lancé vers 06 12 00 01 01" in await browser.text("fieldset.test .notice")
        await browser.click("fieldset.test .notice a")
        await browser.wait_path("/historique/")
        await browser.wait_for(
            "document.querySelector('[data-role=status]').textContent.includes('Terminé')"
            " && document.querySelector('svg.chart')",
            timeout_s=40,
            what="the test call to end",
        )
        assert "Message écouté" in await browser.text(".outcomes")

        # The real send: greeting and transfer (touche 9) to three phones.
        await browser.go("/envoi/simple")
        numbers = "\n".join([STAR.dial(2), STAR.dial(3), TRANSFER.dial(4)])
        await browser.fill({"#f-numbers": numbers, "#f-message": "1", "#f-comment": "Printemps",
                            "#f-transfer": CENTRE.dial(5), "#f-greeting_ref": "2"})  # fmt: skip
        await browser.click("#f-greeting")
        await browser.click("button[value=preview]")
        await browser.wait_for("document.querySelector('button[value=confirm]')", what="the review")
        summary = await browser.text("dl.summary")
        assert "06 12 00 05 05" in summary and "n° 2 — Accueil" in summary
        await browser.click("button[value=confirm]")
        await browser.wait_path("/historique/")
        assert "Envoi lancé : 3 numéro(s)" in await browser.text(".notice")
        await shot(browser, site, "06-envoi-en-cours")
        # Live progress (app.js polls the JSON), then the page reloads itself with the chart.
        await browser.wait_for(
            "document.querySelector('#send-progress').value === 100", timeout_s=60, what="100 % of the send"
        )
        await browser.wait_for("document.querySelector('svg.chart')", timeout_s=20, what="the chart")
        outcomes = await browser.text(".outcomes")
        assert "Message écouté 2" in outcomes and "Transféré 1" in outcomes, outcomes
        assert "Mis en relation" in await browser.text(".recipients")
        await axe_check(browser, "détail d'un envoi")
        await shot(browser, site, "07-historique-graphique")

        # Export: the CSV the page links to, fetched with the page's own session.
        href = await browser.script("return document.querySelector('a[href$=\"resultats.csv\"]').href")
        csv_text = await browser.async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0]).then(r => r.text()).then(done);",
            href,
        )
        lines = csv_text.lstrip("\ufeff").strip().splitlines()
        assert lines[0].startswith("Numéro;Résultat;Code résultat")
        assert sorted(line.split(";")[2] for line in lines[1:]) == ["listened", "listened", "transferred"]

        await browser.go("/historique")
        assert "Terminé" in await browser.text("table.history")
        await axe_check(browser, "historique")
        await shot(browser, site, "08-historique")

        # Gérer les contacts, onglet Transfert: an Excel CSV in cp1252.
        csv_file = site.tmp / "contacts.csv"
        csv_file.write_bytes(
            "Société;Nom;Prénom;Téléphone;Groupe\r\nCafé Noël;Lefèvre;Anaïs;06 01 02 03 04;Clients été\r\n"
            "Hôtel Bérénice;Gaëtan;Zoé;01 45 67 89 03;Clients été\r\n;;;0899123456;\r\n".encode("cp1252")
        )
        await browser.go("/contacts/transfert")
        await axe_check(browser, "transfert de contacts")
        await (await browser.find("#f-file")).type(str(csv_file))
        await browser.click("form button.primary")
        await browser.wait_for("document.querySelector('#import-report')", what="the import report")
        report = await browser.text("#import-report")
        assert "2 contacts créés" in report and "1 groupe créé" in report and "1 ligne refusée" in report
        assert "Numéro surtaxé" in report
        await shot(browser, site, "09-contacts-transfert")
        await browser.go("/contacts?q=lefevre")
        assert "Café Noël" in await browser.text("table.contacts")
        await axe_check(browser, "contacts")
        await shot(browser, site, "10-contacts")
        await browser.go("/contacts/groupes")
        await axe_check(browser, "groupes")
        await browser.go("/envoi/groupe")
        await axe_check(browser, "envoi à un groupe")
        await browser.go("/envoi/contact")
        await axe_check(browser, "envoi à un contact")
        await browser.go("/parametres")
        await axe_check(browser, "paramètres")
        await shot(browser, site, "11-parametres")


async def test_another_accounts_pages_are_refused_in_the_browser(
    site: Site, db: Database, stack_settings: Settings
) -> None:
    secret = stack_settings.require("secret_key")
    await create_account(db, "un@client.fr", secret_key=secret, password=PASSWORD, credits=5)
    other = await create_account(db, "autre@client.fr", secret_key=secret, password=PASSWORD, credits=5)
    from engine.store import groups as groups_store

    group = await groups_store.create_group(db, other.account.id, "Secret")
    async with Browser.start(site.url, site.tmp) as browser:
        await browser.go("/connexion")
        await browser.fill({"#f-email": "un@client.fr", "#f-password": PASSWORD})
        await browser.click("button.primary")
        await browser.wait_path("/tableau-de-bord")
        for path in (f"/contacts/groupes/{group.id}", f"/historique/{uuid.uuid4()}", "/messages/1/ecoute"):
            await browser.go(path)
            assert "Page introuvable" in await browser.text("h1"), path
            assert "Secret" not in await browser.text()
        await axe_check(browser, "page introuvable")
        # A forged form (no token) is refused too.
        refused = await browser.async_script(
            "const done = arguments[arguments.length - 1];"
            "const body = new URLSearchParams({action: 'create', name: 'x'});"
            "fetch('/contacts/groupes', {method: 'POST', body: body})"
            ".then(r => done(r.status));"
        )
        assert refused == 403
        # The check can fail: a page with an image without text and an unlabelled field is caught.
        await browser.command(
            "POST", "/url", {"url": "data:text/html,<html><body><img src=x><input></body></html>"}
        )
        assert {v["id"] for v in await axe_serious(browser)} >= {"image-alt", "label"}
