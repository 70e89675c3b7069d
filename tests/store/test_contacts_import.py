"""Importing Excel CSV exports into the real PostgreSQL: reports, updates, refusals, atomicity, isolation,
100,000 rows (counts, query plans, event-loop lag) and the `vocalcast contacts` commands.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import pytest
from structlog.testing import capture_logs

from engine.domain import contacts as rules
from engine.domain.contacts import ConsentRecord
from engine.errors import InvalidInput
from engine.logs import configure
from engine.services import contacts_import
from engine.services.contacts_import import ImportReport, import_contacts_csv, prepare_import
from engine.settings import Settings
from engine.store import Database
from engine.store import consent as consent_store
from engine.store import contacts as store
from engine.store import groups as groups_store
from engine.store import targets as targets_store
from engine.store.accounts import create_account
from tests.support.commands import run_command, with_db

T = TypeVar("T")


def excel_export(
    rows: list[list[str]], *, encoding: str = "cp1252", bom: bool = False, eol: str = "\r\n"
) -> bytes:
    """What Excel's "CSV (séparateur: point-virgule)" writes: ';', quotes only where needed."""

    def cell(value: str) -> str:
        if any(char in value for char in ';"\r\n'):
            return '"' + value.replace('"', '""') + '"'
        return value

    text = "".join(";".join(cell(value) for value in row) + eol for row in rows)
    return (codecs.BOM_UTF8 if bom else b"") + text.encode(encoding)


HEADER = ["Société", "Nom", "Prénom", "Téléphone", "Groupe"]


async def _account(db: Database, settings: Settings, email: str) -> UUID:
    return (await create_account(db, email, secret_key=settings.require("secret_key"))).account.id


@pytest.fixture
async def alice(db: Database, stack_settings: Settings) -> UUID:
    return await _account(db, stack_settings, "alice@example.fr")


@pytest.fixture
async def bob(db: Database, stack_settings: Settings) -> UUID:
    return await _account(db, stack_settings, "bob@example.fr")


async def _import(
    db: Database,
    account: UUID,
    data: bytes,
    *,
    international: bool = False,
    rows_per_chunk: int | None = None,
) -> ImportReport:
    if rows_per_chunk is None:
        return await import_contacts_csv(db, account, data, allow_international=international)
    return await import_contacts_csv(
        db, account, data, allow_international=international, rows_per_chunk=rows_per_chunk
    )


async def _all(db: Database, account: UUID) -> list[store.Contact]:
    page = await store.list_contacts(db, account, order="number", limit=store.MAX_PAGE_SIZE)
    assert page.next_cursor is None
    return list(page.contacts)


def _row(c: store.Contact) -> tuple[str, str, str, str, list[str]]:
    return (c.e164, c.societe, c.nom, c.prenom, [g.name for g in c.groups])


# --- real-looking exports -------------------------------------------------------------------------------


async def test_cp1252_crlf_export_with_quotes_accents_and_groups(db: Database, alice: UUID) -> None:
    data = excel_export(
        [
            HEADER,
            ["Mairie de Saint-Étienne", "Lefèvre", "Hélène", "06 12 34 56 78", "Élus"],
            ['Boulangerie "Chez Zoé"; SARL', "Müller", "François", "01.72.36.01.70", "Clients"],
            ["", "Dupont", "", "+33 6 98 76 54 32", "clients"],
            ["", "", "", "", ""],
            [],
            ["Œuvres sociales", "", "", "0262 21 34 56", ""],
        ]
    )
    assert "Hélène".encode("cp1252") in data
    assert b'"Boulangerie ""Chez Zo\xe9""; SARL"' in data

    report = await _import(db, alice, data)

    assert (report.imported, report.updated, report.refused, report.duplicates_in_file) == (4, 0, (), 0)
    assert (report.groups_created, report.memberships_added) == (2, 3)
    assert [_row(c) for c in await _all(db, alice)] == [
        ("+262262213456", "Œuvres sociales", "", "", []),
        ("+33172360170", 'Boulangerie "Chez Zoé"; SARL', "Müller", "François", ["Clients"]),
        ("+33612345678", "Mairie de Saint-Étienne", "Lefèvre", "Hélène", ["Élus"]),
        ("+33698765432", "", "Dupont", "", ["Clients"]),
    ]
    # "Clients" and "clients" are one group, spelled as first written.
    assert [(g.name, g.member_count) for g in await groups_store.list_groups(db, alice)] == [
        ("Clients", 2),
        ("Élus", 1),
    ]


async def test_utf8_bom_lf_export_with_header_in_another_order(db: Database, alice: UUID) -> None:
    data = excel_export(
        [
            ["TÉLÉPHONE", "nom", "Prénom", "GROUPE", "société"],
            ["0612345678", "Lefèvre", "Hélène", "Équipe « été »", "Café de la Gare"],
            ["6 98 76 54 32", "Nguyễn", "Thị", "", ""],
        ],
        encoding="utf-8",
        bom=True,
        eol="\n",
    )
    report = await _import(db, alice, data)
    assert (report.imported, report.groups_created, report.refused) == (2, 1, ())
    assert [_row(c) for c in await _all(db, alice)] == [
        ("+33612345678", "Café de la Gare", "Lefèvre", "Hélène", ["Équipe « été »"]),
        ("+33698765432", "", "Nguyễn", "Thị", []),
    ]


async def test_headerless_export_uses_the_documented_column_order(db: Database, alice: UUID) -> None:
    data = excel_export(
        [["Mairie", "Martin", "Jean", "0612345678", "Élus"], ["", "Durand", "", "0698765432", ""]]
    )
    report = await _import(db, alice, data)
    assert report.imported == 2
    assert [_row(c) for c in await _all(db, alice)] == [
        ("+33612345678", "Mairie", "Martin", "Jean", ["Élus"]),
        ("+33698765432", "", "Durand", "", []),
    ]


async def test_second_import_updates_and_never_doubles(db: Database, alice: UUID) -> None:
    first = excel_export(
        [
            HEADER,
            ["Mairie", "Lefèvre", "Hélène", "06 12 34 56 78", "Élus"],
            ["", "Martin", "Jean", "06 98 76 54 32", ""],
        ]
    )
    assert (await _import(db, alice, first)).imported == 2
    before = {c.e164: c for c in await _all(db, alice)}

    second = excel_export(
        [
            HEADER,
            ["", "Lefèvre-Dupuis", "", "+33612345678", "Clients"],  # empty cells keep what is there
            ["", "Martin", "Jean", "0698765432", ""],  # unchanged
            ["", "Petit", "Paul", "01 72 36 01 70", "Clients"],
        ]
    )
    report = await _import(db, alice, second)

    assert (report.imported, report.updated, report.groups_created) == (1, 2, 1)
    after = {c.e164: c for c in await _all(db, alice)}
    assert len(after) == 3
    assert _row(after["+33612345678"]) == (
        "+33612345678",
        "Mairie",
        "Lefèvre-Dupuis",
        "Hélène",
        ["Clients", "Élus"],
    )
    assert after["+33612345678"].id == before["+33612345678"].id
    assert after["+33612345678"].updated_at > before["+33612345678"].updated_at
    assert after["+33698765432"] == before["+33698765432"]  # nothing to change: not rewritten
    assert _row(after["+33172360170"]) == ("+33172360170", "", "Petit", "Paul", ["Clients"])

    again = await _import(db, alice, second)
    assert (again.imported, again.updated, again.groups_created, again.memberships_added) == (0, 3, 0, 0)
    assert await store.count_contacts(db, alice) == 3


async def test_a_number_created_by_hand_during_a_first_import_is_updated_like_any_other(
    db: Database, alice: UUID, stack_settings: Settings
) -> None:
    # The account has no contact when the import starts, so it inserts without looking for existing
    # ones; meanwhile the number of the file's first row becomes a contact, by hand.
    data = excel_export(
        [
            HEADER,
            ["Mairie", "Lefèvre", "Hélène", "06 12 34 56 78", "Élus"],
            ["", "Martin", "", "0698765432", ""],
        ]
    )
    by_hand = await asyncpg.connect(stack_settings.dsn)
    try:
        with capture_logs() as logs:
            async with by_hand.transaction():
                await by_hand.execute(
                    "INSERT INTO contacts (account_id, nom, nom_key, e164, number_type, is_mobile) "
                    "VALUES ($1, 'Manuel', 'manuel', '+33612345678', 'mobile', true)",
                    alice,
                )
                importing = asyncio.ensure_future(_import(db, alice, data))
                await asyncio.sleep(0.5)  # the import waits for this transaction on that number
            report = await asyncio.wait_for(importing, 60)
    finally:
        await by_hand.close()

    assert (report.imported, report.updated, report.groups_created) == (1, 1, 1)
    assert [_row(c) for c in await _all(db, alice)] == [
        ("+33612345678", "Mairie", "Lefèvre", "Hélène", ["Élus"]),
        ("+33698765432", "", "Martin", "", []),
    ]
    assert [e["event"] for e in logs if e["event"].startswith("contacts.")] == [
        "contacts.import_restarted",
        "contacts.imported",
    ]


# The file is written in chunks: a number repeated in a later chunk merges exactly as within one chunk.
@pytest.mark.parametrize("rows_per_chunk", [None, 1, 2])
async def test_duplicate_numbers_in_the_file_make_one_contact_in_every_group(
    db: Database, alice: UUID, rows_per_chunk: int | None
) -> None:
    data = excel_export(
        [
            HEADER,
            ["Mairie", "Lefèvre", "", "06 12 34 56 78", "Élus"],
            ["", "", "Hélène", "+33 6 12 34 56 78", "Conseil"],
            ["", "Martin", "", "06 98 76 54 32", "Conseil"],
            ["", "", "", "0612345678", "élus"],
            ["", "Durand", "Paul", "0698765432", ""],
        ]
    )
    report = await _import(db, alice, data, rows_per_chunk=rows_per_chunk)
    assert (report.imported, report.updated, report.duplicates_in_file) == (2, 0, 3)
    assert (report.groups_created, report.memberships_added) == (2, 3)
    assert [_row(c) for c in await _all(db, alice)] == [
        ("+33612345678", "Mairie", "Lefèvre", "Hélène", ["Conseil", "Élus"]),
        ("+33698765432", "", "Durand", "Paul", ["Conseil"]),
    ]


async def test_refused_rows_come_with_their_row_number_and_french_reason(db: Database, alice: UUID) -> None:
    data = excel_export(
        [
            HEADER,
            ["Mairie", "A", "B", "0800 FLOWERS", ""],
            ["Mairie", "C", "D", "08 99 12 34 56", ""],
            ["Mairie", "E", "F", "", "Groupe"],
            ["", "x" * (rules.FIELD_MAX_LENGTH + 1), "", "0612345678", ""],
            ["", "Valide", "", "0612345679", ""],
            ["", "Londres", "", "+44 20 7946 0958", ""],
            ["", "", "", "0612345680", "g" * (rules.GROUP_NAME_MAX_LENGTH + 1)],
        ]
    )
    report = await _import(db, alice, data)

    assert report.imported == 1
    assert [(r.row, r.code) for r in report.refused] == [
        (2, "letters"),
        (3, "premium"),
        (4, "missing_phone"),
        (5, "field_too_long"),
        (7, "international"),
        (8, "group_name_invalid"),
    ]
    messages = {r.code: r.message_fr for r in report.refused}
    assert messages["letters"] == "Le numéro contient des lettres."
    assert messages["missing_phone"] == "Numéro de téléphone manquant."
    assert "Nom" in messages["field_too_long"]
    assert report.refused[1].input == "08 99 12 34 56"
    assert [c.nom for c in await _all(db, alice)] == ["Valide"]
    assert await groups_store.list_groups(db, alice) == []

    # The account option lets the foreign number in.
    report = await _import(db, alice, data, international=True)
    assert (report.imported, report.updated) == (1, 1)
    assert 7 not in {r.row for r in report.refused}


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + bytes(range(256)) * 4, "not_csv"),
        (
            b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nstream\x00\x01\x02\nendobj\n",
            "not_csv",
        ),
        (b"Bonjour,\nveuillez trouver ci-joint la liste.\nCordialement\n", "not_csv"),
        (b"", "empty_file"),
        (b"\r\n;;;;\r\n", "empty_file"),
    ],
    ids=["png", "pdf", "prose", "empty", "empty-rows"],
)
async def test_a_file_that_is_not_a_contacts_csv_imports_nothing(
    db: Database, alice: UUID, data: bytes, code: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await _import(db, alice, data)
    assert caught.value.code == code
    assert caught.value.message_fr
    assert await store.count_contacts(db, alice) == 0
    assert await groups_store.list_groups(db, alice) == []


async def test_a_failure_late_in_the_import_leaves_nothing_behind(db: Database, alice: UUID) -> None:
    # Groups are created first, contacts after: too many groups fails after some writes were made.
    rows = [HEADER] + [
        ["", f"Nom{i}", "", f"0612{i:06d}", f"Groupe {i}"] for i in range(rules.MAX_GROUPS + 1)
    ]
    with pytest.raises(InvalidInput) as caught:
        await _import(db, alice, excel_export(rows))
    assert caught.value.code == "too_many_groups"
    assert await store.count_contacts(db, alice) == 0
    assert await groups_store.list_groups(db, alice) == []


async def test_a_csv_error_in_a_later_chunk_leaves_nothing_behind(db: Database, alice: UUID) -> None:
    # An unterminated quote swallows the rest of the file into one field past the csv module's limit:
    # found only when that chunk is read, after earlier chunks were written.
    rows = [HEADER] + [["", f"Nom{i}", "", f"0612{i:06d}", "Élus"] for i in range(30)]
    data = excel_export(rows) + b'"' + b"x" * 200_000
    with pytest.raises(InvalidInput) as caught:
        await _import(db, alice, data, rows_per_chunk=10)
    assert caught.value.code == "not_csv"
    assert await store.count_contacts(db, alice) == 0
    assert await groups_store.list_groups(db, alice) == []


async def test_a_worker_that_dies_midway_leaves_nothing_behind(
    db: Database, alice: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stub worker writes the first chunk (written to the database), then exits without a word.
    monkeypatch.setattr(contacts_import, "_WORKER_MODULE", "tests.support.contacts_worker_stub")
    monkeypatch.setenv("CONTACTS_WORKER_STUB", "die")
    rows = [HEADER] + [["", f"Nom{i}", "", f"0612{i:06d}", "Élus"] for i in range(5)]
    with pytest.raises(RuntimeError, match=r"ended early \(exit 3\)"):
        await _import(db, alice, excel_export(rows))
    assert await store.count_contacts(db, alice) == 0
    assert await groups_store.list_groups(db, alice) == []


async def test_a_cancelled_import_stops_its_worker_and_leaves_nothing_behind(
    db: Database, alice: UUID, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The stub worker writes the first chunk, then hangs: the import waits for the second one.
    pid_file = tmp_path / "worker.pid"
    monkeypatch.setattr(contacts_import, "_WORKER_MODULE", "tests.support.contacts_worker_stub")
    monkeypatch.setenv("CONTACTS_WORKER_STUB", "hang")
    monkeypatch.setenv("CONTACTS_WORKER_STUB_PID", str(pid_file))
    rows = [HEADER] + [["", f"Nom{i}", "", f"0612{i:06d}", "Élus"] for i in range(5)]
    importing = asyncio.ensure_future(_import(db, alice, excel_export(rows)))
    async with asyncio.timeout(30):
        while not pid_file.exists():  # noqa: ASYNC110 - polls a file another process writes, with a deadline
            await asyncio.sleep(0.05)
    worker = int(pid_file.read_text())
    importing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await importing
    assert not Path(f"/proc/{worker}").exists()  # noqa: ASYNC240 - killed and reaped (no zombie)
    assert await store.count_contacts(db, alice) == 0


async def test_imports_of_two_accounts_never_meet(db: Database, alice: UUID, bob: UUID) -> None:
    data = excel_export([HEADER, ["Mairie", "Lefèvre", "Hélène", "0612345678", "Élus"]])
    await _import(db, alice, data)
    assert await store.count_contacts(db, bob) == 0
    assert await groups_store.list_groups(db, bob) == []

    # The same number in Bob's file is a new contact of Bob's, not an update of Alice's.
    report = await _import(db, bob, excel_export([HEADER, ["", "Bob", "", "06 12 34 56 78", "élus"]]))
    assert (report.imported, report.updated, report.groups_created) == (1, 0, 1)
    assert [_row(c) for c in await _all(db, alice)] == [
        ("+33612345678", "Mairie", "Lefèvre", "Hélène", ["Élus"])
    ]
    assert [_row(c) for c in await _all(db, bob)] == [("+33612345678", "", "Bob", "", ["élus"])]
    alice_group = await groups_store.group_by_name(db, alice, "élus")
    bob_group = await groups_store.group_by_name(db, bob, "élus")
    assert alice_group.id != bob_group.id
    assert (alice_group.member_count, bob_group.member_count) == (1, 1)
    alice_targets = await targets_store.numbers_for_targets(db, alice, group_ids=[alice_group.id])
    assert [t.contact_id for t in alice_targets] == [(await _all(db, alice))[0].id]


# --- 100,000 rows ---------------------------------------------------------------------------------------

BIG_ROWS = 100_000
BIG_DUPLICATES = 100  # rows repeating an earlier number, in another group
BIG_REFUSED = 50  # rows with letters in the number
BIG_GROUPS = 20
_FORMATS = (
    lambda n: f"0{n[0]} {n[1:3]} {n[3:5]} {n[5:7]} {n[7:]}",
    lambda n: f"0{n[0]}.{n[1:3]}.{n[3:5]}.{n[5:7]}.{n[7:]}",
    lambda n: f"+33 {n[0]} {n[1:3]} {n[3:5]} {n[5:7]} {n[7:]}",
    lambda n: f"0{n}",
    lambda n: n,  # Excel dropped the leading 0
)


def big_export() -> bytes:
    """100,000 rows: distinct mobiles in five formats, accents, 20 groups, some duplicates and refusals."""
    rows = [HEADER]
    distinct = BIG_ROWS - BIG_DUPLICATES - BIG_REFUSED
    for i in range(distinct):
        nsn = f"612{i:06d}"
        rows.append(
            [
                f"Société n°{i % 997}",
                f"Lefèvre{i}",
                f"Hélène{i % 300}",
                _FORMATS[i % 5](nsn),
                f"Groupe {i % 20}",
            ]
        )
    for i in range(BIG_DUPLICATES):
        rows.append(["", "", "", f"+33612{i * 7:06d}", f"Groupe {(i * 7 + 1) % 20}"])
    for i in range(BIG_REFUSED):
        rows.append(["", f"Bad{i}", "", f"06 12 34 56 7{i % 10} poste {i}", ""])
    return excel_export(rows)


async def test_100k_rows_import_correctly_and_list_without_scanning(
    db: Database, alice: UUID, bob: UUID
) -> None:
    data = big_export()
    distinct = BIG_ROWS - BIG_DUPLICATES - BIG_REFUSED
    await _import(db, bob, excel_export([HEADER, ["", "Bob", "", "0612000001", "Groupe 1"]]))
    # Statistics of a nearly empty table, as autovacuum leaves them after small imports: the import
    # must not plan its checks from them (it once checked each row with a scan of the whole table).
    await db.execute("ANALYZE contacts; ANALYZE group_members")

    report = await _import(db, alice, data)

    assert (report.imported, report.updated) == (distinct, 0)
    assert report.duplicates_in_file == BIG_DUPLICATES
    assert report.groups_created == BIG_GROUPS
    assert [r.row for r in report.refused] == list(range(BIG_ROWS - BIG_REFUSED + 2, BIG_ROWS + 2))
    assert {r.code for r in report.refused} == {"letters"}
    assert report.memberships_added == distinct + BIG_DUPLICATES
    assert await store.count_contacts(db, alice) == distinct
    groups = await groups_store.list_groups(db, alice)
    assert len(groups) == BIG_GROUPS
    assert sum(g.member_count for g in groups) == distinct + BIG_DUPLICATES
    assert await store.count_contacts(db, bob) == 1
    assert (await groups_store.group_by_name(db, bob, "groupe 1")).member_count == 1

    contact = (await store.list_contacts(db, alice, search="+33 6 12 00 00 07")).contacts[0]
    assert _row(contact) == ("+33612000007", "Société n°7", "Lefèvre7", "Hélène7", ["Groupe 7", "Groupe 8"])
    targets = await targets_store.numbers_for_targets(db, alice, group_ids=[groups[0].id, groups[1].id])
    assert [g.name for g in groups[:2]] == ["Groupe 0", "Groupe 1"]
    chosen = {i for i in range(distinct) if i % 20 in (0, 1)} | {
        i * 7 for i in range(BIG_DUPLICATES) if (i * 7 + 1) % 20 in (0, 1)
    }
    assert sorted(t.e164 for t in targets) == sorted(f"+33612{i:06d}" for i in chosen)

    again = await _import(db, alice, data)
    assert (again.imported, again.updated, again.memberships_added) == (0, distinct, 0)
    assert await store.count_contacts(db, alice) == distinct

    # Pages and searches of a large account read an index range, never the whole table.
    await db.execute("ANALYZE contacts")
    await db.execute("ANALYZE group_members")
    second_page = (await store.list_contacts(db, alice, limit=store.MAX_PAGE_SIZE)).next_cursor
    in_99 = sum(1 for i in range(distinct) if i % 997 in (99, *range(990, 997)))
    assert await store.count_contacts(db, alice, search="société n°99") == in_99
    plans = await _plans(
        db,
        lambda conn: store.list_contacts(conn, alice),
        lambda conn: store.list_contacts(conn, alice, after=second_page),
        lambda conn: store.list_contacts(conn, alice, order="societe"),
        lambda conn: store.list_contacts(conn, alice, order="number", search="06 12 05"),
        lambda conn: store.list_contacts(conn, alice, search="lefevre12"),
        lambda conn: store.list_contacts(conn, alice, search="helene29 lef"),
        lambda conn: store.list_contacts(conn, alice, search="société n°99"),
        lambda conn: store.list_contacts(conn, alice, group_id=groups[3].id),
    )
    for query, plan in plans:
        assert "Seq Scan on contacts" not in plan, f"{query}\n{plan}"


async def _plans(
    db: Database, *calls: Callable[[asyncpg.Connection], Awaitable[Any]]
) -> list[tuple[str, str]]:
    """The plans of the listing queries each call makes, as EXPLAIN prints them."""
    plans = []
    async with db.connection() as conn:
        for call in calls:
            logged: list[Any] = []
            logger = logged.append
            conn.add_query_logger(logger)
            try:
                await call(conn)
            finally:
                conn.remove_query_logger(logger)
            listing = [e for e in logged if e.query.startswith("SELECT") and "FROM contacts c" in e.query]
            assert len(listing) == 1
            rows = await conn.fetch("EXPLAIN " + listing[0].query, *listing[0].args)
            plans.append((listing[0].query, "\n".join(r[0] for r in rows)))
    return plans


async def test_heavy_parsing_never_blocks_the_event_loop(db: Database, alice: UUID) -> None:
    data = big_export()
    loop = asyncio.get_running_loop()
    tick_s = 0.005

    async def probe(gaps: list[float], stop: asyncio.Event) -> None:
        last = loop.time()
        while not stop.is_set():
            await asyncio.sleep(tick_s)
            now = loop.time()
            gaps.append(now - last - tick_s)
            last = now

    async def measure(work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
        gaps: list[float] = []
        stop = asyncio.Event()
        task = asyncio.create_task(probe(gaps, stop))
        await asyncio.sleep(tick_s * 2)
        started = time.perf_counter()
        await work()
        duration_s = time.perf_counter() - started
        stop.set()
        await task
        return max(gaps), duration_s

    async def parse_on_the_loop() -> None:
        prepare_import(data, allow_international=False)

    # The probe sees a blocked loop: the same parsing run on the loop itself is one long gap.
    blocked_lag_s, blocked_s = await measure(parse_on_the_loop)
    assert blocked_lag_s > 0.5 * blocked_s

    lag_s, import_s = await measure(lambda: _import(db, alice, data))
    assert await store.count_contacts(db, alice) == BIG_ROWS - BIG_DUPLICATES - BIG_REFUSED
    assert lag_s < 0.1 * import_s, f"loop lag {lag_s:.3f} s during a {import_s:.3f} s import"


# --- the commands ---------------------------------------------------------------------------------------


@pytest.fixture
def console_logs() -> Iterator[None]:
    """The commands point the logs at stderr in the instance's format: put the session's back after."""
    yield
    configure("info", "console")


@pytest.mark.usefixtures("console_logs")
def test_contacts_commands(
    stack_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    email = f"cli-{uuid.uuid4().hex[:10]}@example.fr"
    with_db(stack_settings, lambda db: _account(db, stack_settings, email))
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_bytes(
        excel_export(
            [
                HEADER,
                ["Mairie", "Lefèvre", "Hélène", "06 12 34 56 78", "Élus"],
                ["", "Martin", "Jean", "0612 FLOWERS", ""],
                ["", "Durand", "", "01 72 36 01 70", "Élus"],
            ]
        )
    )

    rc, out, _ = run_command(capsys, "contacts", "import", str(csv_file), "--account", email)
    assert rc == 0
    assert "imported:   2 new contacts" in out
    assert "row 3: Le numéro contient des lettres.  (0612 FLOWERS)" in out

    rc, out, _ = run_command(capsys, "contacts", "import", str(csv_file), "--account", email, "--json")
    report = json.loads(out)
    assert (report["imported"], report["updated"]) == (0, 2)
    assert report["refused"] == [
        {"row": 3, "error": "letters", "message": "Le numéro contient des lettres.", "input": "0612 FLOWERS"}
    ]

    rc, out, _ = run_command(capsys, "contacts", "list", "--account", email, "--json")
    listed = [json.loads(line) for line in out.splitlines()]
    assert [(c["nom"], c["e164"], c["groups"]) for c in listed] == [
        ("Durand", "+33172360170", ["Élus"]),
        ("Lefèvre", "+33612345678", ["Élus"]),
    ]
    rc, out, _ = run_command(capsys, "contacts", "list", "--account", email, "--json", "--search", "hel")
    assert [json.loads(line)["prenom"] for line in out.splitlines()] == ["Hélène"]
    rc, out, _ = run_command(capsys, "contacts", "list", "--account", email, "--json", "--group", "ELUS")
    assert len(out.splitlines()) == 2

    rc, out, _ = run_command(capsys, "contacts", "groups", "--account", email, "--json")
    assert [(g["name"], g["members"]) for g in map(json.loads, out.splitlines())] == [("Élus", 2)]

    not_csv = tmp_path / "photo.png"
    not_csv.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    rc, _, err = run_command(capsys, "contacts", "import", str(not_csv), "--account", email)
    assert rc == 2
    assert "error" in err
    rc, _, err = run_command(capsys, "contacts", "list", "--account", email, "--group", "inconnu")
    assert rc == 2


async def test_consent_columns_record_each_contacts_consent(db: Database, alice: UUID) -> None:
    """Issue 18: the consent date (French or ISO, Paris time), source and proof columns; a later row of a
    number gives its consent, a new consent clears a withdrawal, bad dates and a source without a date
    are refused rows."""
    await store.create_contact(db, alice, phone="0698765432", allow_international=False)
    await consent_store.record(
        db, alice, "+33698765432", given_at=datetime(2025, 1, 1, tzinfo=UTC), source="x"
    )
    await consent_store.withdraw(db, alice, "+33698765432", at=datetime(2025, 6, 1, tzinfo=UTC))
    data = excel_export(
        [
            ["Nom", "Téléphone", "Date du consentement", "Source du consentement", "Preuve"],
            ["Martin", "0612345678", "", "", ""],
            ["Durand", "0698765432", "05/01/2026 14:30", "formulaire web", "case cochée, IP 192.0.2.7"],
            ["Martin", "0612345678", "2026-02-03", "salon", ""],
            ["Petit", "0611111111", "31/02/2026", "", ""],
            ["Leroy", "0622222222", "", "salon", ""],
            ["Roux", "0633333333", "", "", ""],
        ]
    )
    report = await _import(db, alice, data)
    assert [(r.row, r.code) for r in report.refused] == [(5, "consent_date"), (6, "consent_without_date")]
    assert await consent_store.read(db, alice, "+33698765432") == ConsentRecord(
        datetime(2026, 1, 5, 13, 30, tzinfo=UTC), "formulaire web", "case cochée, IP 192.0.2.7", None
    )
    assert await consent_store.read(db, alice, "+33612345678") == ConsentRecord(
        datetime(2026, 2, 2, 23, 0, tzinfo=UTC), "salon", None, None
    )
    assert await consent_store.read(db, alice, "+33633333333") == ConsentRecord(None, None, None, None)
