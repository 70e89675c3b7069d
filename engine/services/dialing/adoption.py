"""Adoption: calls that ended, or survived, while this engine was not following them — re-adopted
channels and outcomes read from Asterisk's CDRs (reconciliation after a crash or an ARI gap).

The dialer hands its open attempts over through ``AdoptionHost``; this module never imports the dialer.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol
from uuid import UUID

import structlog

from engine.domain.callevents import CallResult, EndReason
from engine.domain.outcomes import Outcome
from engine.domain.retries import RetryPolicy
from engine.settings import Settings
from engine.store import attempts as attempts_store
from engine.store.attempts import Claim, OpenAttempt
from engine.store.db import Database
from engine.telephony.ari import AriClient, AriError, AriUnavailable, Event
from engine.telephony.stasis import Queued, Route, Signal, StasisRouter

log = structlog.get_logger(__name__)

RECONCILE_GRACE_S: Final = 15.0  # an attempt with neither channel nor CDR is lost only after this


@dataclass(frozen=True, slots=True)
class AdoptLimit(Signal):
    """An adopted call had the time its message needs: hang it up."""


class AdoptionHost(Protocol):
    """What adoption needs from the dialer that owns the attempts."""

    def follows(self, attempt_id: UUID) -> bool:
        """True while this process still follows the attempt (its call, or its result being written)."""
        ...

    async def message_uri(self, send_id: UUID) -> str: ...

    async def record(
        self, claim: Claim, result: CallResult, policy: RetryPolicy, *, reconciled: str | None = None
    ) -> None: ...

    def take_slot(self, trunk: str) -> None: ...

    def release_slot(self, trunk: str) -> None: ...

    def wake(self) -> None: ...


class Adoption:
    """Follows this node's open attempts to an outcome after a (re)connection, and every so often."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        ari: AriClient,
        router: StasisRouter,
        host: AdoptionHost,
        *,
        node: str,
    ) -> None:
        self._settings = settings
        self._db = db
        self._ari = ari
        self._router = router
        self._host = host
        self._node = node
        self.done_after_connect = asyncio.Event()  # no new call is placed before this is set

    async def after_connect(self) -> None:
        """After a (re)connection: channels still up are re-adopted; attempts without a channel get their
        outcome from Asterisk's CDR (a short busy call that ended during the gap is still `busy`); without
        either, after a grace period, the attempt is `failed` (and retried only under the send's policy).
        """
        try:
            await self.reconcile()
        finally:
            self.done_after_connect.set()
            self._host.wake()

    def connection_lost(self) -> None:
        self.done_after_connect.clear()

    async def reconcile(self) -> None:
        channels = {str(c.get("id")): c for c in await self._ari.channels()}
        now = datetime.now(UTC)
        for open_ in await attempts_store.open_attempts(self._db, self._node):
            attempt_id = str(open_.claim.attempt_id)
            if self._host.follows(open_.claim.attempt_id):
                continue  # still followed by this process (the call service's sweep ends lost ones)
            if attempt_id in channels:
                self._adopt(open_, channels[attempt_id])
                continue
            cdr = await attempts_store.cdr_for(self._db, open_.claim.attempt_id)
            if cdr is None and now - open_.created_at < timedelta(
                seconds=self._settings.ring_timeout_s + RECONCILE_GRACE_S
            ):
                continue  # may still be being created, or its CDR not yet written: next time
            result = result_from_cdr(cdr, open_.message_duration_s, open_.created_at)
            await self._host.record(open_.claim, result, open_.policy, reconciled="cdr" if cdr else "lost")

    def _adopt(self, open_: OpenAttempt, channel: Event) -> None:
        """A call of this node survived our restart: follow it to its end without restarting its flow.

        Up: its message was playing; it is hung up once the message has had time to end. Still ringing:
        if it is answered, the message plays from the start. Either way its CDR gives the outcome.
        """
        attempt_id = str(open_.claim.attempt_id)
        if self._router.owns(attempt_id):
            return
        adopted = AdoptedCall(self._db, self._ari, self._host, open_)
        route = self._router.attach(attempt_id, adopted)
        adopted.route = route
        self._host.take_slot(open_.claim.trunk)
        ring_timeout_s = self._settings.ring_timeout_s
        loop = asyncio.get_running_loop()
        if channel.get("state") == "Up":
            created = parse_ari_time(str(channel.get("creationtime", "")))
            elapsed = (datetime.now(UTC) - created).total_seconds() if created else 0.0
            # Ringing took part of `elapsed`: hanging up later than needed is harmless, earlier is not.
            left = max(0.0, open_.message_duration_s + 2.0 - elapsed + ring_timeout_s)
            loop.call_later(left, route.put, AdoptLimit())
        else:
            loop.call_later(ring_timeout_s + open_.message_duration_s * 2 + 30, route.put, AdoptLimit())
        log.info("call.adopted", attempt_id=attempt_id, channel_state=channel.get("state"))


class AdoptedCall:
    """Follows a re-adopted channel, then records its outcome from Asterisk's CDR."""

    def __init__(self, db: Database, ari: AriClient, host: AdoptionHost, open_: OpenAttempt) -> None:
        self.db = db
        self.ari = ari
        self.host = host
        self.open = open_
        self.route: Route | None = None

    async def on_event(self, event: Queued) -> None:
        attempt_id = str(self.open.claim.attempt_id)
        if isinstance(event, AdoptLimit):
            with contextlib.suppress(AriError, AriUnavailable):
                await self.ari.hangup(attempt_id)
            return
        if not isinstance(event, dict):
            return  # nothing else is queued for an adopted call
        kind = event.get("type")
        if kind == "StasisStart":
            # Answered after the restart: play the message from the start, then hang up.
            message = await self.host.message_uri(self.open.claim.send_id)
            with contextlib.suppress(AriError, AriUnavailable):
                await self.ari.play(attempt_id, str(uuid.uuid4()), message)
        elif kind == "PlaybackFinished":
            with contextlib.suppress(AriError, AriUnavailable):
                await self.ari.hangup(attempt_id)
        elif kind == "ChannelDestroyed" and (event.get("channel") or {}).get("id") == attempt_id:
            await asyncio.sleep(0.2)  # let Asterisk write the CDR first
            cdr = await attempts_store.cdr_for(self.db, self.open.claim.attempt_id)
            result = result_from_cdr(
                cdr, self.open.message_duration_s, self.open.created_at, cause=_int(event.get("cause"))
            )
            await self.host.record(self.open.claim, result, self.open.policy, reconciled="adopted")
            self.host.release_slot(self.open.claim.trunk)
            self.host.wake()
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
