"""« Mes données » in Paramètres (RGPD, issue 20): download the account's archive, find, download or erase
everything about one phone number, and delete the account (confirmed by the password)."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from engine.errors import InvalidInput
from engine.services.privacy import check_number
from engine.web import sessions
from engine.web.downloads import export_path, send_archive
from engine.web.remote import client_address
from engine.web.ui.core import Page, page, phone_fr

# What each kind of row of a number's search is called on the page.
FOUND_LABELS_FR: Final = {
    "contacts": "Contacts",
    "destinataires": "Destinataires d'envois",
    "appels": "Appels",
    "cdr": "Détails d'appels de l'opérateur",
    "liste_opposition": "Liste d'opposition (conservée)",
    "liste_opposition_operateur": "Liste d'opposition de l'opérateur",
    "webhooks_evenements": "Événements de webhook",
    "numeros_emetteurs": "Numéros émetteurs",
    "envois_transfert_ou_emetteur": "Envois (transfert ou émetteur)",
}


@page
async def export_account(p: Page) -> web.StreamResponse:
    done = await p.services.privacy.export_account(p.account.id, export_path(p.settings))
    return await send_archive(p.request, done, "vocalcast-mes-donnees.zip")


async def _number_page(p: Page, *, status: int = 200, **values: Any) -> web.Response:
    context: dict[str, Any] = {"number": "", "found": None, "errors": {}, "labels": FOUND_LABELS_FR}
    context.update(values)
    return p.render("privacy_number.html", status=status, **context)


@page
async def number_page(p: Page) -> web.StreamResponse:
    raw = p.text("numero").strip()
    if p.request.method == "GET" and not raw:
        return await _number_page(p)
    action = p.text("action", "find")
    privacy = p.services.privacy
    try:
        if action == "export" and p.request.method == "POST":
            done = await privacy.export_number(p.account.id, raw, export_path(p.settings))
            return await send_archive(p.request, done, "vocalcast-numero.zip")
        if action == "erase" and p.request.method == "POST":
            if not p.text("confirm"):
                found = await privacy.find_number(p.account.id, raw)
                errors = {"confirm": "Cochez la case pour confirmer l'effacement."}
                return await _number_page(p, status=400, number=raw, found=found, errors=errors)
            await privacy.erase_number(p.account.id, raw)
            return p.redirect(
                "/parametres/donnees/numero",
                f"Le numéro {phone_fr(check_number(raw))} a été effacé de votre compte"
                " (s'il était sur votre liste d'opposition, il y reste, sous forme chiffrée).",
            )
        found = await privacy.find_number(p.account.id, raw)
    except InvalidInput as exc:
        return await _number_page(p, status=400, number=raw, errors={"numero": exc.message_fr})
    return await _number_page(p, number=raw, found=found)


@page
async def delete_account(p: Page) -> web.StreamResponse:
    if p.request.method == "GET":
        return p.render("privacy_delete.html", errors={})
    done = await p.services.privacy.delete_own_account(
        p.account, password=p.text("password"), client=client_address(p.request)
    )
    if done.erased is None:
        return p.render("privacy_delete.html", status=400, errors={"password": done.refusal_fr})
    response = p.redirect("/connexion", "Votre compte et vos données ont été supprimés.")
    response.del_cookie(sessions.SESSION_COOKIE, path="/")
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_post("/parametres/donnees/export", export_account)
    app.router.add_get("/parametres/donnees/numero", number_page)
    app.router.add_post("/parametres/donnees/numero", number_page)
    app.router.add_get("/parametres/donnees/supprimer-compte", delete_account)
    app.router.add_post("/parametres/donnees/supprimer-compte", delete_account)
