"""Contacts' consent to commercial automated calls (L34-5 CPCE, L223-1 Code de la consommation): when it
was given, where, its proof, and its withdrawal; sql/0016_french_law.sql."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from engine.domain.commercial import Consent
from engine.domain.contacts import ConsentRecord
from engine.store.db import Executor, rows_affected


async def record(
    db: Executor,
    account_id: UUID,
    e164: str,
    *,
    given_at: datetime,
    source: str,
    proof: str = "",
) -> bool:
    """Record the consent of the account's contact with this number (a new consent replaces an older or
    withdrawn one); False when the account has no contact with this number."""
    status = await db.execute(
        "UPDATE contacts SET consent_at = $3, consent_source = $4, consent_proof = $5, "
        "consent_withdrawn_at = NULL, updated_at = now() WHERE account_id = $1 AND e164 = $2",
        account_id,
        e164,
        given_at,
        source.strip()[:200] or None,
        proof.strip()[:2000] or None,
    )
    return rows_affected(status) == 1


async def withdraw(db: Executor, account_id: UUID, e164: str, *, at: datetime) -> bool:
    """The contact withdrew its consent at ``at`` (kept, with its proof, for the record)."""
    status = await db.execute(
        "UPDATE contacts SET consent_withdrawn_at = $3, updated_at = now() WHERE account_id = $1 AND "
        "e164 = $2 AND consent_at IS NOT NULL AND consent_withdrawn_at IS NULL",
        account_id,
        e164,
        at,
    )
    return rows_affected(status) == 1


async def consents(db: Executor, account_id: UUID, numbers: Sequence[str]) -> dict[str, Consent]:
    """The recorded consents of the account's contacts among ``numbers`` (a number without a contact, or
    a contact without consent, is absent)."""
    if not numbers:
        return {}
    rows = await db.fetch(
        "SELECT e164, consent_at, consent_withdrawn_at FROM contacts WHERE account_id = $1 "
        "AND e164 = ANY($2::text[]) AND consent_at IS NOT NULL",
        account_id,
        list(numbers),
    )
    return {r["e164"]: Consent(r["consent_at"], r["consent_withdrawn_at"]) for r in rows}


async def read(db: Executor, account_id: UUID, e164: str) -> ConsentRecord | None:
    """The consent of the account's contact with this number (None: no such contact)."""
    row = await db.fetchrow(
        "SELECT consent_at, consent_source, consent_proof, consent_withdrawn_at FROM contacts "
        "WHERE account_id = $1 AND e164 = $2",
        account_id,
        e164,
    )
    if row is None:
        return None
    return ConsentRecord(
        row["consent_at"], row["consent_source"], row["consent_proof"], row["consent_withdrawn_at"]
    )
