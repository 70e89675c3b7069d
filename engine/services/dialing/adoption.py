"""Calls that ended, or survived, while this engine was not following them: re-adopted channels and
outcomes read from Asterisk's CDRs (the dialer's reconciliation after a crash or an ARI gap)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from engine.domain.callevents import CallResult, EndReason
from engine.domain.outcomes import Outcome
from engine.store import attempts as attempts_store
from engine.telephony.ari import AriError, AriUnavailable, Event
from engine.telephony.stasis import Route

if TYPE_CHECKING:
    from engine.services.dialing.dialer import Dialer

log = structlog.get_logger(__name__)


class AdoptedCall:
    """Follows a re-adopted channel, then records its outcome from Asterisk's CDR."""

    def __init__(self, dialer: Dialer, open_: attempts_store.OpenAttempt) -> None:
        self.dialer = dialer
        self.open = open_
        self.route: Route | None = None

    async def on_event(self, event: Event) -> None:
        kind = event.get("type")
        attempt_id = str(self.open.claim.attempt_id)
        ari = self.dialer.ari
        if kind == "StasisStart":
            # Answered after the restart: play the message from the start, then hang up.
            context = await self.dialer.send_context(self.open.claim.send_id)
            with contextlib.suppress(AriError, AriUnavailable):
                await ari.play(attempt_id, str(uuid.uuid4()), context.plan.message)
        elif kind in {"PlaybackFinished", "_AdoptLimit"}:
            with contextlib.suppress(AriError, AriUnavailable):
                await ari.hangup(attempt_id)
        elif kind == "ChannelDestroyed" and (event.get("channel") or {}).get("id") == attempt_id:
            await asyncio.sleep(0.2)  # let Asterisk write the CDR first
            cdr = await attempts_store.cdr_for(self.dialer.db, self.open.claim.attempt_id)
            result = result_from_cdr(
                cdr, self.open.message_duration_s, self.open.created_at, cause=_int(event.get("cause"))
            )
            await self.dialer.record(self.open.claim, result, self.open.policy, reconciled="adopted")
            self.dialer.release_slot(self.open.claim.trunk)
            self.dialer.wake()
            if self.route is not None:
                self.route.close()

    async def on_failure(self, exc: Exception) -> None:
        log.error("call.adopted_failed", attempt_id=str(self.open.claim.attempt_id), error=str(exc))


def parse_ari_time(text: str) -> datetime | None:
    """ARI's times look like 2026-11-25T14:28:32.798+0000."""
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return None


_CDR_OUTCOMES = {
    "BUSY": Outcome.busy,
    "NO ANSWER": Outcome.no_answer,
    "CONGESTION": Outcome.congestion,
    "FAILED": Outcome.failed,
}


def result_from_cdr(
    cdr: object, message_duration_s: float, created_at: datetime, *, cause: int | None = None
) -> CallResult:
    """The outcome of an attempt nobody followed, from its CDR (None: no trace of it at all)."""
    started = created_at.timestamp()
    if cdr is None:
        return _result(Outcome.failed, started, started, None, cause)
    disposition = str(cdr["disposition"] or "")  # type: ignore[index]
    answered = cdr["answer"]  # type: ignore[index]
    ended = cdr["end"] or datetime.now(UTC)  # type: ignore[index]
    if disposition == "ANSWERED":
        billsec = cdr["billsec"] or 0  # type: ignore[index]
        # Answered, and on the line for the whole message: it was heard (we cannot know more).
        outcome = Outcome.listened if billsec + 1 >= message_duration_s else Outcome.partial
    else:
        outcome = _CDR_OUTCOMES.get(disposition, Outcome.failed)
    return _result(outcome, started, ended.timestamp(), answered.timestamp() if answered else None, cause)


def _result(
    outcome: Outcome, started: float, ended: float, answered: float | None, cause: int | None
) -> CallResult:
    return CallResult(
        outcome=outcome,
        end_reason=EndReason.aborted,
        cause=cause,
        sip_code=None,
        dialstatus=None,
        may_fail_over=False,
        originated_at=started,
        ringing_at=None,
        answered_at=answered,
        ended_at=ended,
        message_started_at=None,
        greeting_plays=0,
        amd_status=None,
        amd_cause=None,
        transfer_outcome=None,
        transfer_started_at=None,
        transfer_answered_at=None,
        transfer_ended_at=None,
        abort_reason="reconciled",
    )


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return None
