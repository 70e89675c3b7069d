"""Stop lists: each account's ("liste d'opposition": no later send of the account calls the number,
whatever its purpose) and the operator's (no send calls it). Numbers are keyed by their hash
(engine/domain/stoplists.py); sql/0016_french_law.sql."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

from engine.domain.commercial import Excluded
from engine.domain.stoplists import OBJECTIONS, SOURCES, Source, lookup_hashes, number_hash
from engine.store.db import Executor, in_transaction, rows_affected


@dataclass(frozen=True, slots=True)
class Entry:
    """A number to stop: its hash, and its E.164 form when known."""

    number_hash: str
    e164: str | None = None

    @classmethod
    def of(cls, e164: str) -> Entry:
        return cls(number_hash(e164), e164)


def _reason(source: Source) -> str:
    """A recipient left out because of an entry from ``source``: the callee's own objection, or a list."""
    return Excluded.refused.value if source in OBJECTIONS else Excluded.stop_listed.value


def _check(source: Source) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown stop-list source {source!r}")


# A stopped number is left out of the sends already under way too: their recipients not yet called are
# cancelled (the send's completion gives their credits back), the report saying why: "opposition" when
# the called person objected (the opt-out key, a call-back), "liste d'opposition" for a list. Numbers are
# matched by hash, so a list imported hashed stops them as well as a clear one.
_LEAVE_OUT: Final = (
    "UPDATE send_recipients r SET state = 'cancelled', wait_reason = $3 FROM sends s "
    "WHERE s.id = r.send_id AND ($1::uuid IS NULL OR s.account_id = $1) "
    "AND s.status IN ('scheduled', 'running', 'paused') AND r.state = 'pending' "
    "AND encode(sha256(convert_to(r.e164, 'UTF8')), 'hex') = ANY($2::text[])"
)


async def add(
    db: Executor, account_id: UUID, entries: Iterable[Entry], *, source: Source, at: datetime | None = None
) -> int:
    """Put numbers on the account's stop list (a number already there keeps its first date and source),
    and leave them out of the account's sends under way; how many were new."""
    _check(source)
    items = _unique(entries)
    async with in_transaction(db) as conn:
        added = await _add(conn, account_id, items, source=source, at=at)
        await conn.execute(_LEAVE_OUT, account_id, [e.number_hash for e in items], _reason(source))
    return added


def _unique(entries: Iterable[Entry]) -> list[Entry]:
    """One entry per number, its clear form kept when the file has it too: an INSERT … ON CONFLICT DO
    UPDATE may not meet the same row twice (a file listing a number twice, or clear and hashed)."""
    by_hash: dict[str, Entry] = {}
    for entry in entries:
        known = by_hash.get(entry.number_hash)
        if known is None or (known.e164 is None and entry.e164 is not None):
            by_hash[entry.number_hash] = entry
    return list(by_hash.values())


async def _add(
    db: Executor, account_id: UUID, items: list[Entry], *, source: Source, at: datetime | None
) -> int:
    added = await db.fetchval(
        "WITH n AS (INSERT INTO account_stop_list (account_id, number_hash, e164, added_at, source) "
        "SELECT $1, h, e, coalesce($4, now()), $5 FROM unnest($2::text[], $3::text[]) AS v(h, e) "
        "ON CONFLICT (account_id, number_hash) DO UPDATE SET e164 = excluded.e164 "
        "WHERE account_stop_list.e164 IS NULL AND excluded.e164 IS NOT NULL "
        "RETURNING xmax = 0 AS inserted) SELECT count(*) FILTER (WHERE inserted) FROM n",
        account_id,
        [e.number_hash for e in items],
        [e.e164 for e in items],
        at,
        source,
    )
    return int(added or 0)


async def add_operator(
    db: Executor, entries: Iterable[Entry], *, source: Source = "manual", note: str = ""
) -> int:
    """Put numbers on the operator's stop list, and leave them out of every send under way; how many
    were new."""
    _check(source)
    items = list(entries)
    async with in_transaction(db) as conn:
        added = await conn.fetchval(
            "WITH n AS (INSERT INTO operator_stop_list (number_hash, e164, source, note) "
            "SELECT h, e, $3, $4 FROM unnest($1::text[], $2::text[]) AS v(h, e) "
            "ON CONFLICT (number_hash) DO NOTHING RETURNING 1) SELECT count(*) FROM n",
            [e.number_hash for e in items],
            [e.e164 for e in items],
            source,
            note,
        )
        await conn.execute(_LEAVE_OUT, None, [e.number_hash for e in items], _reason(source))
    return int(added or 0)


async def remove(db: Executor, account_id: UUID, e164: str, *, key: str | None = None) -> bool:
    """Take a number off the account's stop list (the customer's own decision, e.g. a new consent);
    ``key``: the server secret, to find it in its erased (keyed) form too."""
    result = await db.execute(
        "DELETE FROM account_stop_list WHERE account_id = $1 AND number_hash = ANY($2::text[])",
        account_id,
        list(lookup_hashes(e164, key)),
    )
    return rows_affected(result) >= 1


async def stopped(
    db: Executor, account_id: UUID, numbers: Sequence[str], *, key: str | None = None
) -> set[str]:
    """Those of ``numbers`` (E.164) on the account's stop list or the operator's. ``key``: the server
    secret, so that the numbers erased since (kept by their keyed hash) are found too."""
    if not numbers:
        return set()
    hashes = {h: n for n in numbers for h in lookup_hashes(n, key)}
    rows = await db.fetch(
        "SELECT number_hash FROM account_stop_list WHERE account_id = $1 AND number_hash = ANY($2::text[]) "
        "UNION SELECT number_hash FROM operator_stop_list WHERE number_hash = ANY($2::text[])",
        account_id,
        list(hashes),
    )
    return {hashes[r["number_hash"]] for r in rows}
