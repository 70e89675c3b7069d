"""The law's gate in front of the claims of a commercial send (engine/domain/commercial.py): only the
recipients the law allows now are claimed; the others wait for the first instant it allows (calling
hours in the recipient's local time, holidays, 4 attempts per 30 days across the account's commercial
sends, 60 days after a refusal) or are left out (stop-listed, consent missing or withdrawn), each with
its reason for the report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final, Protocol
from uuid import UUID

import structlog

from engine.domain.areas import area_of
from engine.domain.commercial import Consent, History, Verdict, check
from engine.store import commercial as commercial_store
from engine.store import consent as consent_store
from engine.store import stoplists as stoplists_store
from engine.store.attempts import Claim
from engine.store.db import Executor, in_transaction

log = structlog.get_logger(__name__)

# A call claimed now starts a moment later: it must still be inside the window then. A recipient is
# claimed only when the law allows both now and this much later (12:59:59.5 waits for 14:00).
START_MARGIN: Final = timedelta(seconds=1)


def _verdict(
    e164: str, now: datetime, *, stop_listed: bool, consent: Consent | None, history: History | None
) -> Verdict | None:
    area = area_of(e164)
    verdict = None
    for at in (now, now + START_MARGIN):
        verdict = check("commercial", area, at, stop_listed=stop_listed, consent=consent, history=history)
        if verdict is not None:
            break
    return verdict


async def allowed(
    db: Executor, send_id: UUID, account_id: UUID, now: datetime, *, limit: int, stop_key: str | None = None
) -> Sequence[int]:
    """The ids of the send's due recipients the law allows at ``now`` (at most ``limit`` looked at); the
    others are postponed or left out in the store before this returns."""
    due = await commercial_store.due(db, send_id, now, limit=limit)
    if not due:
        return []
    numbers = [d.e164 for d in due]
    stopped = await stoplists_store.stopped(db, account_id, numbers, key=stop_key)
    consents = await consent_store.consents(db, account_id, numbers)
    histories = await commercial_store.histories(db, account_id, numbers, now)
    ok: list[int] = []
    waits: list[commercial_store.Wait] = []
    for item in due:
        verdict = _verdict(
            item.e164,
            now,
            stop_listed=item.e164 in stopped,
            consent=consents.get(item.e164),
            history=histories.get(item.e164),
        )
        if verdict is None:
            ok.append(item.recipient_id)
        else:
            waits.append(commercial_store.Wait(item.recipient_id, verdict.reason.value, verdict.until))
    if waits:
        await commercial_store.hold(db, waits)
        log.info(
            "send.law_held", send_id=str(send_id), held=len(waits), reasons=sorted({w.reason for w in waits})
        )
    return ok


class Claimer(Protocol):
    async def __call__(self, db: Executor, *, only: Sequence[int]) -> list[Claim]: ...


async def claim_lawfully(
    db: Executor,
    send_id: UUID,
    account_id: UUID,
    now: datetime,
    *,
    limit: int,
    claim: Claimer,
    stop_key: str | None = None,
) -> list[Claim]:
    """Gate and claim in one transaction, under the account's lock: two engines (or two of the account's
    sends to one number) cannot both read a number's history before either claim is committed, so the
    cap of 4 attempts per 30 days holds across them. The attempt rows commit here, before any originate."""
    async with in_transaction(db) as conn:  # a savepoint inside the daily cap's claim (spending.py)
        await commercial_store.lock_account(conn, account_id)
        only = await allowed(conn, send_id, account_id, now, limit=limit, stop_key=stop_key)
        if not only:
            return []
        return await claim(conn, only=only)
