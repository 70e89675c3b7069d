"""A node taken over (issue 19): its open attempts became this node's (engine/store/nodes.py take_over);
their channels are in the dead node's Stasis application on the shared Asterisk. A Foster serves that
application — a websocket of its own under the dead node's application name, the last to register a name
takes it over — and carries its calls on exactly as a restarted engine does (engine/services/dialing/
adoption.py): calls still up resume from their last stage, calls that ended meanwhile are reconciled from
their CDR and stage. Nothing is ever originated through a foster. It closes once none of those attempts is
open any more.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from uuid import UUID

import structlog

from engine.domain.callevents import CallResult
from engine.domain.retries import RetryPolicy
from engine.services.dialing.adoption import Adoption, AdoptionHost
from engine.services.dialing.stages import StageRecorder
from engine.settings import Settings
from engine.store import Database
from engine.store import attempts as attempts_store
from engine.store.attempts import Claim
from engine.telephony.ari import AriClient, events_task
from engine.telephony.callrequest import CallRequest
from engine.telephony.calls import CallService
from engine.telephony.stasis import StasisRouter

log = structlog.get_logger(__name__)

FOSTER_RECONCILE_S = 2.0  # how often a foster looks at the attempts it still follows


class _FosterHost:
    """The dialer as the adoption host, but for the calls the foster follows."""

    def __init__(self, dialer: AdoptionHost, calls: CallService) -> None:
        self._dialer = dialer
        self._calls = calls

    def follows(self, attempt_id: UUID) -> bool:
        return str(attempt_id) in self._calls.calls

    async def call_request(self, claim: Claim) -> CallRequest | None:
        return await self._dialer.call_request(claim)

    async def record(
        self, claim: Claim, result: CallResult, policy: RetryPolicy, *, reconciled: str | None = None
    ) -> None:
        await self._dialer.record(claim, result, policy, reconciled=reconciled)

    def take_slot(self, trunk: str) -> None:
        self._dialer.take_slot(trunk)

    def release_slot(self, trunk: str) -> None:
        self._dialer.release_slot(trunk)

    def wake(self) -> None:
        self._dialer.wake()


class Foster:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        dialer: AdoptionHost,
        *,
        node: str,
        app: str,
        on_adopted: Callable[[], Awaitable[None]] | None = None,
        fenced_at: datetime | None = None,
        holder: Callable[[], tuple[str, int] | None] | None = None,
    ) -> None:
        self.app = app
        self._on_adopted = on_adopted  # once its calls still up are followed (and counted) here
        self._db = db
        self._node = node
        self.ari = AriClient(
            host="127.0.0.1",
            port=settings.ari_port,
            user=settings.ari_user,
            password=settings.require("ari_password"),
            app=app,
            pool_size=4,
            reconnect_max_s=settings.ari_reconnect_max_s,
        )
        self.router = StasisRouter()
        self.calls = CallService(self.ari, self.router)
        self.stages = StageRecorder(db, self.ari)
        self.stages.holder = holder  # the taker's node and epoch: written only while it holds them
        self.calls.on_stage = self.stages.on_stage
        self.adoption = Adoption(
            settings,
            db,
            self.ari,
            self.calls,
            _FosterHost(dialer, self.calls),
            node=node,
            app=app,
            fenced_at=fenced_at,
        )

    async def run(self) -> None:
        """Until none of the application's attempts is open: follow them to their outcomes."""
        log.info("node.foster_started", app=self.app)
        async with self.ari, events_task(self.ari, self.router.dispatch):
            stages = asyncio.create_task(self.stages.run(), name=f"foster-stages-{self.app}")
            try:
                await self.ari.wait_ready(10)
                await self.adoption.after_connect()
                if self._on_adopted is not None:
                    await self._on_adopted()
                while True:
                    await asyncio.sleep(FOSTER_RECONCILE_S)
                    left = await attempts_store.open_attempts(self._db, self._node, self.app)
                    if not left and not self.calls.calls:
                        break
                    if self.ari.ready:
                        await self.adoption.reconcile()
            finally:
                await self.adoption.close()
                stages.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stages
                await self.stages.close()
                await self.router.close()
        log.info("node.foster_done", app=self.app)
