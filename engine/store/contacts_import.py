"""The contacts import's writes: one transaction per import, in which each chunk of COPY data
(engine.domain.contacts_import) lands in temporary tables, then set-based statements create the missing
groups, update the contacts that exist, insert the others and add the memberships.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Final
from uuid import UUID

import asyncpg

from engine.domain.contacts import MAX_GROUPS, too_many_groups
from engine.domain.contacts_import import CONTACT_COLUMNS, MEMBERSHIP_COLUMNS, ImportChunk
from engine.errors import NotFound
from engine.store.db import Database, rows_affected

# The pool's 30 s command timeout guards interactive queries; a 100,000-row import on a busy machine
# may need longer, and it runs in one transaction that a timeout would throw away.
BULK_TIMEOUT_S = 300.0
# COPY data is handed to asyncpg in pieces of this size, so its flow control paces the writes.
_COPY_CHUNK_BYTES: Final = 256 * 1024
# Namespace of the per-account advisory lock that serialises imports (two imports of overlapping
# files into one account would otherwise lock the same contacts in different orders and deadlock).
_IMPORT_LOCK: Final = 0x636F6E74  # "cont"

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


# Consents given in the file (issue 18): a new consent replaces an older or withdrawn one, as
# engine/store/consent.py records one. The date is parsed by PostgreSQL from its ISO form.
_RECORD_CONSENTS: Final = (
    "UPDATE contacts c SET consent_at = v.at::timestamptz, "
    "consent_source = nullif(left(btrim(v.source), 200), ''), "
    "consent_proof = nullif(left(btrim(v.proof), 2000), ''), consent_withdrawn_at = NULL, updated_at = now() "
    "FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS v(e164, at, source, proof) "
    "WHERE c.account_id = $1 AND c.e164 = v.e164"
)


class NumberTakenMeanwhile(Exception):
    """A number the import inserted as new became a contact of the account meanwhile (by hand): the
    import wrote nothing; run it again with plain_inserts=False."""


@asynccontextmanager
async def import_writer(
    db: Database, account_id: UUID, *, plain_inserts: bool
) -> AsyncIterator[ImportWriter]:
    """The import's transaction and its writer: everything the writer writes commits at the end of the
    block, or nothing does. NotFound for an unknown account; imports into one account take turns.

    ``plain_inserts``: when the account has no contact yet, new contacts are inserted without looking for
    existing ones (NumberTakenMeanwhile if one appears meanwhile).
    """
    try:
        async with db.transaction() as conn:
            if await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1", account_id) is None:
                raise NotFound(f"no account {account_id}", message_fr="Compte introuvable.")
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", _IMPORT_LOCK, str(account_id)
            )
            yield await ImportWriter.start(conn, account_id, plain_inserts=plain_inserts)
    except asyncpg.UniqueViolationError as exc:
        if plain_inserts and exc.constraint_name == _NUMBER_CONSTRAINT:
            raise NumberTakenMeanwhile(f"a number of the file became a contact of {account_id}") from exc
        raise


class ImportWriter:
    """Writes the chunks of one import in its transaction, counting what they did (see import_writer)."""

    def __init__(self, conn: asyncpg.Connection, account_id: UUID, *, had_contacts: bool) -> None:
        self._conn = conn
        self._account_id = account_id
        self._had_contacts = had_contacts
        self._written = False
        self.imported = 0
        self.groups_created = 0
        self.memberships_added = 0

    @classmethod
    async def start(cls, conn: asyncpg.Connection, account_id: UUID, *, plain_inserts: bool) -> ImportWriter:
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
        if chunk.consents:
            await conn.execute(
                _RECORD_CONSENTS,
                account_id,
                *(list(column) for column in zip(*chunk.consents, strict=True)),
                timeout=BULK_TIMEOUT_S,
            )

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
