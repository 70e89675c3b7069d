"""Contacts of one account: one by one, and listed by pages (groups: engine.store.groups; a send's
numbers: engine.store.targets).

Every function takes the account and never reads, counts or changes another account's rows: another
account's contact or group is NotFound, as if it did not exist. Names are searched and sorted by keys
the domain computes (engine.domain.contacts.search_key: lower case, no accents) and this module stores
beside them (sql/0004).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection, Sequence
from typing import Final
from uuid import UUID

import asyncpg

from engine.domain.contacts import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    MAX_SEARCH_WORDS,
    SEARCH_MAX_LENGTH,
    Contact,
    ContactOrder,
    ContactPage,
    GroupRef,
    check_phone,
    clean_field,
    search_key,
    tidy,
)
from engine.domain.numbers import Number, normalize
from engine.errors import InvalidInput, NotFound
from engine.store.contact_checks import check_group, hash_joins, no_contact, no_group
from engine.store.db import Executor, in_transaction, rows_affected

# --- SQL building blocks (constant text: values always travel as $n parameters) ----------------------

# The listing orders, each served by an index of sql/0004 and made total by a unique last key.
_ORDER_KEYS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "name": (("c.nom_key", "text"), ("c.prenom_key", "text"), ("c.id", "bigint")),
    "societe": (("c.societe_key", "text"), ("c.id", "bigint")),
    "number": (("c.e164", "text"),),
}
_MAX_CODE_POINT: Final = "chr(1114111)"  # U+10FFFF: prefix || it bounds every string starting with prefix

_CONTACT_COLUMNS: Final = (
    "c.id, c.societe, c.nom, c.prenom, c.e164, c.number_type, c.is_mobile, c.created_at, c.updated_at"
)
# A contact's groups, by name; used on pages already limited, so it runs once per shown contact.
_GROUPS_LATERAL: Final = (
    "LEFT JOIN LATERAL (SELECT array_agg(g.id ORDER BY g.name_key) AS group_ids, "
    "array_agg(g.name ORDER BY g.name_key) AS group_names "
    "FROM group_members m JOIN contact_groups g ON g.account_id = m.account_id AND g.id = m.group_id "
    "WHERE m.account_id = c.account_id AND m.contact_id = c.id) gm ON true"
)


def _prefix(column: str, param: str) -> str:
    """``column`` (COLLATE "C") starts with ``param``: a range an index answers."""
    return f"({column} >= {param} AND {column} < {param} || {_MAX_CODE_POINT})"


def _contact(row: asyncpg.Record) -> Contact:
    ids = row["group_ids"] or ()
    names = row["group_names"] or ()
    return Contact(
        id=row["id"],
        societe=row["societe"],
        nom=row["nom"],
        prenom=row["prenom"],
        e164=row["e164"],
        number_type=row["number_type"],
        is_mobile=row["is_mobile"],
        groups=tuple(GroupRef(i, n) for i, n in zip(ids, names, strict=True)),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _contact_exists(e164: str) -> InvalidInput:
    return InvalidInput(
        "contact_exists",
        f"a contact already has the number ending in {e164[-4:]}",
        message_fr="Ce numéro figure déjà dans vos contacts.",
    )


# --- contacts -------------------------------------------------------------------------------------------


async def get_contact(db: Executor, account_id: UUID, contact_id: int) -> Contact:
    """The account's contact, with its groups; NotFound otherwise."""
    row = await db.fetchrow(
        f"SELECT {_CONTACT_COLUMNS}, gm.group_ids, gm.group_names FROM contacts c {_GROUPS_LATERAL} "  # noqa: S608 - constant SQL
        "WHERE c.account_id = $1 AND c.id = $2",
        account_id,
        contact_id,
    )
    if row is None:
        raise no_contact(account_id, contact_id)
    return _contact(row)


async def contact_by_number(db: Executor, account_id: UUID, e164: str) -> Contact | None:
    """The account's contact with that number (numbers are unique per account), else None."""
    row = await db.fetchrow(
        f"SELECT {_CONTACT_COLUMNS}, gm.group_ids, gm.group_names FROM contacts c {_GROUPS_LATERAL} "  # noqa: S608 - constant SQL
        "WHERE c.account_id = $1 AND c.e164 = $2",
        account_id,
        e164,
    )
    return None if row is None else _contact(row)


async def create_contact(
    db: Executor,
    account_id: UUID,
    *,
    phone: str,
    allow_international: bool,
    societe: str = "",
    nom: str = "",
    prenom: str = "",
    group_ids: Collection[int] = (),
) -> Contact:
    """Add a contact (InvalidInput ``contact_exists`` when the number is already one of the account's)."""
    number = check_phone(phone, allow_international=allow_international)
    fields = [clean_field(societe, "societe"), clean_field(nom, "nom"), clean_field(prenom, "prenom")]
    async with in_transaction(db) as conn:
        try:
            contact_id = await conn.fetchval(
                "INSERT INTO contacts (account_id, societe, nom, prenom, societe_key, nom_key, prenom_key, "
                "e164, number_type, is_mobile) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
                "ON CONFLICT (account_id, e164) DO NOTHING RETURNING id",
                account_id,
                *fields,
                *(search_key(field) for field in fields),
                number.e164,
                number.type,
                number.is_mobile,
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise NotFound(f"no account {account_id}", message_fr="Compte introuvable.") from exc
        if contact_id is None:
            raise _contact_exists(number.e164)
        await _set_groups(conn, account_id, contact_id, group_ids)
        return await get_contact(conn, account_id, contact_id)


async def update_contact(
    db: Executor,
    account_id: UUID,
    contact_id: int,
    *,
    allow_international: bool,
    phone: str | None = None,
    societe: str | None = None,
    nom: str | None = None,
    prenom: str | None = None,
    group_ids: Collection[int] | None = None,
) -> Contact:
    """Change the given fields (None: unchanged); ``group_ids`` replaces the contact's groups."""
    number = None if phone is None else check_phone(phone, allow_international=allow_international)
    fields = [
        None if value is None else clean_field(value, name)
        for name, value in (("societe", societe), ("nom", nom), ("prenom", prenom))
    ]
    async with in_transaction(db) as conn:
        try:
            found = await conn.fetchval(
                "UPDATE contacts SET societe = coalesce($3, societe), nom = coalesce($4, nom), "
                "prenom = coalesce($5, prenom), societe_key = coalesce($6, societe_key), "
                "nom_key = coalesce($7, nom_key), prenom_key = coalesce($8, prenom_key), "
                "e164 = coalesce($9, e164), number_type = coalesce($10, number_type), "
                "is_mobile = coalesce($11, is_mobile), updated_at = now() "
                "WHERE account_id = $1 AND id = $2 RETURNING id",
                account_id,
                contact_id,
                *fields,
                *(None if field is None else search_key(field) for field in fields),
                None if number is None else number.e164,
                None if number is None else number.type,
                None if number is None else number.is_mobile,
            )
        except asyncpg.UniqueViolationError as exc:
            if number is None:
                raise
            raise _contact_exists(number.e164) from exc
        if found is None:
            raise no_contact(account_id, contact_id)
        if group_ids is not None:
            await conn.execute(
                "DELETE FROM group_members WHERE account_id = $1 AND contact_id = $2", account_id, contact_id
            )
            await _set_groups(conn, account_id, contact_id, group_ids)
        return await get_contact(conn, account_id, contact_id)


async def _set_groups(
    conn: asyncpg.Connection, account_id: UUID, contact_id: int, group_ids: Collection[int]
) -> None:
    wanted = sorted(set(group_ids))
    if not wanted:
        return
    added = await conn.fetch(
        "INSERT INTO group_members (account_id, group_id, contact_id) "
        "SELECT $1, g.id, $2 FROM contact_groups g WHERE g.account_id = $1 AND g.id = ANY($3::bigint[]) "
        "ON CONFLICT DO NOTHING RETURNING group_id",
        account_id,
        contact_id,
        wanted,
    )
    if len(added) != len(wanted):
        missing = set(wanted) - {r["group_id"] for r in added}
        raise no_group(account_id, sorted(missing))


async def delete_contact(db: Executor, account_id: UUID, contact_id: int) -> None:
    """Delete the account's contact and its memberships; NotFound otherwise."""
    status = await db.execute(
        "DELETE FROM contacts WHERE account_id = $1 AND id = $2", account_id, contact_id
    )
    if rows_affected(status) == 0:
        raise no_contact(account_id, contact_id)


async def delete_contacts(db: Executor, account_id: UUID, contact_ids: Collection[int]) -> int:
    """Delete those of ``contact_ids`` that are the account's; returns how many were deleted."""
    async with in_transaction(db) as conn, hash_joins(conn):
        status = await conn.execute(
            "DELETE FROM contacts c USING unnest($2::bigint[]) AS gone (id) "
            "WHERE c.account_id = $1 AND c.id = gone.id",
            account_id,
            sorted(set(contact_ids)),
        )
    return rows_affected(status)


def _filters(account_id: UUID, group_id: int | None, search: str | None) -> tuple[list[str], list[object]]:
    """WHERE conditions and their parameters ($1 is the account) for a listing or a count."""
    conditions = ["c.account_id = $1"]
    params: list[object] = [account_id]
    if group_id is not None:
        params.append(group_id)
        conditions.append(
            "EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = $2 AND m.contact_id = c.id "
            "AND m.account_id = $1)"
        )
    number_prefix, keys = _search_terms(search)
    if number_prefix is not None:
        params.append(number_prefix)
        conditions.append(_prefix("c.e164", f"${len(params)}::text"))
    matches = []
    for key in keys:
        params.append(key)
        n = f"${len(params)}::text"
        matches.append(
            f"({_prefix('c.nom_key', n)} OR {_prefix('c.prenom_key', n)} OR {_prefix('c.societe_key', n)})"
        )
    if len(matches) == 1:
        conditions.append(matches[0])
    elif matches:
        # the whole text starts a field ("mairie de lyon"), or every word starts one ("jean dupont")
        conditions.append(f"({matches[0]} OR ({' AND '.join(matches[1:])}))")
    return conditions, params


_NUMBER_SEARCH: Final = re.compile(r"\+?[\d\s.\-/()]+")
_NUMBER_JUNK: Final = re.compile(r"[\s.\-/()]")


def _search_terms(search: str | None) -> tuple[str | None, list[str]]:
    """A number prefix, when the search is a number or its beginning; else the search keys of the name
    search: the whole text, then (when there are several) each word.

    A number is matched by the beginning of its E.164 form: "06 12" → "+33612", "0033 6" → "+336".
    """
    text = tidy(search or "")
    if not text:
        return None, []
    words = text.split()
    if len(text) > SEARCH_MAX_LENGTH or (
        len(words) > MAX_SEARCH_WORDS and not _NUMBER_SEARCH.fullmatch(text)
    ):
        raise InvalidInput(
            "search_too_long",
            f"search longer than {MAX_SEARCH_WORDS} words or {SEARCH_MAX_LENGTH} characters",
            message_fr=f"Recherche trop longue : {MAX_SEARCH_WORDS} mots au plus.",
        )
    if _NUMBER_SEARCH.fullmatch(text) and any(char.isdigit() for char in text):
        complete = normalize(text, allow_international=True)
        if isinstance(complete, Number):
            return complete.e164, []
        digits = _NUMBER_JUNK.sub("", text)
        if digits.startswith("+"):
            return digits, []
        if digits.startswith("00"):
            return "+" + digits[2:], []
        if digits.startswith("0"):
            return "+33" + digits[1:], []
        return ("+" if digits.startswith("33") else "+33") + digits, []
    keys = [search_key(text)]
    if len(words) > 1:
        keys += [search_key(word) for word in words]
    return None, keys


async def list_contacts(
    db: Executor,
    account_id: UUID,
    *,
    group_id: int | None = None,
    search: str | None = None,
    order: ContactOrder = "name",
    after: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
) -> ContactPage:
    """One page of the account's contacts (keyset pagination: every page costs the same).

    ``group_id`` keeps that group's members (NotFound if it is not the account's group); ``search``
    keeps contacts whose nom, prénom or société starts with the text, or every word of which starts
    one of them (accents and case ignored), or whose number starts so.
    """
    if order not in _ORDER_KEYS:
        raise InvalidInput("bad_order", f"unknown contact order {order!r}")
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput("bad_limit", f"page size must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
    keys = _ORDER_KEYS[order]
    async with in_transaction(db) as conn:
        if group_id is not None:
            await check_group(conn, account_id, group_id)
        conditions, params = _filters(account_id, group_id, search)
        if after is not None:
            values = _decode_cursor(after, order, len(keys))
            placeholders = []
            for value, (_, sql_type) in zip(values, keys, strict=True):
                params.append(value)
                placeholders.append(f"${len(params)}::{sql_type}")
            columns = ", ".join(expr for expr, _ in keys)
            conditions.append(f"({columns}) > ({', '.join(placeholders)})")
        params.append(limit + 1)
        selected_keys = ", ".join(f"{expr} AS k{i}" for i, (expr, _) in enumerate(keys))
        order_by = ", ".join(expr for expr, _ in keys)
        page_order = ", ".join(f"c.k{i}" for i in range(len(keys)))
        # The page is chosen first (index order + LIMIT), then its contacts' groups are joined.
        rows = await conn.fetch(
            f"SELECT {_CONTACT_COLUMNS}, {', '.join(f'c.k{i}' for i in range(len(keys)))}, "  # noqa: S608 - constant SQL
            "gm.group_ids, gm.group_names FROM ("
            f"SELECT c.*, {selected_keys} FROM contacts c WHERE {' AND '.join(conditions)} "
            f"ORDER BY {order_by} LIMIT ${len(params)}) c {_GROUPS_LATERAL} ORDER BY {page_order}",
            *params,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = _encode_cursor(order, [rows[-1][f"k{i}"] for i in range(len(keys))]) if more else None
    return ContactPage(tuple(_contact(r) for r in rows), cursor)


async def count_contacts(
    db: Executor, account_id: UUID, *, group_id: int | None = None, search: str | None = None
) -> int:
    """How many contacts ``list_contacts`` would show with the same filters."""
    async with in_transaction(db) as conn:
        if group_id is not None:
            await check_group(conn, account_id, group_id)
        conditions, params = _filters(account_id, group_id, search)
        count: int = await conn.fetchval(
            f"SELECT count(*) FROM contacts c WHERE {' AND '.join(conditions)}",  # noqa: S608 - constant SQL
            *params,
        )
    return count


def _encode_cursor(order: str, values: Sequence[object]) -> str:
    raw = json.dumps([order, *values], ensure_ascii=False, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, order: str, size: int) -> list[object]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (ValueError, binascii.Error) as exc:
        raise InvalidInput("bad_cursor", "undecodable page cursor") from exc
    types = [sql_type for _, sql_type in _ORDER_KEYS[order]]
    if (
        not isinstance(decoded, list)
        or len(decoded) != size + 1
        or decoded[0] != order
        or not all(_cursor_value_ok(v, t) for v, t in zip(decoded[1:], types, strict=True))
    ):
        raise InvalidInput("bad_cursor", f"page cursor does not belong to a listing by {order}")
    return list(decoded[1:])


def _cursor_value_ok(value: object, sql_type: str) -> bool:
    if sql_type == "bigint":
        return type(value) is int and -(2**63) <= value < 2**63
    return isinstance(value, str) and "\x00" not in value
