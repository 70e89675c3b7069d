"""Importing a contacts CSV (onglet « Transfert »): parse off the event loop, merge, write in one transaction.

The file is checked as a whole, then normalised, merged and written out as COPY data in chunks, in a
worker thread, while the previous chunk is being written: the database and the parsing run side by side,
and the event loop only ships bytes. Each chunk lands by COPY in temporary tables, then set-based
statements create the missing groups, upsert the contacts on (account, number) and add the memberships.
A failure anywhere imports nothing.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import asyncpg
import structlog

from engine.domain.contacts import MAX_GROUPS, clean_field, clean_group_name, search_key, too_many_groups
from engine.domain.contacts_csv import ContactsReader, RefusedRow
from engine.errors import InvalidInput, NotFound
from engine.store.db import Database, rows_affected

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
# An import of at least this many rows analyses the tables it wrote before it commits.
_ANALYZE_AFTER_ROWS: Final = 10_000
# An import that has outgrown what the planner believes of the contacts table re-analyses it once.
_REPLAN_AFTER_ROWS: Final = 1_000
# The contacts columns queries filter and sort on (half the time of analysing the whole table).
_PLANNED_COLUMNS: Final = "account_id, id, e164, nom_key, prenom_key, societe_key, number_type, is_mobile"
# Rows of the file per chunk: the database writes one while the worker thread prepares the following
# ones; the first chunk is a tenth of that, so that the writes start early. Measured on a 100,000-row
# file (2 cores): 10,000-row chunks 2.8 s, 20,000 2.6 s, 50,000 2.9 s; whole file at once 3.7 s.
ROWS_PER_CHUNK: Final = 20_000

_CREATE_TEMPORARY_TABLES: Final = (
    "CREATE TEMPORARY TABLE contacts_import (societe text, nom text, prenom text, "
    'societe_key text COLLATE "C", nom_key text COLLATE "C", prenom_key text COLLATE "C", '
    'e164 text COLLATE "C", number_type text, is_mobile boolean) ON COMMIT DROP; '
    'CREATE TEMPORARY TABLE contacts_import_groups (e164 text COLLATE "C", '
    'name_key text COLLATE "C") ON COMMIT DROP; '
    'CREATE TEMPORARY TABLE contacts_import_new (id bigint, e164 text COLLATE "C") ON COMMIT DROP'
)


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
# The same when none of the chunk's numbers can be a contact yet (the account had none before this
# import, and the chunk repeats no earlier chunk's number): no anti-join over the account's contacts.
_INSERT_ALL: Final = _INSERT_NEW.replace(
    " WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.account_id = $1 AND c.e164 = i.e164)", ""
)
# Memberships of the new contacts, in a statement of their own (ANALYZE may have to run in between).
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
class ImportChunk:
    """Consecutive rows of the file ready for COPY (CSV, every field quoted: '' stays '', not NULL)."""

    contacts_csv: bytes  # one line per distinct number of the chunk: _CONTACT_COLUMNS
    memberships_csv: bytes  # one line per distinct (number, group key) of the chunk: _MEMBERSHIP_COLUMNS
    new_groups: dict[str, str]  # groups first met in this chunk: key → the name as first written
    # Some numbers were already in an earlier chunk: their contact exists by now and gets this chunk's
    # fields as an update, exactly as a merge in memory would have given them.
    repeats: bool


class ImportPreparer:
    """The file as a sequence of ImportChunks, one per call (CPU-bound: each call in a worker thread).

    Rows sharing a number are merged: a later row's non-empty société, nom or prénom replaces the earlier
    one, as a second import would; the groups of all the rows are joined. Calls must not overlap.
    """

    def __init__(
        self, data: bytes, *, allow_international: bool, rows_per_chunk: int = ROWS_PER_CHUNK
    ) -> None:
        reader = ContactsReader(data, allow_international=allow_international)
        # A small first chunk: the database starts writing sooner.
        self._chunks = reader.chunks(rows_per_chunk, first_chunk_rows=max(rows_per_chunk // 10, 1))
        self._numbers: set[str] = set()
        self._groups: set[str] = set()
        # Sociétés, prénoms and groups repeat across rows: fold each distinct value once.
        self._keys: dict[str, str] = {}
        self._refused: list[RefusedRow] = []
        self.duplicates = 0

    @property
    def numbers(self) -> int:
        """Distinct numbers met so far."""
        return len(self._numbers)

    @property
    def refused(self) -> tuple[RefusedRow, ...]:
        return tuple(sorted(self._refused, key=lambda entry: entry.row))

    def next_chunk(self) -> ImportChunk | None:
        chunk = next(self._chunks, None)
        if chunk is None:
            return None
        self._refused.extend(chunk.refused)
        contacts: dict[str, list[str]] = {}  # e164 → the COPY fields; dicts keep the file order
        new_groups: dict[str, str] = {}
        memberships: dict[tuple[str, str], None] = {}
        repeats = False
        key_of = self._key_of
        for row in chunk.rows:
            try:
                societe = clean_field(row.societe, "societe")
                nom = clean_field(row.nom, "nom")
                prenom = clean_field(row.prenom, "prenom")
                group = None if row.group is None else clean_group_name(row.group)
            except InvalidInput as exc:
                self._refused.append(RefusedRow(row.row, exc.code, exc.message_fr, row.number.e164))
                continue
            number = row.number
            e164 = number.e164
            known = contacts.get(e164)
            if known is None:
                if e164 in self._numbers:
                    self.duplicates += 1
                    repeats = True
                else:
                    self._numbers.add(e164)
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
                self.duplicates += 1
                for index, value in enumerate((societe, nom, prenom)):
                    if value:
                        known[index], known[index + 3] = value, key_of(value)
            if group is not None:
                group_key = key_of(group)
                if group_key not in self._groups:
                    self._groups.add(group_key)
                    new_groups[group_key] = group
                memberships[e164, group_key] = None
        return ImportChunk(
            contacts_csv=_csv(contacts.values()),
            memberships_csv=_csv(memberships),
            new_groups=new_groups,
            repeats=repeats,
        )

    def _key_of(self, value: str) -> str:
        key = self._keys.get(value)
        if key is None:
            key = self._keys[value] = search_key(value)
        return key


def prepare_import(data: bytes, *, allow_international: bool) -> list[ImportChunk]:
    """The whole file's chunks at once (what an import does in its worker thread, chunk by chunk)."""
    preparer = ImportPreparer(data, allow_international=allow_international)
    return list(iter(preparer.next_chunk, None))


def _csv(rows: Iterable[Iterable[object]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


async def import_contacts_csv(
    db: Database,
    account_id: UUID,
    data: bytes,
    *,
    allow_international: bool,
    rows_per_chunk: int = ROWS_PER_CHUNK,
) -> ImportReport:
    """Import an Excel CSV into the account's contacts; InvalidInput (``not_csv``, ...) imports nothing.

    The result never depends on rows_per_chunk (tests make it tiny to cross chunk boundaries).
    """
    if len(data) > MAX_IMPORT_BYTES:
        raise InvalidInput(
            "file_too_large",
            f"contacts file of {len(data)} bytes, at most {MAX_IMPORT_BYTES}",
            message_fr=f"Fichier trop volumineux ({MAX_IMPORT_BYTES // (1024 * 1024)} Mo au plus).",
        )

    def first_chunk() -> tuple[ImportPreparer, ImportChunk | None]:
        preparer = ImportPreparer(
            data, allow_international=allow_international, rows_per_chunk=rows_per_chunk
        )
        return preparer, preparer.next_chunk()

    # An unusable file (not_csv, no phone column...) is refused here, before anything is written.
    preparer, chunk = await asyncio.to_thread(first_chunk)
    # The worker thread runs ahead, chunk after chunk, while the database writes them: once the parsing
    # is over the writes no longer share the interpreter with it.
    ready: asyncio.Queue[ImportChunk | Exception | None] = asyncio.Queue()
    preparing = asyncio.ensure_future(_prepare_rest(preparer, ready))
    try:
        async with db.transaction() as conn:
            if await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1", account_id) is None:
                raise NotFound(f"no account {account_id}", message_fr="Compte introuvable.")
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", _IMPORT_LOCK, str(account_id)
            )
            writer = await _ChunkWriter.start(conn, account_id)
            while chunk is not None:
                await writer.write(chunk)
                following = await ready.get()
                if isinstance(following, Exception):
                    raise following
                chunk = following
            await writer.finish()
    finally:
        preparing.cancel()
    report = ImportReport(
        imported=writer.imported,
        updated=preparer.numbers - writer.imported,
        refused=preparer.refused,
        groups_created=writer.groups_created,
        duplicates_in_file=preparer.duplicates,
        memberships_added=writer.memberships_added,
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


class _ChunkWriter:
    """Writes the chunks of one import in its transaction, counting what they did."""

    def __init__(
        self, conn: asyncpg.Connection, account_id: UUID, *, had_contacts: bool, planned: float
    ) -> None:
        self._conn = conn
        self._account_id = account_id
        self._had_contacts = had_contacts
        self._planned_rows: float | None = planned
        self.imported = 0
        self.groups_created = 0
        self.memberships_added = 0

    @classmethod
    async def start(cls, conn: asyncpg.Connection, account_id: UUID) -> _ChunkWriter:
        # The planner sees the temporary tables without statistics and the contacts table as it was at
        # the last ANALYZE (often empty, before a first import); a nested loop it then picks over 100,000
        # rows takes minutes (measured: 78 s). Hash joins cost the same at any size. JIT compilation
        # would only add ~0.2 s to statements that run in well under a second.
        await conn.execute("SET LOCAL enable_nestloop = off; SET LOCAL jit = off")
        await conn.execute(_CREATE_TEMPORARY_TABLES)
        had_contacts = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM contacts WHERE account_id = $1)", account_id
        )
        # What the planner believes the contacts table holds (-1: never analysed).
        planned = await conn.fetchval("SELECT reltuples FROM pg_class WHERE oid = 'contacts'::regclass")
        return cls(conn, account_id, had_contacts=had_contacts, planned=planned)

    async def write(self, chunk: ImportChunk) -> None:
        conn, account_id = self._conn, self._account_id
        # Some of the chunk's numbers may already be contacts of the account: update those.
        may_exist = self._had_contacts or chunk.repeats
        self.groups_created += await _create_groups(conn, account_id, chunk.new_groups)
        await conn.execute("TRUNCATE contacts_import, contacts_import_groups, contacts_import_new")
        await _copy(conn, "contacts_import", _CONTACT_COLUMNS, chunk.contacts_csv)
        await _copy(conn, "contacts_import_groups", _MEMBERSHIP_COLUMNS, chunk.memberships_csv)
        if may_exist:
            await conn.execute(_UPDATE_EXISTING, account_id, timeout=BULK_TIMEOUT_S)
        insert = _INSERT_NEW if may_exist else _INSERT_ALL
        self.imported += rows_affected(await conn.execute(insert, account_id, timeout=BULK_TIMEOUT_S))
        if self._planned_rows is not None and self.imported >= max(_REPLAN_AFTER_ROWS, self._planned_rows):
            # Each membership's foreign-key check is planned from the contacts table's statistics; with
            # those of a nearly empty table (taken before this import) PostgreSQL checks every row with a
            # sequential scan of the whole, growing table — quadratic (measured: minutes for 100,000
            # rows). Once the import has outgrown them they are taken again, once: the later chunks are
            # planned from the real row density, whatever the table's size.
            await conn.execute("ANALYZE contacts (account_id, id)", timeout=BULK_TIMEOUT_S)
            self._planned_rows = None
        if chunk.memberships_csv:
            status = await conn.execute(_JOIN_NEW, account_id, timeout=BULK_TIMEOUT_S)
            self.memberships_added += rows_affected(status)
            if may_exist:
                status = await conn.execute(_ADD_MEMBERSHIPS_OF_EXISTING, account_id, timeout=BULK_TIMEOUT_S)
                self.memberships_added += rows_affected(status)

    async def finish(self) -> None:
        if self.imported + self.memberships_added >= _ANALYZE_AFTER_ROWS:
            # Fresh statistics for the queries that follow (a send to the new groups, the listing):
            # autovacuum would take up to a minute, and plans made on "the table is empty" can take
            # minutes on 100,000 rows. ANALYZE counts this transaction's own new rows.
            await self._conn.execute(
                f"ANALYZE contacts ({_PLANNED_COLUMNS}); ANALYZE group_members", timeout=BULK_TIMEOUT_S
            )


async def _prepare_rest(
    preparer: ImportPreparer, ready: asyncio.Queue[ImportChunk | Exception | None]
) -> None:
    """Prepare the remaining chunks in a worker thread, one call each; None after the last one."""
    try:
        while (chunk := await asyncio.to_thread(preparer.next_chunk)) is not None:
            ready.put_nowait(chunk)
    except Exception as exc:  # noqa: BLE001 - handed to the writing side, raised in its transaction
        ready.put_nowait(exc)
    else:
        ready.put_nowait(None)


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
    created = rows_affected(status)
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
