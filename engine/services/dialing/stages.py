"""Where each call is, kept where a restarted engine finds it (issue 16).

At every stage the call flow announces (engine/domain/callstage.py), the stage snapshot goes:
- into Asterisk, as a global variable named after the attempt (`VC_STAGE_<attempt id>`), set through
  ARI: it lives as long as Asterisk does, so it outlives a kill -9 of the engine and the call itself, and
  adoption reads it back (engine/services/dialing/adoption.py), then deletes it. Not a channel variable:
  ARI runs a channel's variable writes in the channel's command queue, behind the playback in progress
  (measured: a write during the message waited for its end, and the call's `9` with it);
- into PostgreSQL (attempts.stage, stage_at, snapshot), in batches: one statement per flush for every
  call that moved, so the dialer's throughput holds. A batch not yet written is lost on kill -9; Asterisk
  still has the stage.

The write into Asterisk is awaited in the call's own queue (the call's next action waits for it): the
stage Asterisk holds is never behind what the call did. When the call ends, its stage stays in Asterisk
until its result is in PostgreSQL (`recorded`, called by the attempt once its result is written): a kill
-9 in between leaves an open attempt whose last stage adoption still finds. The deletion is not on the
call's way to its end, so the channel slot is free one ARI request sooner.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final
from uuid import UUID

import structlog

from engine.domain.callevents import StageChanged
from engine.domain.callstage import Stage
from engine.errors import DatabaseUnavailable
from engine.store import attempts as attempts_store
from engine.store.db import Database
from engine.telephony.ari import AriClient, AriError, AriUnavailable
from engine.telephony.callrequest import CallRequest

log = structlog.get_logger(__name__)

FLUSH_S: Final = 0.25  # how often the stages that moved are written to PostgreSQL
# The stages written into Asterisk: those whose loss would change a call's outcome or how it is carried
# on. Not dialing or ringing (the channel's own state says so), not amd (answered, the message not
# started: not_confirmed either way), not message_done (the message's start and the call's end tell it
# was heard to its end). Each write is one ARI request: the dialer's rate depends on how few there are.
IN_ASTERISK: Final = frozenset(
    {
        Stage.beep_wait,
        Stage.greeting,
        Stage.star_wait,
        Stage.message,
        Stage.transfer_dialing,
        Stage.bridged,
        Stage.apology,
        Stage.replay,
        Stage.opt_out,  # the callee objected: the stop list must hear of it (issue 18)
    }
)


def stage_variable(attempt_id: str) -> str:
    """The name of the global variable holding an attempt's stage."""
    return "VC_STAGE_" + attempt_id.replace("-", "")


class StageRecorder:
    """The call service's stage hook (CallService.on_stage) and the batch writer behind it."""

    def __init__(self, db: Database, ari: AriClient, *, flush_s: float = FLUSH_S) -> None:
        self._db = db
        self._ari = ari
        self._flush_s = flush_s
        self._pending: dict[str, attempts_store.StageRow] = {}
        self._in_asterisk: dict[str, Stage] = {}  # the last stage written into Asterisk, per live call
        self._ended_in_asterisk: set[str] = set()  # ended calls whose stage Asterisk keeps until recorded
        self.written = 0  # rows written (tests, metrics)
        # The node writing and its epoch (None: no check): stages queued before a freeze and flushed
        # after a takeover are not written (engine/store/attempts.py record_stages, issue 19).
        self.holder: Callable[[], tuple[str, int] | None] | None = None

    async def on_stage(self, request: CallRequest, change: StageChanged) -> None:
        attempt_id = request.attempt_id
        if change.stage is Stage.ended:
            self._pending.pop(attempt_id, None)  # its result closes the attempt
            if self._in_asterisk.pop(attempt_id, None) is not None:
                self._ended_in_asterisk.add(attempt_id)  # deleted once the result is written: recorded()
            return
        encoded = change.snapshot.encode()
        self._pending[attempt_id] = attempts_store.StageRow(
            UUID(attempt_id), change.stage.value, change.snapshot.entered_at, encoded
        )
        if change.stage not in IN_ASTERISK:
            return
        if change.stage is not Stage.greeting and self._in_asterisk.get(attempt_id) is change.stage:
            return  # the same stage, a detail moved (the greeting's play number is worth the request)
        self._in_asterisk[attempt_id] = change.stage
        try:
            await self._ari.set_global(stage_variable(attempt_id), encoded)
        except (AriError, AriUnavailable) as exc:  # Asterisk is away: PostgreSQL's copy will do
            log.debug("call.stage_not_in_asterisk", attempt_id=attempt_id, error=str(exc))

    async def recorded(self, attempt_id: str) -> None:
        """The attempt's result is in PostgreSQL: Asterisk need not keep its stage any longer."""
        if attempt_id in self._ended_in_asterisk:
            self._ended_in_asterisk.discard(attempt_id)
            await forget_stage(self._ari, attempt_id)

    async def run(self) -> None:
        """Forever: write the stages that moved since the last flush (a task of the engine)."""
        while True:
            await asyncio.sleep(self._flush_s)
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        try:
            holder = self.holder() if self.holder is not None else None
            await attempts_store.record_stages(self._db, list(batch.values()), holder=holder)
        except DatabaseUnavailable as exc:
            # Kept for the next flush, unless the call moved on meanwhile (its newer stage wins).
            for attempt_id, row in batch.items():
                self._pending.setdefault(attempt_id, row)
            log.warning("call.stages_postponed", calls=len(batch), error=str(exc))
            return
        self.written += len(batch)

    async def close(self) -> None:
        with contextlib.suppress(DatabaseUnavailable):
            await self.flush()


async def stage_in_asterisk(ari: AriClient, attempt_id: str) -> str | None:
    """The snapshot Asterisk keeps for an attempt (None: none, or Asterisk cannot say)."""
    try:
        return await ari.get_global(stage_variable(attempt_id))
    except (AriError, AriUnavailable):
        return None


async def forget_stage(ari: AriClient, attempt_id: str) -> None:
    """The attempt has its outcome: Asterisk need not keep its stage any longer."""
    try:
        await ari.set_global(stage_variable(attempt_id), None)
    except (AriError, AriUnavailable) as exc:
        log.debug("call.stage_not_forgotten", attempt_id=attempt_id, error=str(exc))
