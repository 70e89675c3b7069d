"""The numbers a send to contacts and groups calls (once each, by contact id)."""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple
from uuid import UUID

from engine.errors import InvalidInput
from engine.store.contact_checks import hash_joins, no_contact, no_group, numbers_of
from engine.store.db import Executor, in_transaction


class Target(NamedTuple):
    """One number a send calls, and the contact it comes from."""

    contact_id: int
    e164: str


async def numbers_for_targets(
    db: Executor,
    account_id: UUID,
    *,
    contact_ids: Collection[int] = (),
    group_ids: Collection[int] = (),
    subset_contact_ids: Collection[int] | None = None,
) -> list[Target]:
    """The numbers a send calls, once each, by contact id.

    ``contact_ids`` are called; so are the members of ``group_ids``, or only those of them listed in
    ``subset_contact_ids`` ("part of the groups"; subset ids outside the chosen groups are not called).
    Raises NotFound when an id is not the account's, InvalidInput ``no_targets`` when nothing is chosen,
    ``group_empty`` when the only chosen groups are empty (http.php's 86), ``no_recipients`` when the
    subset keeps none of their members.
    """
    contacts = sorted(set(contact_ids))
    groups = sorted(set(group_ids))
    subset = None if subset_contact_ids is None else sorted(set(subset_contact_ids))
    if not contacts and not groups:
        raise InvalidInput(
            "no_targets",
            "a send needs a contact or a group",
            message_fr="Choisissez un contact ou un groupe.",
        )
    async with in_transaction(db) as conn, hash_joins(conn):
        mentioned = sorted(set(contacts) | set(subset or ()))
        numbers = await numbers_of(conn, account_id, mentioned)
        if len(numbers) != len(mentioned):
            raise no_contact(account_id, "among the chosen ids")
        counts = await conn.fetch(
            "SELECT g.id, (SELECT count(*) FROM group_members m WHERE m.group_id = g.id) AS members "
            "FROM contact_groups g WHERE g.account_id = $1 AND g.id = ANY($2::bigint[])",
            account_id,
            groups,
        )
        if len(counts) != len(groups):
            raise no_group(account_id, "among the chosen ids")
        if not contacts and all(r["members"] == 0 for r in counts):
            raise InvalidInput(
                "group_empty",
                "the chosen contact groups are empty",
                message_fr="Le groupe de contacts est vide.",
            )
        members: dict[int, str] = {}
        if groups:
            rows = await conn.fetch(
                "SELECT c.id, c.e164 FROM contacts c WHERE c.account_id = $1 AND EXISTS "
                "(SELECT 1 FROM group_members m WHERE m.account_id = $1 AND m.contact_id = c.id "
                "AND m.group_id = ANY($2::bigint[]))",
                account_id,
                groups,
            )
            members = {r["id"]: r["e164"] for r in rows}
    # Set operations here, not in SQL: linear whatever the sizes and whatever the planner's statistics
    # (a 50,000-id subset as "= ANY(array)" filter over 100,000 members is quadratic).
    chosen = {cid: members[cid] for cid in (members if subset is None else subset) if cid in members}
    chosen.update((cid, numbers[cid]) for cid in contacts)
    if not chosen:
        raise InvalidInput(
            "no_recipients",
            "the chosen part of the groups holds none of their members",
            message_fr="Aucun des contacts choisis n'appartient aux groupes sélectionnés.",
        )
    return [Target(cid, chosen[cid]) for cid in sorted(chosen)]
