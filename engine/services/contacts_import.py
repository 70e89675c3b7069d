"""Importing a contacts CSV (onglet « Transfert »): prepared in a worker process, written in one transaction.

The file is checked as a whole, then normalised, merged and turned into COPY data chunk by chunk by a
process of its own (engine.services.contacts_prepare), while the previous chunk is being written: the
database and the preparation run side by side, and the event loop only ships bytes. Each chunk lands by
COPY in temporary tables, then set-based statements create the missing groups, upsert the contacts on
(account, number) and add the memberships. A failure anywhere imports nothing.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import asyncpg
import structlog

from engine.domain.contacts import MAX_GROUPS, too_many_groups
from engine.domain.contacts_csv import RefusedRow
from engine.errors import InvalidInput, NotFound
from engine.services.contacts_prepare import (
    CONTACT_COLUMNS,
    FRAME_HEADER,
    MEMBERSHIP_COLUMNS,
    ROWS_PER_CHUNK,
    ImportChunk,
    ImportPreparer,
    Prepared,
    chunk_from,
    prepare_import,
    prepared_from,
    refusal_from,
)
from engine.store.db import Database, rows_affected

# What callers (the bench, the tests) import from here along with import_contacts_csv.
__all__ = [
    "MAX_IMPORT_BYTES",
    "ROWS_PER_CHUNK",
    "ImportChunk",
    "ImportPreparer",
    "ImportReport",
    "import_contacts_csv",
    "prepare_import",
    "report_json",
]

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
# What the worker process runs (python -m ...).
_WORKER_MODULE: Final = "engine.services.contacts_prepare"

# An import of at least this many rows analyses the tables it wrote before it commits.
_ANALYZE_AFTER_ROWS: Final = 10_000
# The contacts columns queries filter and sort on (half the time of analysing the whole table).
_PLANNED_COLUMNS: Final = "account_id, id, e164, nom_key, prenom_key, societe_key, number_type, is_mobile"

_CREATE_TEMPORARY_TABLES: Final = (
    "CREATE TEMPORARY TABLE contacts_import (societe text, nom text, prenom text, "
    'societe_key text COLLATE "C", nom_key text COLLATE "C", prenom_key text COLLATE "C", '
    'e164 text COLLATE "C", number_type text, is_mobile boolean) ON COMMIT DROP; '
    'CREATE TEMPORARY TABLE contacts_import_groups (e164 text COLLATE "C", '
    'name_key text COLLATE "C") ON COMMIT DROP'
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
# The other numbers become contacts and join their groups, in one statement: the memberships come from
# the RETURNING rows (no lookup of the new contacts), and group_members' checks (sql/0012) run once, at
# its end. Returns (contacts created, memberships added).
_INSERT_AND_JOIN: Final = (
    "WITH inserted AS ("
    " INSERT INTO contacts (account_id, societe, nom, prenom, societe_key, nom_key, prenom_key, e164,"
    " number_type, is_mobile)"
    " SELECT $1, societe, nom, prenom, societe_key, nom_key, prenom_key, e164, number_type, is_mobile"
    " FROM contacts_import i{only_new}"
    " RETURNING id, e164"
    "), joined AS ("
    " INSERT INTO group_members (account_id, group_id, contact_id)"
    " SELECT $1, g.id, n.id FROM inserted n JOIN contacts_import_groups ig ON ig.e164 = n.e164"
    " JOIN contact_groups g ON g.account_id = $1 AND g.name_key = ig.name_key"
    " RETURNING 1"
    ") SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM joined)"
)
# When some of the chunk's numbers may already be contacts: those are left out (an anti-join; the
# DO NOTHING only covers a contact created by hand meanwhile: imports are serialised by the lock).
_INSERT_NEW_AND_JOIN: Final = _INSERT_AND_JOIN.format(
    only_new=" WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.account_id = $1 AND c.e164 = i.e164)"
    " ON CONFLICT (account_id, e164) DO NOTHING"
)
# When none can be (the account had no contact when the import started, and the chunk repeats no
# earlier chunk's number): a plain insert, ~20 % cheaper than the anti-join and the speculative
# insertion of ON CONFLICT. A number created by hand meanwhile makes it fail on contacts_number: the
# import then starts again the other way (import_contacts_csv).
_INSERT_ALL_AND_JOIN: Final = _INSERT_AND_JOIN.format(only_new="")
# Memberships of the contacts that were already there (those of new contacts conflict and are skipped).
_ADD_MEMBERSHIPS_OF_EXISTING: Final = (
    "INSERT INTO group_members (account_id, group_id, contact_id)"
    " SELECT $1, g.id, c.id FROM contacts_import_groups ig"
    " JOIN contacts c ON c.account_id = $1 AND c.e164 = ig.e164"
    " JOIN contact_groups g ON g.account_id = $1 AND g.name_key = ig.name_key"
    " ON CONFLICT DO NOTHING"
)
# The unique constraint a plain insert of a number created meanwhile runs into (sql/0004).
_NUMBER_CONSTRAINT: Final = "contacts_number"


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did: rows refused, contacts created, existing contacts met (updated, never doubled)."""

    imported: int  # new contacts
    updated: int  # rows whose number was already a contact: its non-empty fields were written to it
    refused: tuple[RefusedRow, ...]
    groups_created: int
    duplicates_in_file: int  # rows merged into an earlier row with the same number
    memberships_added: int = 0


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
    try:
        report = await _import(db, account_id, data, allow_international, rows_per_chunk, plain_inserts=True)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name != _NUMBER_CONSTRAINT:
            raise
        # A number of the file became a contact of the account (by hand) while it was being imported
        # into an account that had none: nothing was written; again, merging into existing contacts.
        log.info("contacts.import_restarted", account_id=str(account_id), reason="number_created_meanwhile")
        report = await _import(db, account_id, data, allow_international, rows_per_chunk, plain_inserts=False)
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


async def _import(
    db: Database,
    account_id: UUID,
    data: bytes,
    allow_international: bool,
    rows_per_chunk: int,
    *,
    plain_inserts: bool,
) -> ImportReport:
    """One attempt, in one transaction, while a worker process prepares the file's chunks."""
    preparation = await _Preparation.start(
        data, allow_international=allow_international, rows_per_chunk=rows_per_chunk
    )
    try:
        # An unusable file (not_csv, no phone column...) is refused here, before anything is written.
        chunk = await preparation.next_chunk()
        async with db.transaction() as conn:
            if await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1", account_id) is None:
                raise NotFound(f"no account {account_id}", message_fr="Compte introuvable.")
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", _IMPORT_LOCK, str(account_id)
            )
            writer = await _ChunkWriter.start(conn, account_id, plain_inserts=plain_inserts)
            while chunk is not None:
                await writer.write(chunk)
                chunk = await preparation.next_chunk()
            await writer.finish()
    finally:
        await preparation.close()
    prepared = preparation.prepared
    return ImportReport(
        imported=writer.imported,
        updated=prepared.numbers - writer.imported,
        refused=prepared.refused,
        groups_created=writer.groups_created,
        duplicates_in_file=prepared.duplicates,
        memberships_added=writer.memberships_added,
    )


class _Preparation:
    """The worker process preparing one file (engine.services.contacts_prepare): its chunks, then its counts.

    The process works ahead of the database: its frames are read as they come and queued here.
    """

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._ready: asyncio.Queue[ImportChunk | Exception | None] = asyncio.Queue()
        self._reading = asyncio.ensure_future(self._read())
        self._prepared: Prepared | None = None

    @classmethod
    async def start(cls, data: bytes, *, allow_international: bool, rows_per_chunk: int) -> _Preparation:
        options = ["--rows-per-chunk", str(rows_per_chunk)]
        if allow_international:
            options.append("--international")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            _WORKER_MODULE,
            *options,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        preparation = cls(process)
        try:
            assert process.stdin is not None  # noqa: S101 - asked for above
            process.stdin.write(data)
            await process.stdin.drain()
            process.stdin.close()
        except BaseException:
            await preparation.close()
            raise
        return preparation

    @property
    def prepared(self) -> Prepared:
        if self._prepared is None:
            raise RuntimeError("the contacts preparation is not over")
        return self._prepared

    async def next_chunk(self) -> ImportChunk | None:
        """The next chunk, None after the last one; raises what the worker refused or failed with."""
        chunk = await self._ready.get()
        if isinstance(chunk, Exception):
            raise chunk
        return chunk

    async def close(self) -> None:
        """Stop the worker if it still runs (the import failed or was cancelled) and reap it."""
        self._reading.cancel()
        if self._process.returncode is None:
            self._process.kill()
        await self._process.wait()

    async def _read(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None  # noqa: S101 - asked for in start()
        try:
            while True:
                (size,) = FRAME_HEADER.unpack(await stdout.readexactly(FRAME_HEADER.size))
                header: dict[str, Any] = json.loads(await stdout.readexactly(size))
                kind = header["kind"]
                if kind == "chunk":
                    contacts_csv = await stdout.readexactly(header["contacts"])
                    memberships_csv = await stdout.readexactly(header["memberships"])
                    self._ready.put_nowait(chunk_from(header, contacts_csv, memberships_csv))
                    continue
                if kind == "end":
                    self._prepared = prepared_from(header)
                    self._ready.put_nowait(None)
                elif kind == "invalid":
                    self._ready.put_nowait(refusal_from(header))
                else:
                    failure = f"the contacts preparation failed:\n{header['detail']}"
                    self._ready.put_nowait(RuntimeError(failure))
                return
        except asyncio.IncompleteReadError:
            code = await self._process.wait()
            failure = f"the contacts preparation process ended early (exit {code})"
            self._ready.put_nowait(RuntimeError(failure))


class _ChunkWriter:
    """Writes the chunks of one import in its transaction, counting what they did."""

    def __init__(self, conn: asyncpg.Connection, account_id: UUID, *, had_contacts: bool) -> None:
        self._conn = conn
        self._account_id = account_id
        self._had_contacts = had_contacts
        self._written = False
        self.imported = 0
        self.groups_created = 0
        self.memberships_added = 0

    @classmethod
    async def start(cls, conn: asyncpg.Connection, account_id: UUID, *, plain_inserts: bool) -> _ChunkWriter:
        # The planner sees the temporary tables without statistics and the contacts table as it was at
        # the last ANALYZE (often empty, before a first import); a nested loop it then picks over 100,000
        # rows takes minutes (measured: 78 s). Hash joins cost the same at any size. JIT compilation
        # would only add ~0.2 s to statements that run in well under a second. (The memberships' checks
        # fix their own plans: sql/0012.)
        await conn.execute("SET LOCAL enable_nestloop = off; SET LOCAL jit = off")
        await conn.execute(_CREATE_TEMPORARY_TABLES)
        had_contacts = not plain_inserts or await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM contacts WHERE account_id = $1)", account_id
        )
        return cls(conn, account_id, had_contacts=had_contacts)

    async def write(self, chunk: ImportChunk) -> None:
        conn, account_id = self._conn, self._account_id
        # Some of the chunk's numbers may already be contacts of the account: update those.
        may_exist = self._had_contacts or chunk.repeats
        self.groups_created += await _create_groups(conn, account_id, chunk.new_groups)
        if self._written:  # the previous chunk's rows
            await conn.execute("TRUNCATE contacts_import, contacts_import_groups")
        self._written = True
        await _copy(conn, "contacts_import", CONTACT_COLUMNS, chunk.contacts_csv)
        await _copy(conn, "contacts_import_groups", MEMBERSHIP_COLUMNS, chunk.memberships_csv)
        if may_exist:
            await conn.execute(_UPDATE_EXISTING, account_id, timeout=BULK_TIMEOUT_S)
        insert = _INSERT_NEW_AND_JOIN if may_exist else _INSERT_ALL_AND_JOIN
        created, joined = await conn.fetchrow(insert, account_id, timeout=BULK_TIMEOUT_S)
        self.imported += created
        self.memberships_added += joined
        if may_exist and chunk.memberships_csv:
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
