"""« Gérer les contacts » and its three tabs: « Saisie » (add, edit, delete, search, pages of 50 that cost
the same at any depth), « Groupe » (create, rename, delete, members) and « Transfert » (CSV import, and
the account's stop list import: clear or hashed numbers, issue 18)."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import BodyPartReader, web

from engine.domain.contacts import ContactPage, NewContact, check_phone, clean_field
from engine.errors import InvalidInput
from engine.services.contacts_import import MAX_IMPORT_BYTES
from engine.web import sessions
from engine.web.ui.core import Page, page, phone_fr, upload_page

PAGE_SIZE: Final = 50
REFUSED_SHOWN: Final = 500
CONTACT_FIELDS: Final = ("societe", "nom", "prenom", "phone")


def _id(p: Page, name: str) -> int:
    raw = p.request.match_info[name]
    if not raw.isdigit():
        raise web.HTTPNotFound()
    return int(raw)


def _ints(values: list[str]) -> list[int]:
    return [int(v) for v in values if v.isdigit()]


def _field_errors(p: Page, values: dict[str, str]) -> dict[str, str]:
    """Each field checked by the contacts' own rules, so each error shows beside its field."""
    errors = {}
    for name in ("societe", "nom", "prenom"):
        try:
            clean_field(values[name], name)
        except InvalidInput as exc:
            errors[name] = exc.message_fr
    try:
        check_phone(values["phone"], allow_international=p.account.allow_international)
    except InvalidInput as exc:
        errors["phone"] = exc.message_fr
    return errors


async def _render_entry(
    p: Page, *, values: dict[str, str] | None = None, errors: dict[str, str] | None = None, status: int = 200
) -> web.Response:
    search = p.request.query.get("q", "").strip()
    after = p.request.query.get("apres") or None
    listing_error = ""
    try:
        listing = await p.services.contacts.page(
            p.account.id, search=search or None, after=after, limit=PAGE_SIZE
        )
    except InvalidInput as exc:
        listing, listing_error = ContactPage((), None), exc.message_fr or "Recherche invalide."
    groups = await p.services.contacts.groups(p.account.id)
    return p.render(
        "contacts_entry.html",
        status=status,
        tab="saisie",
        search=search,
        after=after or "",
        listing=listing,
        listing_error=listing_error,
        groups=groups,
        values=values or dict.fromkeys(CONTACT_FIELDS, ""),
        chosen_groups=_ints(p.texts("groups")) if values else [],
        errors=errors or {},
    )


@page
async def entry(p: Page) -> web.StreamResponse:
    if p.request.method == "GET":
        return await _render_entry(p)
    action = p.text("action")
    if action == "add":
        values = {name: p.text(name) for name in CONTACT_FIELDS}
        errors = _field_errors(p, values)
        if not errors:
            try:
                contact = await p.services.contacts.create(
                    p.account,
                    NewContact(**values),
                    group_ids=_ints(p.texts("groups")),
                )
            except InvalidInput as exc:
                errors["phone"] = exc.message_fr
            else:
                name = " ".join(x for x in (contact.prenom, contact.nom) if x) or contact.societe or "Contact"
                return p.redirect("/contacts", f"{name} ajouté à vos contacts.")
        return await _render_entry(p, values=values, errors=errors, status=400)
    chosen = _ints(p.texts("selected"))
    if not chosen:
        return p.redirect("/contacts", "Cochez d'abord des contacts.")
    if action == "delete":
        deleted = await p.services.contacts.delete_many(p.account.id, chosen)
        return p.redirect("/contacts", f"{deleted} contact(s) supprimé(s).")
    if action == "to_group" and p.text("group_id").isdigit():
        added = await p.services.contacts.add_members(p.account.id, int(p.text("group_id")), chosen)
        return p.redirect("/contacts", f"{added} contact(s) ajouté(s) au groupe.")
    return p.redirect("/contacts", "Choisissez un groupe.")


@page
async def edit(p: Page) -> web.StreamResponse:
    contact_id = _id(p, "contact_id")
    contact = await p.services.contacts.get(p.account.id, contact_id)
    groups = await p.services.contacts.groups(p.account.id)
    if p.request.method == "GET":
        values = {
            "societe": contact.societe,
            "nom": contact.nom,
            "prenom": contact.prenom,
            "phone": phone_fr(contact.e164),
        }
        chosen = [g.id for g in contact.groups]
        return p.render("contact_edit.html", tab="saisie", contact=contact, groups=groups, values=values,
                        chosen_groups=chosen, errors={})  # fmt: skip
    if p.text("action") == "delete":
        await p.services.contacts.delete(p.account.id, contact_id)
        return p.redirect("/contacts", "Contact supprimé.")
    values = {name: p.text(name) for name in CONTACT_FIELDS}
    chosen = _ints(p.texts("groups"))
    errors = _field_errors(p, values)
    if not errors:
        try:
            await p.services.contacts.update(
                p.account,
                contact_id,
                phone=values["phone"],
                societe=values["societe"],
                nom=values["nom"],
                prenom=values["prenom"],
                group_ids=chosen,
            )
        except InvalidInput as exc:
            errors["phone"] = exc.message_fr
        else:
            return p.redirect("/contacts", "Contact modifié.")
    return p.render(
        "contact_edit.html",
        status=400,
        tab="saisie",
        contact=contact,
        groups=groups,
        values=values,
        chosen_groups=chosen,
        errors=errors,
    )


# --- groups ----------------------------------------------------------------------------------------------


async def _render_groups(
    p: Page, *, errors: dict[str, str] | None = None, status: int = 200, name: str = ""
) -> web.Response:
    groups = await p.services.contacts.groups(p.account.id)
    return p.render("contacts_groups.html", status=status, tab="groupe", groups=groups, errors=errors or {},
                    name=name)  # fmt: skip


@page
async def groups(p: Page) -> web.StreamResponse:
    if p.request.method == "GET":
        return await _render_groups(p)
    action = p.text("action")
    if action == "create":
        try:
            group = await p.services.contacts.create_group(p.account.id, p.text("name"))
        except InvalidInput as exc:
            return await _render_groups(p, errors={"name": exc.message_fr}, status=400, name=p.text("name"))
        return p.redirect("/contacts/groupes", f"Groupe « {group.name} » créé.")
    group_id = int(p.text("group_id")) if p.text("group_id").isdigit() else 0
    if action == "rename":
        try:
            group = await p.services.contacts.rename_group(p.account.id, group_id, p.text("name"))
        except InvalidInput as exc:
            return await _render_groups(p, errors={f"rename-{group_id}": exc.message_fr}, status=400)
        return p.redirect("/contacts/groupes", f"Groupe renommé en « {group.name} ».")
    if action == "delete":
        await p.services.contacts.delete_group(p.account.id, group_id)
        return p.redirect("/contacts/groupes", "Groupe supprimé (ses contacts sont conservés).")
    return p.redirect("/contacts/groupes")


@page
async def group_members(p: Page) -> web.StreamResponse:
    group_id = _id(p, "group_id")
    contacts = p.services.contacts
    group = await contacts.group(p.account.id, group_id)
    if p.request.method == "POST":
        removed = await contacts.remove_members(p.account.id, group_id, _ints(p.texts("selected")))
        return p.redirect(f"/contacts/groupes/{group_id}", f"{removed} contact(s) retiré(s) du groupe.")
    after = p.request.query.get("apres") or None
    listing = await contacts.page(p.account.id, group_id=group_id, after=after, limit=PAGE_SIZE)
    return p.render("contacts_group.html", tab="groupe", group=group, listing=listing, after=after or "")


# --- CSV import ------------------------------------------------------------------------------------------


async def _upload(p: Page) -> bytes | None:
    """The posted file's bytes (past MAX_IMPORT_BYTES the rest is dropped: the import then refuses the
    file for its size); None when the form's CSRF token is wrong — checked before any file part."""
    data, csrf = bytearray(), ""
    reader = await p.request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "csrf":
            csrf = (await part.read_chunk(200)).decode(errors="replace")
        elif part.name == "file":
            if not sessions.csrf_ok(p.visitor, csrf):
                break
            while chunk := await part.read_chunk(1024 * 1024):
                # Past the limit the rest is dropped: the import then refuses the file for its size.
                if len(data) <= MAX_IMPORT_BYTES:
                    data += chunk
    return bytes(data) if sessions.csrf_ok(p.visitor, csrf) else None


def _import_page(p: Page, *, status: int = 200, **context: Any) -> web.Response:
    return p.render(
        "contacts_import.html",
        status=status,
        **{"tab": "transfert", "report": None, "stop_report": None, "errors": {}, **context},
    )


@upload_page
async def transfer(p: Page) -> web.StreamResponse:
    if p.request.method == "GET":
        return _import_page(p)
    data = await _upload(p)
    if data is None:
        return p.render("error.html", status=403, title="Formulaire expiré", text="Rechargez la page.")
    errors: dict[str, str] = {}
    report: Any = None
    if not data:
        errors["file"] = "Choisissez un fichier CSV (séparateur : point-virgule)."
    else:
        try:
            report = await p.services.contacts.import_csv(p.account, data)
        except InvalidInput as exc:
            errors["file"] = exc.message_fr
    return _import_page(
        p,
        status=400 if errors else 200,
        report=report,
        refused=report.refused[:REFUSED_SHOWN] if report else (),
        errors=errors,
    )


@upload_page
async def stop_list(p: Page) -> web.StreamResponse:
    """The account's stop list (« liste d'opposition »): the numbers of the file, clear or SHA-256 of
    their E.164 form, are called by none of its sends any more, whatever their purpose."""
    if p.request.method == "GET":
        return _import_page(p)
    data = await _upload(p)
    if data is None:
        return p.render("error.html", status=403, title="Formulaire expiré", text="Rechargez la page.")
    if not data:
        return _import_page(p, status=400, errors={"stopfile": "Choisissez un fichier de numéros."})
    if len(data) > MAX_IMPORT_BYTES:
        too_large = f"Fichier trop volumineux ({MAX_IMPORT_BYTES // (1024 * 1024)} Mo au plus)."
        return _import_page(p, status=400, errors={"stopfile": too_large})
    try:
        done = await p.services.stoplists.import_file(p.account.id, data)
    except InvalidInput as exc:
        return _import_page(p, status=400, errors={"stopfile": exc.message_fr})
    return _import_page(p, stop_report=done, stop_refused=done.refused[:REFUSED_SHOWN])


def add_routes(app: web.Application) -> None:
    for path, handler in (
        ("/contacts", entry),
        ("/contacts/groupes", groups),
        ("/contacts/transfert", transfer),
        ("/contacts/opposition", stop_list),
        ("/contacts/groupes/{group_id}", group_members),
        ("/contacts/{contact_id}", edit),
    ):
        app.router.add_get(path, handler)
        app.router.add_post(path, handler)
