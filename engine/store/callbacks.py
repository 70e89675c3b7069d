"""Who called a number back (issue 18): the account whose send presented the dialled number to the caller,
the latest first; else the one account that has it as a verified sender number."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from engine.store.db import Executor


@dataclass(frozen=True, slots=True)
class CalledBy:
    account_id: UUID
    company_name: str | None


async def called_by(db: Executor, presented: str, caller: str | None) -> CalledBy | None:
    """The account that called ``caller`` presenting ``presented`` (E.164 both), or the only account with
    ``presented`` as a verified sender number; None when neither tells."""
    if caller is not None:
        row = await db.fetchrow(
            "SELECT s.account_id, a.company_name FROM send_recipients r JOIN sends s ON s.id = r.send_id "
            "JOIN accounts a ON a.id = s.account_id WHERE r.e164 = $2 AND s.sender_e164 = $1 "
            "ORDER BY s.created_at DESC LIMIT 1",
            presented,
            caller,
        )
        if row is not None:
            return CalledBy(row["account_id"], row["company_name"])
    rows = await db.fetch(
        "SELECT n.account_id, a.company_name FROM sender_numbers n JOIN accounts a ON a.id = n.account_id "
        "WHERE n.e164 = $1 AND n.status = 'verified' LIMIT 2",
        presented,
    )
    if len(rows) != 1:
        return None
    return CalledBy(rows[0]["account_id"], rows[0]["company_name"])
