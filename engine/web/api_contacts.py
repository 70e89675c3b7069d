"""API: the account's contacts (CRUD, search, keyset pages), contact groups (CRUD, membership) and the
Excel CSV import (upload → report)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from engine.domain.contacts import (
    DEFAULT_PAGE_SIZE,
    MAX_GROUPS,
    MAX_PAGE_SIZE,
    SEARCH_MAX_LENGTH,
    ConsentRecord,
    Contact,
    ContactOrder,
    Group,
    NewContact,
)
from engine.errors import InvalidInput
from engine.services.contacts import Contacts
from engine.services.contacts_import import MAX_IMPORT_BYTES, report_json
from engine.web.api_common import (
    INT64_MAX,
    ApiError,
    Field,
    account_of,
    bad_request,
    iso,
    json_body,
    json_response,
    no_content,
    not_found,
    not_null,
    parse_datetime,
    path_int,
    query_int,
    query_text,
    read_upload,
)
from engine.web.context import services_of

CONTACT_FIELDS: Final = frozenset({"phone", "societe", "nom", "prenom", "group_ids"})
CONSENT_FIELDS: Final = frozenset({"given_at", "source", "proof"})
MAX_MEMBERS_AT_ONCE: Final = 10_000
# A page cursor is base64url of the last row's sort keys: two names of 100 characters at most, which
# take up to 4 bytes each in UTF-8, are about 1,100 characters.
CURSOR_MAX_LENGTH: Final = 1500
# What the import refuses about the file itself, once received whole (413 and 409 have their own codes).
_FILE_REFUSALS: Final = frozenset({"not_csv", "empty_file", "no_phone_column"})


def _contacts(request: web.Request) -> Contacts:
    return services_of(request).contacts


def contact_json(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "societe": contact.societe,
        "nom": contact.nom,
        "prenom": contact.prenom,
        "number": contact.e164,
        "type": contact.number_type,
        "is_mobile": contact.is_mobile,
        "groups": [{"id": g.id, "name": g.name} for g in contact.groups],
        "created_at": iso(contact.created_at),
        "updated_at": iso(contact.updated_at),
    }


def group_json(group: Group) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "member_count": group.member_count,
        "created_at": iso(group.created_at),
    }


# --- contacts -------------------------------------------------------------------------------------------


async def list_contacts(request: web.Request) -> web.Response:
    account = account_of(request)
    limit = query_int(request, "limit", default=DEFAULT_PAGE_SIZE, lo=1, hi=MAX_PAGE_SIZE)
    group_id = query_int(request, "group_id", default=None, lo=1, hi=INT64_MAX)
    search = query_text(request, "search", max_length=SEARCH_MAX_LENGTH)
    order: ContactOrder
    match request.query.get("order", "name"):
        case "name" | "societe" | "number" as chosen:
            order = chosen
        case _:
            raise InvalidInput("bad_order", "unknown contact order", message_fr="Ordre de tri inconnu.")
    after = query_text(request, "after", max_length=CURSOR_MAX_LENGTH)
    assert limit is not None  # noqa: S101 - it has a default
    try:
        page = await _contacts(request).page(
            account.id,
            group_id=group_id,
            search=search,
            order=order,
            after=after,
            limit=limit,
        )
    except InvalidInput as exc:
        if exc.code == "bad_cursor":
            raise InvalidInput(exc.code, str(exc), message_fr="Curseur de page invalide.") from exc
        raise
    total = await _contacts(request).count(account.id, group_id=group_id, search=search)
    return json_response(
        {
            "contacts": [contact_json(c) for c in page.contacts],
            "next_cursor": page.next_cursor,
            "total": total,
        }
    )


def _group_ids(body: dict[str, Any]) -> list[int] | None:
    """The list given, or None when the field is absent (null is refused)."""
    value = not_null(Field("group_ids").int_list(body, hi=INT64_MAX, max_items=MAX_GROUPS), "group_ids")
    return value if isinstance(value, list) else None


def _optional_text(body: dict[str, Any], name: str, *, max_length: int = 1000) -> str | None:
    """The text given, or None when the field is absent (null is refused)."""
    value = not_null(Field(name).text(body, max_length=max_length), name)
    return value if isinstance(value, str) else None


async def create_contact(request: web.Request) -> web.Response:
    account = account_of(request)
    body = await json_body(request, CONTACT_FIELDS)
    phone = not_null(Field("phone").text(body, required=True, max_length=100), "phone")
    contact = await _contacts(request).create(
        account,
        NewContact(
            phone=phone,
            societe=_optional_text(body, "societe") or "",
            nom=_optional_text(body, "nom") or "",
            prenom=_optional_text(body, "prenom") or "",
        ),
        group_ids=_group_ids(body) or (),
    )
    return json_response(contact_json(contact), status=201)


async def get_contact(request: web.Request) -> web.Response:
    contact = await _contacts(request).get(account_of(request).id, path_int(request, "contact_id"))
    return json_response(contact_json(contact))


async def update_contact(request: web.Request) -> web.Response:
    """Change the fields given; ``group_ids`` replaces the contact's groups."""
    account = account_of(request)
    contact_id = path_int(request, "contact_id")
    body = await json_body(request, CONTACT_FIELDS)
    contact = await _contacts(request).update(
        account,
        contact_id,
        phone=_optional_text(body, "phone", max_length=100),
        societe=_optional_text(body, "societe"),
        nom=_optional_text(body, "nom"),
        prenom=_optional_text(body, "prenom"),
        group_ids=_group_ids(body),
    )
    return json_response(contact_json(contact))


def consent_json(record: ConsentRecord) -> dict[str, Any]:
    return {
        "given_at": iso(record.given_at),
        "source": record.source,
        "proof": record.proof,
        "withdrawn_at": iso(record.withdrawn_at),
        "valid": record.given_at is not None and record.withdrawn_at is None,
    }


async def get_consent(request: web.Request) -> web.Response:
    record = await _contacts(request).consent(account_of(request).id, path_int(request, "contact_id"))
    return json_response(consent_json(record))


async def record_consent(request: web.Request) -> web.Response:
    """The contact's consent to commercial calls (L34-5 CPCE): when (default now), where, its proof."""
    body = await json_body(request, CONSENT_FIELDS)
    given = Field("given_at").text(body, max_length=64)
    given_at = parse_datetime(given, "given_at") if isinstance(given, str) else datetime.now(UTC)
    if given_at > datetime.now(UTC):
        raise bad_request("field_invalid", "La date du consentement ne peut pas être dans le futur.")
    record = await _contacts(request).record_consent(
        account_of(request).id,
        path_int(request, "contact_id"),
        given_at=given_at,
        source=not_null(Field("source").text(body, max_length=200, required=True), "source"),
        proof=_optional_text(body, "proof", max_length=2000) or "",
    )
    return json_response(consent_json(record))


async def withdraw_consent(request: web.Request) -> web.Response:
    record = await _contacts(request).withdraw_consent(
        account_of(request).id, path_int(request, "contact_id"), at=datetime.now(UTC)
    )
    return json_response(consent_json(record))


async def delete_contact(request: web.Request) -> web.Response:
    await _contacts(request).delete(account_of(request).id, path_int(request, "contact_id"))
    return no_content()


async def import_contacts(request: web.Request) -> web.Response:
    """An Excel CSV (Société;Nom;Prénom;Téléphone;Groupe): refused rows are reported, the rest imported."""
    account = account_of(request)
    too_large_fr = f"Fichier trop volumineux ({MAX_IMPORT_BYTES // (1024 * 1024)} Mo au plus)."
    upload = await read_upload(
        request, fields=frozenset(), max_bytes=MAX_IMPORT_BYTES, too_large_fr=too_large_fr
    )
    try:
        report = await _contacts(request).import_csv(account, upload.data)
    except InvalidInput as exc:
        if exc.code in _FILE_REFUSALS:
            raise ApiError(422, exc.code, exc.message_fr) from exc
        if exc.code == "file_too_large":
            raise ApiError(413, exc.code, exc.message_fr) from exc
        raise
    return json_response(report_json(report))


# --- groups ---------------------------------------------------------------------------------------------


async def list_groups(request: web.Request) -> web.Response:
    groups = await _contacts(request).groups(account_of(request).id)
    return json_response({"groups": [group_json(g) for g in groups]})


async def create_group(request: web.Request) -> web.Response:
    body = await json_body(request, frozenset({"name"}))
    name = not_null(Field("name").text(body, required=True, max_length=1000), "name")
    group = await _contacts(request).create_group(account_of(request).id, name)
    return json_response(group_json(group), status=201)


async def get_group(request: web.Request) -> web.Response:
    group = await _contacts(request).group(account_of(request).id, path_int(request, "group_id"))
    return json_response(group_json(group))


async def rename_group(request: web.Request) -> web.Response:
    group_id = path_int(request, "group_id")
    body = await json_body(request, frozenset({"name"}))
    name = not_null(Field("name").text(body, required=True, max_length=1000), "name")
    group = await _contacts(request).rename_group(account_of(request).id, group_id, name)
    return json_response(group_json(group))


async def delete_group(request: web.Request) -> web.Response:
    await _contacts(request).delete_group(account_of(request).id, path_int(request, "group_id"))
    return no_content()


async def add_members(request: web.Request) -> web.Response:
    account = account_of(request)
    group_id = path_int(request, "group_id")
    body = await json_body(request, frozenset({"contact_ids"}))
    Field("contact_ids").raw(body, required=True)
    contact_ids = not_null(
        Field("contact_ids").int_list(body, hi=INT64_MAX, max_items=MAX_MEMBERS_AT_ONCE), "contact_ids"
    )
    added = await _contacts(request).add_members(account.id, group_id, contact_ids)
    group = await _contacts(request).group(account.id, group_id)
    return json_response({"added": added, "group": group_json(group)})


async def remove_member(request: web.Request) -> web.Response:
    account = account_of(request)
    group_id = path_int(request, "group_id")
    contact_id = path_int(request, "contact_id")
    if not await _contacts(request).remove_members(account.id, group_id, [contact_id]):
        raise not_found("Ce contact n'appartient pas à ce groupe.")
    return no_content()


def add_routes(api: web.Application) -> None:
    api.router.add_get("/contacts", list_contacts, allow_head=False)
    api.router.add_post("/contacts", create_contact)
    api.router.add_post("/contacts/import", import_contacts)
    api.router.add_get("/contacts/{contact_id}", get_contact, allow_head=False)
    api.router.add_patch("/contacts/{contact_id}", update_contact)
    api.router.add_delete("/contacts/{contact_id}", delete_contact)
    api.router.add_get("/contacts/{contact_id}/consent", get_consent, allow_head=False)
    api.router.add_put("/contacts/{contact_id}/consent", record_consent)
    api.router.add_delete("/contacts/{contact_id}/consent", withdraw_consent)
    api.router.add_get("/groups", list_groups, allow_head=False)
    api.router.add_post("/groups", create_group)
    api.router.add_get("/groups/{group_id}", get_group, allow_head=False)
    api.router.add_patch("/groups/{group_id}", rename_group)
    api.router.add_delete("/groups/{group_id}", delete_group)
    api.router.add_post("/groups/{group_id}/members", add_members)
    api.router.add_delete("/groups/{group_id}/members/{contact_id}", remove_member)
