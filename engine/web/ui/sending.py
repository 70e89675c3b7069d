"""« Envoi simple », « Envoi à un contact », « Envoi à un groupe » and « M'envoyer un test ».

Each page posts to itself with an ``action``: ``preview`` (the per-line report, the credits and every
option checked by a rolled-back create_send), ``confirm`` (the same, for real, under an idempotency key so
a double click makes one send), ``test`` (one number, now, same options), ``edit`` (back to the form).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from engine.domain.contacts import NewContact, check_phone, clean_field
from engine.domain.numbers import Number, Refusal, normalize
from engine.domain.recipients import PasteReport
from engine.domain.sends import Target
from engine.errors import InvalidInput, NotFound
from engine.web.paste import parse_pasted
from engine.web.ui import sendform
from engine.web.ui.core import Page, page, phone_fr

REPORT_LINES_SHOWN: Final = 1000  # the per-line report lists this many lines; counts cover them all
GROUP_MEMBERS_SHOWN: Final = 500  # "part of a group": members offered per group


@dataclass
class Draft:
    """One send page being filled in: the form's values and what was found about them."""

    kind: str
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    report: PasteReport | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _report_rows(report: PasteReport) -> list[dict[str, Any]]:
    rows = []
    for entry in report.lines[:REPORT_LINES_SHOWN]:
        if entry.refusal is not None:
            status, detail = "refused", entry.refusal.message_fr
        elif entry.duplicate_of is not None:
            status, detail = "duplicate", f"Déjà présent ligne {entry.duplicate_of} : appelé une seule fois."
        else:
            status, detail = "accepted", ""
        number = entry.number.e164 if entry.number is not None else ""
        rows.append(
            {"line": entry.line, "input": entry.input, "status": status, "detail": detail, "e164": number}
        )
    return rows


async def _render_form(
    p: Page, draft: Draft, lib: sendform.Library, *, status: int = 200, **extra: Any
) -> web.Response:
    return p.render(
        f"send_{draft.kind}.html",
        status=status,
        kind=draft.kind,
        values=draft.values,
        errors=draft.errors,
        lib=lib,
        report=draft.report,
        report_rows=_report_rows(draft.report) if draft.report else [],
        drop_mode=sendform.DROP_MODE_FR,
        allow_drop=p.account.allow_voicemail_drop,
        **draft.extra,
        **extra,
    )


async def _handle(p: Page, kind: str, recipients_fields: tuple[str, ...]) -> web.StreamResponse:
    lib = await sendform.library(p)
    if p.request.method == "GET":
        values = {**dict.fromkeys(recipients_fields, ""), **sendform.default_values(p.account, lib)}
        draft = Draft(kind, values)
        await _prefill(p, draft)
        return await _render_form(p, draft, lib)
    values = sendform.form_values(p, (*recipients_fields, *sendform.OPTION_FIELDS))
    draft = Draft(kind, values)
    draft.extra["multi"] = {name: p.texts(name) for name in ("groups", "members")}
    action = p.text("action")
    if action == "edit":
        await _recipients(p, draft, check=False)
        return await _render_form(p, draft, lib)
    if action == "members":
        await _recipients(p, draft, check=False)
        return await _render_form(p, draft, lib)
    options, errors = sendform.parse_options(values, lib)
    draft.errors.update(errors)
    if action == "test":
        return await _test(p, draft, lib, options)
    await _recipients(p, draft, check=True)
    if draft.errors:
        return await _render_form(p, draft, lib, status=400)
    confirm = action == "confirm"
    key = p.text("idempotency_key") or secrets.token_hex(16)
    if confirm and kind == "contact":
        send, errors = await _confirm_contact(p, draft, options, key)
    else:
        send, errors = await sendform.attempt(
            p.services.sends, p.account, options, draft.targets, dry_run=not confirm, idempotency_key=key
        )
    if send is None:
        draft.errors.update(errors)
        return await _render_form(p, draft, lib, status=400)
    if confirm:
        when = "programmé" if send.deferred else "lancé"
        return p.redirect(f"/historique/{send.id}", f"Envoi {when} : {send.recipients_total} numéro(s).")
    skip = {"csrf", "action", "idempotency_key"}
    hidden = [(k, v) for k in dict.fromkeys(p.form) if k not in skip for v in p.texts(k)]
    return p.render(
        "send_review.html",
        kind=kind,
        draft=draft,
        values=values,
        hidden=hidden,
        idempotency_key=key,
        summary=sendform.summary(options, lib),
        credits=len(draft.targets),
        report=draft.report,
        report_rows=_report_rows(draft.report) if draft.report else [],
        deferred=send.deferred,
    )


async def _prefill(p: Page, draft: Draft) -> None:
    """The first view; « Envoi à un groupe » reached from a group's page has that group ticked."""
    draft.extra["multi"] = {"groups": p.texts("groupe"), "members": []}
    if draft.kind in {"contact", "group"}:
        draft.extra["groups"] = groups = await p.services.contacts.groups(p.account.id)
        if not {str(g.id) for g in groups}.issuperset(draft.extra["multi"]["groups"]):
            raise NotFound("a group in the URL is not the account's")
    if draft.kind == "group":
        draft.values["scope"] = "all"


async def _recipients(p: Page, draft: Draft, *, check: bool) -> None:
    """Fill ``draft.targets`` (and the report) from the page's recipient fields; errors by field."""
    account = p.account
    if draft.kind == "simple":
        text = draft.values["numbers"]
        if not text.strip():
            if check:
                draft.errors["numbers"] = "Indiquez au moins un numéro à appeler."
            return
        try:
            draft.report = await parse_pasted(
                text, p.settings, allow_international=account.allow_international
            )
        except InvalidInput as exc:
            draft.errors["numbers"] = exc.message_fr
            return
        draft.targets = [Target(n) for n in draft.report.numbers]
        if check and not draft.targets:
            draft.errors["numbers"] = "Aucun numéro valable dans la liste : voyez le détail ci-dessous."
    elif draft.kind == "contact":
        draft.extra["groups"] = await p.services.contacts.groups(account.id)
        if not check:
            return
        for name in ("societe", "nom", "prenom"):
            try:
                clean_field(draft.values[name], name)
            except InvalidInput as exc:
                draft.errors[name] = exc.message_fr
        try:
            number = check_phone(draft.values["phone"], allow_international=account.allow_international)
        except InvalidInput as exc:
            draft.errors["phone"] = exc.message_fr
        else:
            draft.targets = [Target(number)]
        if draft.values["group_id"]:
            try:
                await p.services.contacts.group(account.id, int(draft.values["group_id"]))
            except (ValueError, NotFound):
                draft.errors["group_id"] = "Groupe introuvable."
    else:
        await _group_recipients(p, draft, check=check)


async def _group_recipients(p: Page, draft: Draft, *, check: bool) -> None:
    account = p.account
    draft.extra["groups"] = groups = await p.services.contacts.groups(account.id)
    chosen = _ints(draft.extra["multi"]["groups"])
    members = _ints(draft.extra["multi"]["members"])
    known = {g.id for g in groups}
    if any(g not in known for g in chosen):
        raise NotFound("a chosen group is not the account's")
    if draft.values["scope"] == "part" or not check:
        # The members of each chosen group, to pick from (a big group shows its first ones).
        listing = []
        for group in groups:
            if group.id in chosen:
                page_ = await p.services.contacts.page(
                    account.id, group_id=group.id, limit=GROUP_MEMBERS_SHOWN
                )
                listing.append((group, page_.contacts))
        draft.extra["member_listing"] = listing
    if not check:
        return
    if not chosen:
        draft.errors["groups"] = "Choisissez au moins un groupe."
        return
    subset = members if draft.values["scope"] == "part" else None
    try:
        targets = await p.services.contacts.targets(account.id, group_ids=chosen, subset_contact_ids=subset)
    except InvalidInput as exc:
        field_name = "members" if exc.code == "no_recipients" else "groups"
        draft.errors[field_name] = exc.message_fr
        return
    if subset is not None and not subset:
        draft.errors["members"] = "Cochez les contacts à appeler, ou choisissez « tous les contacts »."
        return
    draft.targets = targets


def _ints(raw: list[str]) -> list[int]:
    out = []
    for value in raw:
        try:
            out.append(int(value))
        except ValueError:
            continue
    return out


async def _test(p: Page, draft: Draft, lib: sendform.Library, options: dict[str, Any]) -> web.Response:
    """« M'envoyer un test »: the same options, one number of the customer's choice, now."""
    errors = {k: v for k, v in draft.errors.items() if k not in {"at"}}
    await _recipients(p, draft, check=False)
    raw = draft.values["test_number"]
    number = normalize(raw, allow_international=p.account.allow_international) if raw else None
    if number is None:
        errors["test_number"] = "Indiquez le numéro à appeler pour le test."
    elif isinstance(number, Refusal):
        errors["test_number"] = number.message_fr
    if errors:
        draft.errors = errors
        return await _render_form(p, draft, lib, status=400)
    assert isinstance(number, Number)  # noqa: S101 - refusals returned above
    comment = ("Test — " + options["comment"]) if options["comment"] else "Test"
    test_options = {**options, "at": None, "comment": comment[:500], "voicemail_drop": False}
    if options["voicemail_drop"] and number.is_mobile:
        test_options["voicemail_drop"] = True
    send, errors = await sendform.attempt(
        p.services.sends, p.account, test_options, [Target(number)], dry_run=False
    )
    draft.errors = errors
    if send is None:
        return await _render_form(p, draft, lib, status=400)
    return await _render_form(p, draft, lib, test_send=send, test_number=phone_fr(number.e164))


async def _confirm_contact(
    p: Page, draft: Draft, options: dict[str, Any], key: str
) -> tuple[Any, dict[str, str]]:
    """Save the contact and create the send in one transaction: an error leaves neither."""
    values = draft.values
    contact = NewContact(
        phone=values["phone"], societe=values["societe"], nom=values["nom"], prenom=values["prenom"]
    )
    return await sendform.attempt_for_contact(
        p.services.sends,
        p.account,
        options,
        contact,
        group_id=int(values["group_id"]) if values["group_id"] else None,
        idempotency_key=key,
    )


@page
async def send_simple(p: Page) -> web.StreamResponse:
    return await _handle(p, "simple", ("numbers",))


@page
async def send_contact(p: Page) -> web.StreamResponse:
    return await _handle(p, "contact", ("societe", "nom", "prenom", "phone", "group_id"))


@page
async def send_group(p: Page) -> web.StreamResponse:
    return await _handle(p, "group", ("scope",))


def add_routes(app: web.Application) -> None:
    for path, handler in (
        ("/envoi/simple", send_simple),
        ("/envoi/contact", send_contact),
        ("/envoi/groupe", send_group),
    ):
        app.router.add_get(path, handler)
        app.router.add_post(path, handler)
