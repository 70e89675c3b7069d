"""Where each call is, kept where a restarted engine finds it (issue 16).

At every stage the call flow announces (engine/domain/callstage.py), the stage snapshot goes:
- onto the channel, as its CDR userfield (`CDR(userfield)` set through ARI): readable while the call
  lasts (adoption reads it back), and written by cdr_pgsql into asterisk_cdr when the channel hangs up —
  so it outlives both the channel and a kill -9 of the engine;
- into PostgreSQL (attempts.stage, stage_at, snapshot), in batches: one statement per flush for every
  call that moved, so the dialer's throughput holds. A batch not yet written is lost on kill -9; the
  channel and its CDR still have the stage.

Setting the channel's userfield is awaited in the call's own queue (the call's next action waits for
it): the stage on the channel is never behind what the call did.
"""

from __future__ import annotations

import asyncio
import contextlib
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

# The channel variable holding the snapshot: the CDR's userfield (255 characters, cdr_pgsql stores it).
STAGE_VARIABLE: Final = "CDR(userfield)"
# The stages written onto the channel: those whose loss would change a call's outcome or how it is
# carried on. Not dialing or ringing (the channel's own state says so), not amd (the CDR says answered:
# not_confirmed either way), not message_done (the message's start and the CDR's end tell it was heard
# to its end), not ended. Each write is one ARI request: the dialer's rate depends on how few there are.
ON_CHANNEL: Final = frozenset(
    {
        Stage.beep_wait,
        Stage.greeting,
        Stage.star_wait,
        Stage.message,
        Stage.transfer_dialing,
        Stage.bridged,
        Stage.apology,
        Stage.replay,
    }
)
FLUSH_S: Final = 0.25  # how often the stages that moved are written to PostgreSQL


class StageRecorder:
    """The call service's stage hook (CallService.on_stage) and the batch writer behind it."""

    def __init__(self, db: Database, ari: AriClient, *, flush_s: float = FLUSH_S) -> None:
        self._db = db
        self._ari = ari
        self._flush_s = flush_s
        self._pending: dict[str, attempts_store.StageRow] = {}
        self._on_channel: dict[str, Stage] = {}  # the last stage written on each live call's channel
        self.written = 0  # rows written (tests, metrics)

    async def on_stage(self, request: CallRequest, change: StageChanged) -> None:
        attempt_id = request.attempt_id
        if change.stage is Stage.ended:
            self._pending.pop(attempt_id, None)  # its result closes the attempt
            self._on_channel.pop(attempt_id, None)
            return
        encoded = change.snapshot.encode()
        self._pending[attempt_id] = attempts_store.StageRow(
            UUID(attempt_id), change.stage.value, change.snapshot.entered_at, encoded
        )
        if change.stage not in ON_CHANNEL:
            return
        if change.stage is not Stage.greeting and self._on_channel.get(attempt_id) is change.stage:
            return  # the same stage, a detail moved (the greeting's play number is worth the request)
        self._on_channel[attempt_id] = change.stage
        try:
            await self._ari.set_variable(attempt_id, STAGE_VARIABLE, encoded)
        except (AriError, AriUnavailable) as exc:  # the channel just went away, or Asterisk did
            log.debug("call.stage_not_on_channel", attempt_id=attempt_id, error=str(exc))

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
            await attempts_store.record_stages(self._db, list(batch.values()))
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


async def stage_on_channel(ari: AriClient, attempt_id: str) -> str | None:
    """The snapshot a live channel carries (None: no channel, or no stage set on it yet)."""
    try:
        value = await ari.get_variable(attempt_id, STAGE_VARIABLE)
    except AriError:
        return None
    return value or None
