"""Adoption: calls that outlived the engine that followed them, or ended while nobody followed them (a
kill -9, a websocket gap, another engine of the node taking over, an Asterisk restart) — issue 16.

- A call whose channel is still up is carried on from the last stage its call flow announced (the
  snapshot Asterisk keeps, else the one in PostgreSQL; engine/services/dialing/stages.py): a `*` wait
  keeps waiting for what is left of it, a message playing is left to finish, a bridged transfer stays
  bridged (CallService.resume, CallFlow.resume).
- A transfer leg whose callee is gone is hung up at once, and its bridge destroyed.
- A call that ended meanwhile gets the outcome of the unobserved rule (engine/domain/unobserved.py) from
  its last stage (the one Asterisk keeps, else PostgreSQL's) and its CDR.
  Who cut it: Asterisk restarted since it was placed → ours (not charged, called again without using one
  of its attempts unless the message was heard to its end); a CDR without a restart → the callee;
  neither, after a grace period → unknown (nothing charged, retried only under the send's policy).
- Calls this process still follows whose channel vanished in the gap get the same rule (the call's own
  machine applies it: ChannelVanished with the cut).

The dialer hands its open attempts over through ``AdoptionHost``; this module never imports the dialer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol
from uuid import UUID

import structlog

from engine.domain import callevents as ce
from engine.domain.callevents import CallResult, EndReason
from engine.domain.callstage import Stage, StageSnapshot
from engine.domain.outcomes import Outcome
from engine.domain.retries import RetryPolicy
from engine.domain.unobserved import Cut, unobserved_outcome
from engine.services.dialing.stages import forget_stage, stage_in_asterisk
from engine.settings import Settings
from engine.store import attempts as attempts_store
from engine.store.attempts import Claim, OpenAttempt
from engine.store.db import Database
from engine.telephony import beepears, callids
from engine.telephony.ari import AriClient, AriError, AriUnavailable, Event
from engine.telephony.callrequest import CallRequest
from engine.telephony.calls import CallService
from engine.telephony.outbound import (
    AMD_CONTEXT,
    STASIS_CONTEXT,
    TRANSFER_CONTEXT,
    ChannelVanished,
    Recheck,
    TransferVanished,
)

log = structlog.get_logger(__name__)

RECONCILE_GRACE_S: Final = 15.0  # an attempt with neither channel nor CDR is lost only after this
# A CDR that ended this long before Asterisk's start ended before the restart: not a cut of the restart.
RESTART_SLACK_S: Final = 2.0
# A CDR's duration is in whole seconds, and its row is inserted a moment after the channel's end: the start
# its insertion time gives may be up to a second and that moment late (half a second allowed for it).
CDR_CLOCK_SLACK_S: Final = 1.5


class AdoptionHost(Protocol):
    """What adoption needs from the dialer that owns the attempts."""

    def follows(self, attempt_id: UUID) -> bool:
        """True while this process still follows the attempt (its call, or its result being written)."""
        ...

    async def call_request(self, claim: Claim) -> CallRequest | None:
        """The request the attempt's call was placed with (None: its trunk is gone)."""
        ...

    async def record(
        self, claim: Claim, result: CallResult, policy: RetryPolicy, *, reconciled: str | None = None
    ) -> None: ...

    def take_slot(self, trunk: str) -> None: ...

    def release_slot(self, trunk: str) -> None: ...

    def wake(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Cdr:
    """What Asterisk's CDR of an attempt's channel says (asterisk_cdr)."""

    disposition: str
    answered_at: float | None
    ended_at: float | None
    # Its channel's creation on PostgreSQL's clock (the row's insertion less the CDR's duration): never
    # earlier than the true start, at most CDR_CLOCK_SLACK_S later.
    started_at: float | None = None

    @property
    def dial_outcome(self) -> Outcome | None:
        return _CDR_OUTCOMES.get(self.disposition)


class Adoption:
    """Follows this node's open attempts to an outcome after a (re)connection, and every so often."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        ari: AriClient,
        calls: CallService,
        host: AdoptionHost,
        *,
        node: str,
        app: str | None = None,
        fostered: Callable[[], Collection[str]] | None = None,
        fenced_at: datetime | None = None,
    ) -> None:
        self._settings = settings
        self._db = db
        self._ari = ari
        self._calls = calls
        self._host = host
        self._node = node
        # Issue 19: the attempts of a node taken over whose channels are in its own Stasis application
        # are followed by a Foster (engine/services/dialing/takeover.py) through that application:
        # ``app`` (a foster's adoption: only those), ``fostered`` (the dialer's: all but those).
        self._app = app
        self._fostered = fostered
        # A foster's: when the node that placed these calls was fenced (its epoch raised). Its channels
        # created later carried the old epoch to the Kamailio edge, which refused them: never placed.
        self._fenced_at = fenced_at
        self._asterisk_started: datetime | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.done_after_connect = asyncio.Event()  # no new call is placed before this is set

    async def after_connect(self) -> None:
        """After a (re)connection: calls still up are carried on, calls that ended meanwhile get their
        outcome (see the module's docstring); then new calls may be placed."""
        try:
            await self._note_asterisk_start()
            await self.reconcile(after_gap=True)
        finally:
            self.done_after_connect.set()
            self._host.wake()

    def connection_lost(self) -> None:
        self.done_after_connect.clear()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def reconcile(self, *, after_gap: bool = False) -> None:
        """`after_gap`: events may have been lost (a reconnection): the calls followed here are checked
        against what Asterisk has (their playback, their transfer leg)."""
        channels = {str(c.get("id")): c for c in await self._ari.channels()}
        await self._vanished_while_followed(set(channels), recheck=after_gap)
        now = datetime.now(UTC)
        fostered = set(self._fostered()) if self._fostered is not None else set()
        for open_ in await attempts_store.open_attempts(self._db, self._node, self._app):
            if open_.app in fostered:
                continue
            attempt_id = str(open_.claim.attempt_id)
            if self._host.follows(open_.claim.attempt_id):
                continue  # still followed by this process (the call service's sweep ends lost ones)
            if attempt_id in channels:
                leg = channels.get(callids.transfer_leg_id(attempt_id))
                await self._resume(open_, channels[attempt_id], leg)
                continue
            await self._end_transfer_of_gone_call(attempt_id, set(channels))
            cdr = await self._cdr(open_.claim.attempt_id)
            if self._refused_at_the_edge(cdr):
                # Its node woke after it was fenced and sent the request it held (engine/services/dialing/
                # membership.py): Kamailio refused the INVITE. Not placed: its recipient is called again
                # without using an attempt, nothing charged (a cut of ours before any call).
                log.warning("call.refused_at_the_edge", attempt_id=attempt_id)
                result = ended_unobserved(open_, None, Cut.ours)
                await self._host.record(open_.claim, result, open_.policy, reconciled="fenced")
                continue
            cut = self._cut(open_.created_at, cdr)
            if cut is Cut.unknown and now - open_.created_at < timedelta(
                seconds=self._settings.ring_timeout_s + RECONCILE_GRACE_S
            ):
                continue  # may still be being created, or its CDR not yet written: next time
            kept = _decode(await stage_in_asterisk(self._ari, attempt_id))
            last = kept or _decode(open_.snapshot)
            answered_unseen = (
                cdr is not None and cdr.disposition == "ANSWERED" and not (last and last.answered)
            )
            if cut is Cut.callee and answered_unseen:
                # Answered while no engine was connected: Asterisk hangs up at once a call that enters
                # an application nobody serves. Nobody could have heard anything: the cut is ours.
                cut = Cut.ours
            result = ended_unobserved(open_, cdr, cut, kept)
            await self._host.record(
                open_.claim, result, open_.policy, reconciled="cdr" if cdr is not None else "lost"
            )
            if kept is not None:
                await forget_stage(self._ari, attempt_id)

    def _refused_at_the_edge(self, cdr: Cdr | None) -> bool:
        """The attempt's channel was surely created after its node was fenced, and never answered: its
        INVITE carried the old epoch. Both times on PostgreSQL's clock (the media server's may differ); a
        channel of the second of the takeover is taken as placed (its CDR decides, as before)."""
        fenced_at = self._fenced_at
        if fenced_at is None or cdr is None or cdr.started_at is None or cdr.answered_at is not None:
            return False
        return cdr.started_at - CDR_CLOCK_SLACK_S > fenced_at.timestamp()

    # --- Asterisk restarts ---------------------------------------------------------------------------
    async def _note_asterisk_start(self) -> None:
        try:
            info = await self._ari.info()
        except (AriError, AriUnavailable) as exc:
            log.warning("asterisk.info_failed", error=str(exc))
            return
        started = _parse_ari_time(str((info.get("status") or {}).get("startup_time", "")))
        if started is None:
            return
        if self._asterisk_started is not None and started != self._asterisk_started:
            log.warning("asterisk.restarted", started_at=started.isoformat())
        self._asterisk_started = started

    def _cut(self, placed_at: datetime, cdr: Cdr | None) -> Cut:
        """Who ended a call placed at `placed_at` that nobody followed to its end."""
        started = self._asterisk_started
        if started is not None and placed_at < started:
            ended = cdr.ended_at if cdr is not None else None
            if ended is None or ended >= started.timestamp() - RESTART_SLACK_S:
                return Cut.ours  # its channel died with the Asterisk that carried it
        return Cut.callee if cdr is not None else Cut.unknown

    # --- calls still up ------------------------------------------------------------------------------
    async def _resume(self, open_: OpenAttempt, channel: Event, leg: Event | None = None) -> None:
        """A call of this node outlived the engine that followed it: carry it on from its last stage,
        and from what its channel says happened since (it rang, or it was answered, meanwhile)."""
        attempt_id = str(open_.claim.attempt_id)
        if self._calls.router.owns(attempt_id):
            return
        snapshot = _decode(await stage_in_asterisk(self._ari, attempt_id)) or _decode(open_.snapshot)
        if snapshot is None or snapshot.stage is Stage.ended:
            # Placed, nothing heard of it yet (no stage on the channel): it is still dialling.
            started = open_.created_at.timestamp()
            snapshot = StageSnapshot(stage=Stage.dialing, entered_at=started, originated_at=started)
        request = await self._host.call_request(open_.claim)
        if request is None:  # its trunk is not known (yet): the call goes on in Asterisk, next time
            log.warning("call.resume_postponed", attempt_id=attempt_id, trunk=open_.claim.trunk)
            return
        if _in_amd(channel) and snapshot.stage in (Stage.dialing, Stage.ringing):
            # Answered, and the dialplan's answering-machine detection has it: its verdict comes back
            # to the application (the stage was not written yet when the engine went away).
            now = time.time()
            snapshot = dataclasses.replace(
                snapshot,
                stage=Stage.amd,
                entered_at=now,
                ringing_at=snapshot.ringing_at or snapshot.originated_at,
                answered_at=snapshot.answered_at or now,
            )
        call = self._calls.resume(request, snapshot)
        if leg is not None and _waits_for_application(leg):
            # Its ringing, failure or hang-up reach the application only through a subscription.
            with contextlib.suppress(AriError, AriUnavailable):  # gone: the sweep ends it
                await self._ari.subscribe_channel(str(leg.get("id")))
        for event in _caught_up(snapshot, channel, leg):
            call.route_put(event)
        self._host.take_slot(open_.claim.trunk)
        log.info("call.resumed", attempt_id=attempt_id, stage=snapshot.stage.value, detail=snapshot.detail)
        task = asyncio.get_running_loop().create_task(self._follow(open_, call.done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, open_: OpenAttempt, done: asyncio.Future[CallResult]) -> None:
        try:
            result = await done
        finally:
            self._host.release_slot(open_.claim.trunk)
            self._host.wake()
        await self._host.record(open_.claim, result, open_.policy, reconciled="resumed")
        await forget_stage(self._ari, str(open_.claim.attempt_id))

    async def _end_transfer_of_gone_call(self, attempt_id: str, channels: set[str]) -> None:
        """The callee is gone: its transfer leg (and bridge), if any is left, go at once; so do the
        channels and bridge that listened for its beep (engine/telephony/beepears.py)."""
        leg = callids.transfer_leg_id(attempt_id)
        if leg in channels:
            with contextlib.suppress(AriError, AriUnavailable):
                await self._ari.hangup(leg)
            log.info("call.transfer_leg_hung_up", attempt_id=attempt_id)
        with contextlib.suppress(AriError, AriUnavailable):
            await self._ari.destroy_bridge(callids.bridge_id(attempt_id))
        for channel in (beepears.ear_id(attempt_id), beepears.snoop_id(attempt_id)):
            if channel in channels:
                with contextlib.suppress(AriError, AriUnavailable):
                    await self._ari.hangup(channel)
        with contextlib.suppress(AriError, AriUnavailable):
            await self._ari.destroy_bridge(beepears.ear_bridge_id(attempt_id))

    # --- calls followed here whose channel went away in the gap -------------------------------------
    async def _vanished_while_followed(self, channels: set[str], *, recheck: bool) -> None:
        for call in list(self._calls.calls.values()):
            if not call.originated or call.flow.finished:
                continue
            if call.channel_id in channels:
                if not recheck:
                    continue
                # Still up: the end of its playback, or its transfer leg's, may have been lost.
                leg = call.transfer_leg_id
                legs_gone = call.transfer_originated and not call.transfer_leg_gone and leg not in channels
                if leg is not None and legs_gone:
                    call.route_put(TransferVanished())
                call.route_put(Recheck())
                continue
            placed = datetime.fromtimestamp(call.flow.snapshot().originated_at, UTC)
            cdr = await self._cdr(UUID(call.channel_id))
            cut = self._cut(placed, cdr)
            if cut is Cut.unknown:
                continue  # no trace yet: the sweep ends it if it stays gone
            ended_at = cdr.ended_at if cdr is not None and cut is Cut.callee else None
            call.route_put(ChannelVanished(cut=cut.value, ended_at=ended_at))

    async def _cdr(self, attempt_id: UUID) -> Cdr | None:
        rows = await attempts_store.cdrs_for(self._db, attempt_id)
        if not rows:
            return None
        answers = [r["answer"] for r in rows if r["answer"] is not None]
        ends = [r["end"] for r in rows if r["end"] is not None]
        dispositions = [str(r["disposition"] or "") for r in rows]
        first = rows[0]
        created = first["inserted_at"].timestamp() - (first["duration"] or 0)
        return Cdr(
            disposition="ANSWERED" if "ANSWERED" in dispositions else dispositions[0],
            answered_at=min(answers).timestamp() if answers else None,
            ended_at=max(ends).timestamp() if ends else None,
            started_at=created,
        )


def _context(channel: Event) -> str:
    return str((channel.get("dialplan") or {}).get("context", ""))


def _in_amd(channel: Event) -> bool:
    """The callee's channel is in the answering-machine detour: detecting, or entering the application
    with its verdict (the subroutine waits there for an engine)."""
    return _context(channel) in (AMD_CONTEXT, STASIS_CONTEXT)


def _amd_verdict(channel: Event) -> ce.AmdResult | None:
    """The answering-machine verdict of a channel that entered the application with it (Stasis(app, amd,
    AMDSTATUS, AMDCAUSE) in the detour); None while it is still detecting or waiting for an engine."""
    dialplan = channel.get("dialplan") or {}
    if not _in_amd(channel) or dialplan.get("app_name") != "Stasis":
        return None
    args = str(dialplan.get("app_data") or "").split(",")
    if len(args) < 3 or args[1] != "amd":
        return None
    return ce.AmdResult(args[2] or "NOTSURE", (args[3] if len(args) > 3 else "") or None)


def _waits_for_application(leg: Event) -> bool:
    """A transfer leg still in the dialplan: ringing, or answered and waiting for an engine to enter
    the application (its StasisStart is still to come)."""
    dialplan = leg.get("dialplan") or {}
    return _context(leg) in (TRANSFER_CONTEXT, STASIS_CONTEXT) and dialplan.get("app_name") != "Stasis"


def _caught_up(snapshot: StageSnapshot, channel: Event, leg: Event | None = None) -> list[ce.Event]:
    """What the channels did after the last stage recorded: the callee's rang, or was answered (and sits
    in our application, not in the answering-machine detection of the dialplan); the transfer leg was
    answered (it sits in our application)."""
    if snapshot.stage is Stage.transfer_dialing and leg is not None and leg.get("state") == "Up":
        # Answered: in the application already (caught up now), or about to enter it (its StasisStart
        # answers for it; bridging a leg outside the application would fail).
        return [] if _waits_for_application(leg) else [ce.TransferAnswered()]
    if snapshot.stage is Stage.amd:
        # Back in the application with its verdict, whose StasisStart went to an engine that died before
        # it was followed: the verdict is the application's arguments, still on the channel.
        verdict = _amd_verdict(channel)
        return [] if verdict is None else [verdict]
    if snapshot.stage not in (Stage.dialing, Stage.ringing):
        return []
    state = str(channel.get("state", ""))
    in_amd = _in_amd(channel)
    events: list[ce.Event] = []
    if state in {"Ringing", "Up"} and snapshot.stage is Stage.dialing:
        events.append(ce.Ringing())
    if state == "Up" and not in_amd:
        events.append(ce.Answered())
    return events


def ended_unobserved(
    open_: OpenAttempt, cdr: Cdr | None, cut: Cut, kept: StageSnapshot | None = None
) -> CallResult:
    """The result of an attempt that ended while nobody followed it: the unobserved rule applied to its
    last stage (the one Asterisk kept, else PostgreSQL's) and its CDR."""
    snapshot = kept or _decode(open_.snapshot)
    ended_at = cdr.ended_at if cdr is not None and cdr.ended_at is not None else None
    answered = cdr is not None and cdr.disposition == "ANSWERED"
    unseen = unobserved_outcome(
        snapshot,
        cut=cut,
        ended_at=ended_at,
        message_s=open_.message_duration_s or None,
        answered=answered if cdr is not None else None,
        dial_outcome=cdr.dial_outcome if cdr is not None else None,
    )
    placed = open_.created_at.timestamp()
    end = ended_at if ended_at is not None else datetime.now(UTC).timestamp()
    answered_at = (snapshot.answered_at if snapshot else None) or (cdr.answered_at if cdr else None)
    transfer_answered = snapshot.transfer_answered_at if snapshot else None
    transfer_ended = (snapshot.transfer_ended_at if snapshot else None) or (
        end if transfer_answered is not None else None
    )
    return CallResult(
        outcome=unseen.outcome,
        end_reason=EndReason.aborted,
        cause=None,
        sip_code=None,
        dialstatus=None,
        may_fail_over=False,
        originated_at=snapshot.originated_at if snapshot else placed,
        ringing_at=snapshot.ringing_at if snapshot else None,
        answered_at=answered_at,
        ended_at=max(end, answered_at or end),
        message_started_at=snapshot.message_started_at if snapshot else None,
        greeting_plays=snapshot.greeting_plays if snapshot else 0,
        amd_status=snapshot.amd_status if snapshot else None,
        amd_cause=snapshot.amd_cause if snapshot else None,
        transfer_outcome=snapshot.transfer_outcome if snapshot else None,
        transfer_started_at=snapshot.transfer_started_at if snapshot else None,
        transfer_answered_at=transfer_answered,
        transfer_ended_at=transfer_ended,
        abort_reason="reconciled",
        cut=cut.value,
        free_retry=unseen.free_retry,
        # The opt-out key was pressed: the objection stands whatever became of the call (issue 18).
        opted_out=snapshot is not None and snapshot.stage is Stage.opt_out,
    )


def _decode(text: str | None) -> StageSnapshot | None:
    if not text:
        return None
    try:
        return StageSnapshot.decode(text)
    except ValueError:
        log.warning("call.bad_stage_snapshot", text=text[:60])
        return None


def _parse_ari_time(text: str) -> datetime | None:
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
