"""« Paramètres »: default send options, the purpose of e-mail and HTTP sends and the company commercial
calls name, API tokens (a new one is shown once), sender numbers (pending / verified), password change
(other sessions end) and a new personal code."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from engine.domain.accounts import SendDefaults
from engine.domain.commercial import PURPOSES
from engine.errors import InvalidInput
from engine.web import sessions
from engine.web.remote import client_address
from engine.web.ui import sendform, webhook_panel
from engine.web.ui.auth import password_errors
from engine.web.ui.core import Page, page, phone_fr

# set_defaults' and SendDefaults' error codes → the field they belong beside.
DEFAULTS_FIELD_OF: Final = {
    "greeting_missing": "greeting_ref",
    "greeting_invalid": "greeting_ref",
    "transfer_invalid": "transfer",
    "sender_not_verified": "sender",
    "retries_invalid": "retries",
    "retry_interval_invalid": "retry_minutes",
    "voicemail_drop_disabled": "drop",
}


async def _render(p: Page, *, status: int = 200, **overrides: Any) -> web.Response:
    account = p.account
    greetings = await p.services.messages.list(account.id, greetings_only=True)
    all_senders = await p.services.accounts.senders(account.id)
    tokens = await p.services.accounts.tokens(account.id)
    d = account.defaults
    greeting = next((m for m in greetings if m.id == d.greeting_message_id), None)
    values = {
        "greeting": "on" if d.greeting_enabled else "",
        "greeting_ref": str(greeting.ref) if greeting else "",
        "transfer": phone_fr(d.transfer_number),
        "sender": str(d.sender_number_id or ""),
        "retries": str(d.retries),
        "retry_minutes": str(d.retry_interval_s // 60),
        "drop": "on" if d.voicemail_drop else "",
    }
    identity = {
        "company_name": await p.services.accounts.company_name(account.id) or "",
        "purpose": account.default_purpose,
    }
    context: dict[str, Any] = {
        "identity": identity,
        "purposes": sendform.PURPOSES_FR,
        "greetings": greetings,
        "senders": all_senders,
        "tokens": tokens,
        "values": values,
        "errors": {},
        "new_token": None,
        "new_code": "",
        "sender_value": "",
        "token_label": "",
        "drop_mode": sendform.DROP_MODE_FR,
    }
    context.update(await webhook_panel.panel(p))
    context.update(overrides)
    return p.render("settings.html", status=status, **context)


@page
async def settings_page(p: Page) -> web.StreamResponse:
    return await _render(p)


def _int(raw: str, default: int | None = None) -> int | None:
    try:
        return int(raw)
    except ValueError:
        return default


@page
async def save_defaults(p: Page) -> web.StreamResponse:
    greetings = await p.services.messages.list(p.account.id, greetings_only=True)
    values = {k: p.text(k).strip() for k in ("greeting", "greeting_ref", "transfer", "sender", "retries",
                                              "retry_minutes", "drop")}  # fmt: skip
    errors: dict[str, str] = {}
    greeting = next((m for m in greetings if str(m.ref) == values["greeting_ref"]), None)
    retries, minutes = _int(values["retries"]), _int(values["retry_minutes"])
    if retries is None:
        errors["retries"] = "Indiquez un nombre de renvois (0 : un seul appel)."
    if minutes is None:
        errors["retry_minutes"] = "Indiquez l'intervalle en minutes."
    if not errors:
        try:
            defaults = SendDefaults(
                greeting_enabled=bool(values["greeting"]),
                greeting_message_id=greeting.id if greeting else None,
                transfer_number=values["transfer"] or None,
                sender_number_id=_int(values["sender"]),
                retries=retries or 0,
                retry_interval_s=(minutes or 0) * 60,
                voicemail_drop=bool(values["drop"]),
            )
            await p.services.accounts.set_defaults(p.account.id, defaults)
        except InvalidInput as exc:
            errors[DEFAULTS_FIELD_OF.get(exc.code, "general")] = exc.message_fr
    if errors:
        return await _render(p, status=400, values=values, errors=errors)
    return p.redirect("/parametres", "Options d'envoi par défaut enregistrées.")


@page
async def save_identity(p: Page) -> web.StreamResponse:
    """The purpose of the account's e-mail and HTTP sends and the company its commercial calls name
    (issue 18), under the rule `vocalcast account purpose|company` follows."""
    identity = {"company_name": p.text("company_name").strip(), "purpose": p.text("purpose")}
    errors: dict[str, str] = {}
    purpose = identity["purpose"]
    if purpose not in PURPOSES:
        errors["purpose"] = "Choisissez l'objet de vos envois par e-mail et par HTTP."
    else:
        try:
            await p.services.accounts.change_defaults(
                p.account.id,
                purpose=purpose,
                company_name=identity["company_name"] or None,
            )
        except InvalidInput as exc:
            errors["company_name"] = exc.message_fr
    if errors:
        return await _render(p, status=400, identity=identity, errors=errors)
    return p.redirect("/parametres#entreprise", "Objet des envois et nom de l'entreprise enregistrés.")


@page
async def declare_sender(p: Page) -> web.StreamResponse:
    raw = p.text("number")
    try:
        sender, _ = await p.services.accounts.declare_sender(p.account.id, raw)
    except InvalidInput as exc:
        return await _render(p, status=400, errors={"number": exc.message_fr}, sender_value=raw)
    return p.redirect(
        "/parametres#emetteurs",
        f"Numéro {phone_fr(sender.e164)} déclaré : il sera présenté une fois vérifié par nos services.",
    )


@page
async def create_token(p: Page) -> web.StreamResponse:
    label = p.text("label")
    try:
        new = await p.services.accounts.create_token(p.account.id, label=label)
    except InvalidInput as exc:
        return await _render(p, status=400, errors={"label": exc.message_fr}, token_label=label)
    # Rendered, not redirected: the secret must not travel in a cookie or a URL.
    return await _render(p, new_token=new)


@page
async def revoke_token(p: Page) -> web.StreamResponse:
    raw = p.request.match_info["token_id"]
    if not raw.isdigit():
        raise web.HTTPNotFound()
    token = await p.services.accounts.revoke_token(p.account.id, int(raw))
    return p.redirect("/parametres#jetons", f"Jeton « {token.label or token.id} » révoqué.")


@page
async def change_password(p: Page) -> web.StreamResponse:
    change = await p.services.logins.change_password(
        p.account,
        current=p.text("current"),
        new=p.text("password"),
        confirmation=p.text("password2"),
        client=client_address(p.request),
    )
    if not change.done:
        return await _render(p, status=400, errors=password_errors(change.refusals))
    # Every session ended, this one too: the browser that made the change gets a new one.
    others = max(0, change.ended_sessions - 1)
    note = f" {others} autre(s) session(s) fermée(s)." if others else ""
    if change.revoked_tokens:
        note += f" {change.revoked_tokens} jeton(s) d'API révoqué(s) : créez-en un nouveau pour vos scripts."
    response = p.redirect("/parametres", "Mot de passe changé." + note)
    if change.session is not None:
        sessions.set_session(response, p.settings, change.session)
    return response


@page
async def new_code(p: Page) -> web.StreamResponse:
    code = await p.services.accounts.new_code(p.account.id)
    return await _render(p, new_code=code)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/parametres", settings_page)
    app.router.add_post("/parametres/options", save_defaults)
    app.router.add_post("/parametres/entreprise", save_identity)
    app.router.add_post("/parametres/emetteurs", declare_sender)
    app.router.add_post("/parametres/jetons", create_token)
    app.router.add_post("/parametres/jetons/{token_id}/revoquer", revoke_token)
    app.router.add_post("/parametres/mot-de-passe", change_password)
    app.router.add_post("/parametres/code", new_code)
