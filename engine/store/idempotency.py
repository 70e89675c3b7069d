"""Idempotency keys of send creation: which send an earlier request with the same key created.

Looked up before anything is validated, so that a retried request gets its send back even when the
first one's checks would no longer pass (a deferred time now past, credits now spent by that send).
"""

from __future__ import annotations

from typing import Final
from uuid import UUID

from engine.store.accounts import Executor

KEY_MAX_LENGTH: Final = 200


async def send_for_key(db: Executor, account_id: UUID, key: str) -> UUID | None:
    """The account's send created with ``key``, else None (keys are per account: sql/0005's UNIQUE)."""
    send_id: UUID | None = await db.fetchval(
        "SELECT id FROM sends WHERE account_id = $1 AND idempotency_key = $2", account_id, key
    )
    return send_id
