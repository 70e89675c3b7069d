"""Checks of the account made again when its calls are placed, not only when the send was created
(issue 17): a send created while the account could call abroad must not call abroad once it cannot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final
from uuid import UUID

from engine.store.db import Executor, rows_affected

NO_INTERNATIONAL: Final = "no_international"


async def pending_outside_france(db: Executor, send_id: UUID) -> tuple[bool, list[tuple[int, str]]]:
    """Whether the send's account may call abroad now, and the send's pending recipients whose number
    is not +33 (overseas French numbers included: the caller tells them apart)."""
    allowed = await db.fetchval(
        "SELECT a.allow_international FROM sends s JOIN accounts a ON a.id = s.account_id WHERE s.id = $1",
        send_id,
    )
    if allowed is None or allowed:
        return True, []
    rows = await db.fetch(
        "SELECT id, e164 FROM send_recipients WHERE send_id = $1 AND state = 'pending' "
        "AND e164 NOT LIKE '+33%'",
        send_id,
    )
    return False, [(r["id"], r["e164"]) for r in rows]


async def leave_out(db: Executor, recipient_ids: Sequence[int], reason: str) -> int:
    """Leave pending recipients out of their send (state cancelled: their credit returns when the send
    completes), with the reason the report shows."""
    if not recipient_ids:
        return 0
    status = await db.execute(
        "UPDATE send_recipients SET state = 'cancelled', wait_reason = $2 "
        "WHERE id = ANY($1::bigint[]) AND state = 'pending'",
        list(recipient_ids),
        reason,
    )
    return rows_affected(status)
