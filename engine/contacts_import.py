"""Importing a contacts CSV (onglet « Transfert »): parse off the event loop, merge, write in one transaction.

The file is parsed, merged and written out as COPY data in a worker thread, so the event loop only ships
bytes; the rows land by COPY in temporary tables, then set-based statements create the missing groups,
upsert the contacts on (account, number) and add the memberships. A failure anywhere imports nothing.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import asyncpg
import structlog

from engine.domain.contacts_csv import RefusedRow, parse_contacts_csv
from engine.errors import InvalidInput, NotFound
from engine.store.contacts import MAX_GROUPS, clean_field, clean_group_name, search_key, too_many_groups
from engine.store.db import Database

# The pool's 30 s command timeout guards interactive queries; a 100,000-row import on a busy machine
# may need longer, and it runs in one transaction that a timeout would throw away.
BULK_TIMEOUT_S = 300.0

log = structlog.get_logger(__name__)

# About 500,000 rows of a typical export; bounds the memory one upload may take.
MAX_IMPORT_BYTES: Final = 32 * 1024 * 1024
# COPY data is handed to asyncpg in pieces of this size, so its flow control paces the writes.
_COPY_CHUNK_BYTES: Final = 256 * 1024
# Namespace of the per-account advisory lock that serialises imports (two imports of overlapping
# files into one account would otherwise lock the same contacts in different orders and deadlock).
_IMPORT_LOCK: Final = 0x636F6E74  # "cont"

_CONTACT_COLUMNS: Final = (
    "societe", "nom", "prenom", "societe_key", "nom_key", "prenom_key", "e164", "number_type", "is_mobile"
)  # fmt: skip
_MEMBERSHIP_COLUMNS: Final = ("e164", "name_key")
_ANALYZE_AFTER_ROWS: Final = 10_000
_CSV_SLICE_ROWS: Final = 2_000


# A number already in the contacts updates its contact: non-empty fields replace, empty ones keep what is
# there; a contact the row would not change is not rewritten (a re-import costs index lookups only).
_UPDATE_EXISTING: Final = (
    "UPDATE contacts c SET"
    " societe = coalesce(nullif(i.societe, ''), c.societe),"
    " nom = coalesce(nullif(i.nom, ''), c.nom),"
    " prenom = coalesce(nullif(i.prenom, ''), c.prenom),"
    " societe_key = coalesce(nullif(i.societe_key, ''), c.societe_key),"
    " nom_key = coalesce(nullif(i.nom_key, ''), c.nom_key),"
    " prenom_key = coalesce(nullif(i.prenom_key, ''), c.prenom_key),"
    " number_type = i.number_type, is_mobile = i.is_mobile, updated_at = now()"
    " FROM contacts_import i WHERE c.account_id = $1 AND c.e164 = i.e164"
    " AND (i.societe NOT IN ('', c.societe) OR i.nom NOT IN ('', c.nom) OR i.prenom NOT IN ('', c.prenom)"
    " OR i.number_type <> c.number_type OR i.is_mobile <> c.is_mobile)"
)
# The other numbers become contacts, with their memberships taken from the RETURNING rows (no lookup).
# A plain insert behind an anti-join costs ~20 % less than INSERT ... ON CONFLICT DO UPDATE; the
# DO NOTHING only covers a contact created by hand meanwhile (imports are serialised by the lock).
_INSERT_NEW: Final = (
    "WITH inserted AS ("
    " INSERT INTO contacts (account_id, societe, nom, prenom, societe_key, nom_key, prenom_key, e164,"
    " number_type, is_mobile)"
    " SELECT $1, societe, nom, prenom, societe_key, nom_key, prenom_key, e164, number_type, is_mobile"
    " FROM contacts_import i"
    " WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.account_id = $1 AND c.e164 = i.e164)"
    " ON CONFLICT (account_id, e164) DO NOTHING RETURNING id, e164"
    ") INSERT INTO contacts_import_new (id, e164) SELECT id, e164 FROM inserted"
)
# Memberships of the new contacts, in a statement of their own: each row's foreign-key check on
# contacts is planned from the table's statistics, and with statistics of a nearly empty table
# (taken before this import) PostgreSQL checks every row with a sequential scan of the whole,
# growing table — quadratic (measured: minutes for 100,000 rows). ANALYZE runs in between.
_JOIN_NEW: Final = (
    "INSERT INTO group_members (account_id, group_id, contact_id)"
    " SELECT $1, g.id, n.id FROM contacts_import_new n JOIN contacts_import_groups ig ON ig.e164 = n.e164"
    " JOIN contact_groups g ON g.account_id = $1 AND g.name_key = ig.name_key"
)
# Memberships of the contacts that were already there (those of new contacts conflict and are skipped).
_ADD_MEMBERSHIPS_OF_EXISTING: Final = (
    "INSERT INTO group_members (account_id, group_id, contact_id)"
    " SELECT $1, g.id, c.id FROM contacts_import_groups ig"
    " JOIN contacts c ON c.account_id = $1 AND c.e164 = ig.e164"
    " JOIN contact_groups g ON g.account_id = $1 AND g.name_key = ig.name_key"
    " ON CONFLICT DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did: rows refused, contacts created, existing contacts met (updated, never doubled)."""

    imported: int  # new contacts
    updated: int  # rows whose number was already a contact: its non-empty fields were written to it
    refused: tuple[RefusedRow, ...]
    groups_created: int
    duplicates_in_file: int  # rows merged into an earlier row with the same number
    memberships_added: int = 0


@dataclass(frozen=True, slots=True)
class PreparedImport:
    """The file ready for COPY (CSV, every field quoted so that '' stays an empty string, not NULL)."""

    contacts_csv: bytes  # one line per distinct number: _CONTACT_COLUMNS
    memberships_csv: bytes  # one line per distinct (number, group key): _MEMBERSHIP_COLUMNS
    groups: dict[str, str]  # group key → the name as first written in the file
    contacts: int
    refused: tuple[RefusedRow, ...]
    duplicates: int


def prepare_import(data: bytes, *, allow_international: bool) -> PreparedImport:
    """Parse, check the fields, merge rows sharing a number, write the COPY data (CPU-bound: in a thread).

    A later row's non-empty société, nom or prénom replaces the earlier one, as a second import would;
    the groups of all the rows are joined.
    """
    parsed = parse_contacts_csv(data, allow_international=allow_international)
    refused = list(parsed.refused)
    contacts: dict[str, list[str]] = {}  # e164 → the COPY fields; dicts keep the file order
    groups: dict[str, str] = {}
    memberships: dict[tuple[str, str], None] = {}
    duplicates = 0
    # Sociétés, prénoms and groups repeat across rows: fold each distinct value once.
    keys: dict[str, str] = {}

    def key_of(value: str) -> str:
        key = keys.get(value)
        if key is None:
            key = keys[value] = search_key(value)
        return key

    for row in parsed.rows:
        try:
            societe = clean_field(row.societe, "societe")
            nom = clean_field(row.nom, "nom")
            prenom = clean_field(row.prenom, "prenom")
            group = None if row.group is None else clean_group_name(row.group)
        except InvalidInput as exc:
            refused.append(RefusedRow(row.row, exc.code, exc.message_fr, row.number.e164))
            continue
        number = row.number
        e164 = number.e164
        known = contacts.get(e164)
        if known is None:
            contacts[e164] = [
                societe,
                nom,
                prenom,
                key_of(societe),
                key_of(nom),
                key_of(prenom),
                e164,
                number.type,
                "t" if number.is_mobile else "f",
            ]
        else:
            duplicates += 1
            for index, value in enumerate((societe, nom, prenom)):
                if value:
                    known[index], known[index + 3] = value, key_of(value)
        if group is not None:
            group_key = key_of(group)
            groups.setdefault(group_key, group)
            memberships[e164, group_key] = None
    refused.sort(key=lambda entry: entry.row)
    return PreparedImport(
        contacts_csv=_csv(contacts.values()),
        memberships_csv=_csv(memberships),
        groups=groups,
        contacts=len(contacts),
        refused=tuple(refused),
        duplicates=duplicates,
    )


def _csv(rows: Iterable[Iterable[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    rows = iter(rows)
    # writerows() is one C call that keeps the GIL to the end: in slices, the event loop's thread gets
    # its turns while this runs in the worker thread.
    while chunk := list(itertools.islice(rows, _CSV_SLICE_ROWS)):
        writer.writerows(chunk)
    return out.getvalue().encode()


async def import_contacts_csv(
    db: Database, account_id: UUID, data: bytes, *, allow_international: bool
) -> ImportReport:
    """Import an Excel CSV into the account's contacts; InvalidInput (``not_csv``, ...) imports nothing."""
    if len(data) > MAX_IMPORT_BYTES:
        raise InvalidInput(
            "file_too_large",
            f"contacts file of {len(data)} bytes, at most {MAX_IMPORT_BYTES}",
            message_fr=f"Fichier trop volumineux ({MAX_IMPORT_BYTES // (1024 * 1024)} Mo au plus).",
        )
    prepared = await asyncio.to_thread(prepare_import, data, allow_international=allow_international)
    async with db.transaction() as conn:
        if await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1", account_id) is None:
            raise NotFound(f"no account {account_id}", message_fr="Compte introuvable.")
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _IMPORT_LOCK, str(account_id))
        # The planner sees the temporary tables without statistics and the contacts table as it was at
        # the last ANALYZE (often empty, before a first import); a nested loop it then picks over 100,000
        # rows takes minutes (measured: 78 s). Hash joins cost the same at any size. JIT compilation
        # would only add ~0.2 s to statements that run in well under a second.
        await conn.execute("SET LOCAL enable_nestloop = off; SET LOCAL jit = off")
        groups_created = await _create_groups(conn, account_id, prepared.groups)
        await conn.execute(
            "CREATE TEMPORARY TABLE contacts_import (societe text, nom text, prenom text, "
            'societe_key text COLLATE "C", nom_key text COLLATE "C", prenom_key text COLLATE "C", '
            'e164 text COLLATE "C", number_type text, is_mobile boolean) ON COMMIT DROP; '
            'CREATE TEMPORARY TABLE contacts_import_groups (e164 text COLLATE "C", '
            'name_key text COLLATE "C") ON COMMIT DROP; '
            'CREATE TEMPORARY TABLE contacts_import_new (id bigint, e164 text COLLATE "C") ON COMMIT DROP'
        )
        await _copy(conn, "contacts_import", _CONTACT_COLUMNS, prepared.contacts_csv)
        await _copy(conn, "contacts_import_groups", _MEMBERSHIP_COLUMNS, prepared.memberships_csv)
        had_contacts = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM contacts WHERE account_id = $1)", account_id
        )
        if had_contacts:
            await conn.execute(_UPDATE_EXISTING, account_id, timeout=BULK_TIMEOUT_S)
        status = await conn.execute(_INSERT_NEW, account_id, timeout=BULK_TIMEOUT_S)
        imported = int(status.rsplit(" ", 1)[1])
        if imported >= _ANALYZE_AFTER_ROWS:
            await conn.execute("ANALYZE contacts", timeout=BULK_TIMEOUT_S)
        status = await conn.execute(_JOIN_NEW, account_id, timeout=BULK_TIMEOUT_S)
        memberships_added = int(status.rsplit(" ", 1)[1])
        if had_contacts:
            status = await conn.execute(_ADD_MEMBERSHIPS_OF_EXISTING, account_id, timeout=BULK_TIMEOUT_S)
            memberships_added += int(status.rsplit(" ", 1)[1])
        if imported + memberships_added >= _ANALYZE_AFTER_ROWS:
            # Fresh statistics for the queries that follow (a send to the new groups, the listing):
            # autovacuum would take up to a minute, and plans made on "the table is empty" can take
            # minutes on 100,000 rows. ANALYZE counts this transaction's own new rows.
            await conn.execute("ANALYZE contacts; ANALYZE group_members", timeout=BULK_TIMEOUT_S)
    report = ImportReport(
        imported=imported,
        updated=prepared.contacts - imported,
        refused=prepared.refused,
        groups_created=groups_created,
        duplicates_in_file=prepared.duplicates,
        memberships_added=memberships_added,
    )
    log.info(
        "contacts.imported",
        account_id=str(account_id),
        imported=report.imported,
        updated=report.updated,
        refused=len(report.refused),
        groups_created=report.groups_created,
        duplicates_in_file=report.duplicates_in_file,
    )
    return report


async def _create_groups(conn: asyncpg.Connection, account_id: UUID, groups: dict[str, str]) -> int:
    """Create the file's groups the account lacks; returns how many. Raises past MAX_GROUPS."""
    if not groups:
        return 0
    status = await conn.execute(
        "INSERT INTO contact_groups (account_id, name, name_key) "
        "SELECT $1, name, name_key FROM unnest($2::text[], $3::text[]) AS g(name, name_key) "
        "ON CONFLICT (account_id, name_key) DO NOTHING",
        account_id,
        list(groups.values()),
        list(groups.keys()),
    )
    created = int(status.rsplit(" ", 1)[1])
    if created:
        total = await conn.fetchval("SELECT count(*) FROM contact_groups WHERE account_id = $1", account_id)
        if total > MAX_GROUPS:
            raise too_many_groups()
    return created


async def _copy(conn: asyncpg.Connection, table: str, columns: Sequence[str], data: bytes) -> None:
    if data:
        await conn.copy_to_table(
            table, source=_pieces(data), columns=list(columns), format="csv", timeout=BULK_TIMEOUT_S
        )


async def _pieces(data: bytes) -> AsyncIterator[memoryview]:
    view = memoryview(data)
    for start in range(0, len(view), _COPY_CHUNK_BYTES):
        yield view[start : start + _COPY_CHUNK_BYTES]


def report_json(report: ImportReport) -> dict[str, Any]:
    """The import report as the CLI (`contacts import --json`) and the API show it."""
    return {
        "imported": report.imported,
        "updated": report.updated,
        "refused": [
            {"row": r.row, "error": r.code, "message": r.message_fr, "input": r.input} for r in report.refused
        ],
        "groups_created": report.groups_created,
        "duplicates_in_file": report.duplicates_in_file,
        "memberships_added": report.memberships_added,
    }
