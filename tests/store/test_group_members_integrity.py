"""group_members' integrity on the real PostgreSQL (sql/0012): the rules of a foreign key — parents exist
in the membership's account, deleting a parent deletes its memberships — also under concurrent writers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import pytest

from engine.settings import Settings
from engine.store import Database
from engine.store import contacts as store
from engine.store.accounts import create_account


@dataclass(frozen=True)
class Parents:
    account: UUID
    contacts: tuple[int, ...]
    group: int


async def _parents(db: Database, settings: Settings, email: str) -> Parents:
    account = (await create_account(db, email, secret_key=settings.require("secret_key"))).account.id
    contacts = []
    for i in range(3):
        contact = await store.create_contact(db, account, phone=f"06123456{i:02d}", allow_international=False)
        contacts.append(contact.id)
    group = await store.create_group(db, account, "Élus")
    return Parents(account, tuple(contacts), group.id)


@pytest.fixture
async def alice(db: Database, stack_settings: Settings) -> Parents:
    return await _parents(db, stack_settings, "alice@example.fr")


@pytest.fixture
async def bob(db: Database, stack_settings: Settings) -> Parents:
    return await _parents(db, stack_settings, "bob@example.fr")


@pytest.fixture
async def second(stack_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own, for a transaction the test keeps open beside the pool's."""
    conn = await asyncpg.connect(stack_settings.dsn)
    try:
        yield conn
    finally:
        await conn.close()


_ADD = "INSERT INTO group_members (account_id, group_id, contact_id) SELECT $1, $2, unnest($3::bigint[])"


async def _members(db: Database | asyncpg.Connection) -> set[tuple[int, int]]:
    rows = await db.fetch("SELECT group_id, contact_id FROM group_members")
    return {(r["group_id"], r["contact_id"]) for r in rows}


async def _orphans(db: Database) -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM group_members m WHERE NOT EXISTS (SELECT 1 FROM contacts c "
            "WHERE c.account_id = m.account_id AND c.id = m.contact_id) OR NOT EXISTS (SELECT 1 FROM "
            "contact_groups g WHERE g.account_id = m.account_id AND g.id = m.group_id)"
        )
    )


async def test_a_membership_names_a_contact_and_a_group_of_its_own_account(
    db: Database, alice: Parents, bob: Parents
) -> None:
    refused = [
        (alice.account, alice.group, [alice.contacts[0], bob.contacts[0]]),  # Bob's contact
        (alice.account, bob.group, [alice.contacts[0]]),  # Bob's group
        (bob.account, alice.group, [alice.contacts[0]]),  # both Alice's, the row says Bob
        (alice.account, alice.group, [alice.contacts[0], 10**12]),  # no such contact
        (alice.account, 10**12, [alice.contacts[0]]),  # no such group
    ]
    for account, group, contacts in refused:
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await db.execute(_ADD, account, group, contacts)
    assert await _members(db) == set()

    await db.execute(_ADD, alice.account, alice.group, list(alice.contacts))
    assert await _members(db) == {(alice.group, c) for c in alice.contacts}
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await db.execute(
            "UPDATE group_members SET contact_id = $1 WHERE contact_id = $2",
            bob.contacts[0],
            alice.contacts[0],
        )
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await db.execute("UPDATE group_members SET group_id = $1", bob.group)
    assert await _members(db) == {(alice.group, c) for c in alice.contacts}


async def test_deleting_a_contact_a_group_or_the_account_deletes_their_memberships(
    db: Database, alice: Parents, bob: Parents
) -> None:
    for who in (alice, bob):
        await db.execute(_ADD, who.account, who.group, list(who.contacts))
    extra = await store.create_group(db, alice.account, "Presse")
    await db.execute(_ADD, alice.account, extra.id, list(alice.contacts[:2]))

    await store.delete_contacts(db, alice.account, alice.contacts[:1])
    assert await _members(db) == {(alice.group, c) for c in alice.contacts[1:]} | {
        (extra.id, alice.contacts[1])
    } | {(bob.group, c) for c in bob.contacts}
    await store.delete_group(db, alice.account, alice.group)
    assert await _members(db) == {(extra.id, alice.contacts[1])} | {(bob.group, c) for c in bob.contacts}
    await db.execute("DELETE FROM accounts WHERE id = $1", alice.account)
    assert await _members(db) == {(bob.group, c) for c in bob.contacts}
    assert await _orphans(db) == 0


async def test_truncating_contacts_or_groups_empties_the_memberships(db: Database, alice: Parents) -> None:
    await db.execute(_ADD, alice.account, alice.group, list(alice.contacts))
    await db.execute("TRUNCATE contact_groups CASCADE")
    assert await _members(db) == set()

    group = await store.create_group(db, alice.account, "Presse")
    await db.execute(_ADD, alice.account, group.id, list(alice.contacts))
    await db.execute("TRUNCATE contacts CASCADE")
    assert await _members(db) == set()


async def test_a_contact_or_group_never_moves_to_another_account(
    db: Database, alice: Parents, bob: Parents
) -> None:
    await db.execute(_ADD, alice.account, alice.group, list(alice.contacts))
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await db.execute("UPDATE contacts SET account_id = $1 WHERE id = $2", bob.account, alice.contacts[0])
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await db.execute("UPDATE contact_groups SET account_id = $1 WHERE id = $2", bob.account, alice.group)
    assert await store.count_contacts(db, alice.account) == 3
    assert await _orphans(db) == 0


async def test_a_contact_deleted_while_it_joins_a_group_leaves_no_membership(
    db: Database, second: asyncpg.Connection, alice: Parents
) -> None:
    contact = alice.contacts[0]
    # The membership's transaction locks the contact first: the deletion waits for it, then sees the
    # committed membership and deletes it too.
    async with second.transaction():
        await second.execute(_ADD, alice.account, alice.group, [contact])
        deleting = asyncio.ensure_future(store.delete_contacts(db, alice.account, [contact]))
        await asyncio.sleep(0.3)  # the deletion runs now, or waits for this transaction
    assert await asyncio.wait_for(deleting, 10) == 1
    assert await _members(db) == set()
    assert await _orphans(db) == 0

    # The deletion comes first: the membership waits for it, then finds no contact.
    contact = alice.contacts[1]
    async with second.transaction():
        await second.execute("DELETE FROM contacts WHERE id = $1", contact)
        adding = asyncio.ensure_future(db.execute(_ADD, alice.account, alice.group, [contact]))
        await asyncio.sleep(0.3)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await asyncio.wait_for(adding, 10)
    assert await _orphans(db) == 0


async def test_deleting_parents_outside_read_committed_is_refused(
    db: Database, second: asyncpg.Connection, alice: Parents
) -> None:
    # A REPEATABLE READ snapshot cannot see a membership committed after it: the cascade could miss it.
    await db.execute(_ADD, alice.account, alice.group, list(alice.contacts))
    for statement in ("DELETE FROM contacts WHERE id = $1", "DELETE FROM contact_groups WHERE id = $1"):
        parent = alice.contacts[0] if "contacts " in statement else alice.group
        with pytest.raises(asyncpg.FeatureNotSupportedError):
            async with second.transaction(isolation="repeatable_read"):
                await second.execute(statement, parent)
    assert await store.count_contacts(db, alice.account) == 3
    async with second.transaction(isolation="repeatable_read"):  # deleting nothing is fine
        await second.execute("DELETE FROM contacts WHERE id = 0")
    assert len(await _members(db)) == 3


async def test_memberships_are_checked_on_their_own_rows_even_on_stale_statistics(
    second: asyncpg.Connection, alice: Parents, bob: Parents
) -> None:
    # Statistics taken on a few contacts, a table that then grows: a join planned from them may put the
    # "tiny" contacts table on the outside, and the session keeps that plan for the next, larger
    # statements — every membership compared with every contact (this once turned the 100,000-row
    # import into minutes; 8,014,000 rows read here). A check reads at most its account's contacts,
    # once per statement (or only the rows the memberships name): never another account's contacts,
    # never the table once per membership.
    await second.execute("ANALYZE contacts")

    async def add_contacts(account: UUID, count: int, first: int) -> list[int]:
        rows = await second.fetch(
            "INSERT INTO contacts (account_id, e164, number_type, is_mobile) "
            "SELECT $1, '+336' || ($3 + i), 'mobile', true FROM generate_series(1, $2) i RETURNING id",
            account,
            count,
            first,
        )
        return [r["id"] for r in rows]

    await add_contacts(bob.account, 5_000, 10_000_000)
    sizes = (1_000, 3_000)
    async with second.transaction():
        for size in sizes:
            ids = await add_contacts(alice.account, size, 20_000_000 + 10 * size)
            await second.execute(_ADD, alice.account, alice.group, ids)
        scans = await second.fetchrow(
            "SELECT seq_scan, idx_tup_fetch FROM pg_stat_xact_user_tables WHERE relname = 'contacts'"
        )
    alice_contacts_at_each_statement = [
        len(alice.contacts) + sum(sizes[: k + 1]) for k in range(len(sizes))
    ]  # 1,003 then 4,003
    assert scans["seq_scan"] == 0
    assert scans["idx_tup_fetch"] <= sum(alice_contacts_at_each_statement)
