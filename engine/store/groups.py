"""Contact groups of one account and their members (another account's group or contact is NotFound)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Final
from uuid import UUID

import asyncpg

from engine.domain.contacts import MAX_GROUPS, Group, clean_group_name, search_key, tidy, too_many_groups
from engine.errors import InvalidInput, NotFound
from engine.store.contact_checks import check_group, hash_joins, no_contact, no_group, numbers_of
from engine.store.db import Executor, in_transaction, rows_affected


def _group(row: asyncpg.Record) -> Group:
    return Group(id=row["id"], name=row["name"], member_count=row["members"], created_at=row["created_at"])


def _group_exists(name: str) -> InvalidInput:
    return InvalidInput(
        "group_exists",
        f"a contact group named {name!r} already exists",
        message_fr="Un groupe porte déjà ce nom.",
    )


_GROUP_SELECT: Final = (
    "SELECT g.id, g.name, g.created_at, "
    "(SELECT count(*) FROM group_members m WHERE m.group_id = g.id) AS members FROM contact_groups g "
)


async def _group_row(conn: Executor, account_id: UUID, group_id: int) -> Group:
    row = await conn.fetchrow(_GROUP_SELECT + "WHERE g.account_id = $1 AND g.id = $2", account_id, group_id)
    if row is None:
        raise no_group(account_id, group_id)
    return _group(row)


async def get_group(db: Executor, account_id: UUID, group_id: int) -> Group:
    """The account's group with its member count; NotFound otherwise."""
    return await _group_row(db, account_id, group_id)


async def group_by_name(db: Executor, account_id: UUID, name: str) -> Group:
    """The account's group of that name (any case, any accents), with its member count; else NotFound."""
    row = await db.fetchrow(
        _GROUP_SELECT + "WHERE g.account_id = $1 AND g.name_key = $2",
        account_id,
        search_key(tidy(name)),
    )
    if row is None:
        raise no_group(account_id, repr(name))
    return _group(row)


async def list_groups(db: Executor, account_id: UUID) -> list[Group]:
    """The account's groups (at most MAX_GROUPS) by name, with their member counts."""
    rows = await db.fetch(_GROUP_SELECT + "WHERE g.account_id = $1 ORDER BY g.name_key", account_id)
    return [_group(r) for r in rows]


async def create_group(db: Executor, account_id: UUID, name: str) -> Group:
    """A new, empty group; InvalidInput ``group_exists`` or ``too_many_groups``."""
    clean = clean_group_name(name)
    async with in_transaction(db) as conn:
        count = await conn.fetchval("SELECT count(*) FROM contact_groups WHERE account_id = $1", account_id)
        if count >= MAX_GROUPS:
            raise too_many_groups()
        try:
            row = await conn.fetchrow(
                "INSERT INTO contact_groups (account_id, name, name_key) VALUES ($1, $2, $3) "
                "ON CONFLICT (account_id, name_key) DO NOTHING RETURNING id, name, created_at, 0 AS members",
                account_id,
                clean,
                search_key(clean),
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise NotFound(f"no account {account_id}", message_fr="Compte introuvable.") from exc
    if row is None:
        raise _group_exists(clean)
    return _group(row)


async def rename_group(db: Executor, account_id: UUID, group_id: int, name: str) -> Group:
    """Rename the account's group; InvalidInput ``group_exists`` if another group has that name."""
    clean = clean_group_name(name)
    async with in_transaction(db) as conn:
        try:
            found = await conn.fetchval(
                "UPDATE contact_groups SET name = $3, name_key = $4 "
                "WHERE account_id = $1 AND id = $2 RETURNING id",
                account_id,
                group_id,
                clean,
                search_key(clean),
            )
        except asyncpg.UniqueViolationError as exc:
            raise _group_exists(clean) from exc
        if found is None:
            raise no_group(account_id, group_id)
        return await _group_row(conn, account_id, group_id)


async def delete_group(db: Executor, account_id: UUID, group_id: int) -> None:
    """Delete the account's group and its memberships; its contacts stay."""
    status = await db.execute(
        "DELETE FROM contact_groups WHERE account_id = $1 AND id = $2", account_id, group_id
    )
    if rows_affected(status) == 0:
        raise no_group(account_id, group_id)


async def add_members(db: Executor, account_id: UUID, group_id: int, contact_ids: Collection[int]) -> int:
    """Put contacts in the group; returns how many were not in it yet. NotFound for a foreign id."""
    wanted = sorted(set(contact_ids))
    async with in_transaction(db) as conn, hash_joins(conn):
        await check_group(conn, account_id, group_id)
        if len(await numbers_of(conn, account_id, wanted)) != len(wanted):
            raise no_contact(account_id, "among the given ids")
        status = await conn.execute(
            "INSERT INTO group_members (account_id, group_id, contact_id) "
            "SELECT $1, $2, unnest($3::bigint[]) ON CONFLICT DO NOTHING",
            account_id,
            group_id,
            wanted,
        )
    return rows_affected(status)


async def remove_members(db: Executor, account_id: UUID, group_id: int, contact_ids: Collection[int]) -> int:
    """Take contacts out of the group (they stay contacts); returns how many were in it."""
    async with in_transaction(db) as conn, hash_joins(conn):
        await check_group(conn, account_id, group_id)
        status = await conn.execute(
            "DELETE FROM group_members m USING unnest($3::bigint[]) AS gone (id) "
            "WHERE m.account_id = $1 AND m.group_id = $2 AND m.contact_id = gone.id",
            account_id,
            group_id,
            sorted(set(contact_ids)),
        )
    return rows_affected(status)
