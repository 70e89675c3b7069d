"""Claiming a send's due recipients for this engine's free slots: the gates a claim passes, in order —
numbers abroad left out once the account lost the international option (issue 17), the account's daily
spending cap for the whole cluster (issue 17), the law's gate for commercial sends (issue 18), then the
claim itself, fenced by the node's epoch (issue 19: engine/store/attempts.py)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime
from uuid import UUID

import structlog

from engine.domain.numbers import Refusal, normalize
from engine.services.dialing import lawgate
from engine.services.dialing.membership import Membership
from engine.settings import Settings
from engine.store import Database, dialtime
from engine.store import attempts as attempts_store
from engine.store import spending as spending_store
from engine.store.attempts import Claim, Slot
from engine.store.db import Executor
from engine.store.sends import RunnableSend

log = structlog.get_logger(__name__)


class Claims:
    def __init__(
        self, settings: Settings, db: Database, *, node: str, app: str, membership: Membership
    ) -> None:
        self.settings = settings
        self.db = db
        self.node = node
        self.app = app
        self.membership = membership
        self._abroad_checked: set[UUID] = set()  # sends whose recipients abroad were checked (issue 17)

    async def take(
        self,
        send: RunnableSend,
        *,
        classes: list[tuple[str, int]],
        slots: list[Slot],
        limit: int,
        now_dt: datetime,
    ) -> list[Claim]:
        """Up to ``limit`` of the send's due recipients, each matched to a slot (``classes``: the route
        classes' patterns and slot counts, best first)."""
        if send.id not in self._abroad_checked:
            await self._leave_out_abroad(send.id)
        claim = functools.partial(self._claim, send=send, classes=classes, slots=slots, now_dt=now_dt)
        if send.account_id is not None and send.daily_cap:  # no cap: no query before the claim
            return await self._claim_within_daily_cap(send.id, send.account_id, limit, now_dt, claim)
        return await claim(self.db, limit)

    async def _leave_out_abroad(self, send_id: UUID) -> None:
        """Once per send and engine, before its first claim here: an account that lost the international
        option since the send was created calls no number abroad (each is left out, reason in the report)."""
        allowed, pending = await dialtime.pending_outside_france(self.db, send_id)
        if not allowed:
            abroad = [rid for rid, e164 in pending if isinstance(normalize(e164), Refusal)]
            left = await dialtime.leave_out(self.db, abroad, dialtime.NO_INTERNATIONAL)
            if left:
                log.warning("send.international_left_out", send_id=str(send_id), recipients=left)
        self._abroad_checked.add(send_id)

    async def _claim(
        self,
        db: Executor,
        limit: int,
        *,
        send: RunnableSend,
        classes: list[tuple[str, int]],
        slots: list[Slot],
        now_dt: datetime,
    ) -> list[Claim]:
        """Claim up to ``limit`` of the send's due recipients on ``db`` (the pool, or the transaction of
        the daily cap's claim)."""
        take = functools.partial(
            attempts_store.claim,
            send_id=send.id,
            classes=classes,
            slots=slots,
            limit=limit,
            node=self.node,
            app=self.app,
            now=now_dt,
            epoch=self.membership.epoch,
            touch=False,  # by the dispatch, once its calls are on their way
        )
        if send.commercial and send.account_id is not None:
            # The law first: only the recipients it allows now are claimed (the others wait).
            return await lawgate.claim_lawfully(
                db,
                send.id,
                send.account_id,
                now_dt,
                limit=limit + 10,
                claim=take,
                stop_key=self.settings.require("secret_key"),
            )
        return await take(db)

    async def _claim_within_daily_cap(
        self,
        send_id: UUID,
        account_id: UUID,
        share: int,
        now_dt: datetime,
        claim: Callable[[Executor, int], Awaitable[list[Claim]]],
    ) -> list[Claim]:
        """Claim at most as many of ``share`` calls as the account's daily spending cap still allows, the
        whole cluster together (engine/store/spending.claim_within_cap); at the cap, the send's due
        recipients wait for the next day (reason ``daily_cap`` in the report) and none is claimed."""
        capped = await spending_store.claim_within_cap(
            self.db,
            account_id,
            send_id,
            default_cap=self.settings.daily_spend_cap,
            limit=share,
            now=now_dt,
            claim=claim,
        )
        spending = capped.spending
        if spending is not None and not capped.claims and spending.remaining == 0:
            log.warning(
                "send.daily_cap_reached",
                send_id=str(send_id),
                account_id=str(account_id),
                cap=spending.cap,
                spent=spending.spent,
                postponed=capped.postponed,
                until=spending.next_day.isoformat(),
            )
        return capped.claims
