"""The call flow's state and its primitives: timers, playbacks, the stage it announces, the end of the call.

The steps (engine/domain/beepwait.py, calltransfer.py, callflow.py) build on this base; the machine's
public face is engine/domain/callflow.py.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from engine.domain.callevents import (
    Action,
    CallResult,
    CancelTimer,
    DestroyBridge,
    EndReason,
    Finished,
    HangupCallee,
    HangupRequested,
    HangupTransfer,
    Play,
    StageChanged,
    StartTimer,
    StopDetection,
    StopPlayback,
)
from engine.domain.callplan import CallPlan
from engine.domain.callstage import Media, Stage, StageSnapshot, stage_deadline_at
from engine.domain.outcomes import Outcome, TransferOutcome

# What Asterisk reports when we hang up with DELETE /channels/{id}?reason=normal.
NORMAL_CLEARING = 16
# A timer resumed after its time ran out fires at once (timers need a positive delay).
MIN_TIMER_S = 0.001


class CallState(StrEnum):
    dialing = "dialing"
    amd = "amd"  # in the AMD dialplan context, waiting for its result
    beep_wait = "beep_wait"  # a machine answered: waiting for its beep before the message
    greeting = "greeting"
    star_wait = "star_wait"  # greeting over, waiting for `*`
    message = "message"
    transfer_dialing = "transfer_dialing"  # "please wait" prompt then ringback while the call centre rings
    bridged = "bridged"
    apology = "apology"  # the transfer failed: apologising before replaying the message
    replay = "replay"  # the message, once more, after a failed transfer; then hang up
    preamble = "preamble"  # a commercial call: who calls, on whose behalf, the opt-out key (issue 18)
    opt_out = "opt_out"  # the opt-out key was pressed: the thanks play, then we hang up
    ended = "ended"


class Timer(StrEnum):
    star_wait = "star_wait"
    amd_wait = "amd_wait"
    beep_wait = "beep_wait"  # the beep wait's cap
    no_sound = "no_sound"  # the beep wait heard nothing at all
    after_beep = "after_beep"  # the beep was heard: it is over by now
    transfer_ring = "transfer_ring"
    transfer_max = "transfer_max"
    playback_grace = "playback_grace"
    call_limit = "call_limit"
    deadline = "deadline"  # the stage's own deadline (engine/domain/callstage.py)


class FlowCore:
    """State and primitives shared by the call flow's steps."""

    def __init__(self, plan: CallPlan, now: float) -> None:
        self._plan = plan
        self._state = CallState.dialing
        self._result: CallResult | None = None
        self._seq = 0
        self._timers: dict[Timer, str] = {}
        self._started = False  # the first event came (and armed what __init__ cannot return)
        self._playback: str | None = None  # the playback whose end matters; stopped ones are forgotten
        self._playback_media: Media | None = None
        self._playback_stopped_at: float | None = None
        self._detecting = False  # the beep wait's detectors are on the channel
        self._beep_heard_at: float | None = None
        self._sound_heard = False
        self._transfer_leg = False  # a second leg exists that we have not hung up and has not ended
        self._bridged = False
        self._pre_answer_hangup: HangupRequested | None = None
        self._announced: StageSnapshot | None = None
        self._deadline_at: float | None = None
        self._stage_entered_at = now
        # Record
        self._originated_at = now
        self._ringing_at: float | None = None
        self._answered_at: float | None = None
        self._message_started_at: float | None = None
        self._message_completed = False
        self._on_machine = False
        self._greeting_plays = 0
        self._amd_status: str | None = None
        self._amd_cause: str | None = None
        self._transfer_outcome: TransferOutcome | None = None
        self._transfer_started_at: float | None = None
        self._transfer_answered_at: float | None = None
        self._transfer_ended_at: float | None = None
        self._preamble_done = False  # the preamble played (or the plan has none)
        self._opted_out = False

    @property
    def plan(self) -> CallPlan:
        return self._plan

    @property
    def state(self) -> CallState:
        return self._state

    @property
    def result(self) -> CallResult | None:
        return self._result

    @property
    def finished(self) -> bool:
        return self._result is not None

    @property
    def active_timers(self) -> frozenset[str]:
        return frozenset(self._timers.values())

    @property
    def stage(self) -> Stage:
        state = self._state
        if state is CallState.dialing:
            return Stage.ringing if self._ringing_at is not None else Stage.dialing
        if state in (CallState.message, CallState.replay) and self._message_completed:
            return Stage.message_done
        return Stage(state.value)

    def snapshot(self) -> StageSnapshot:
        """Where the call is now: what CallFlow.resume needs to carry it on."""
        return StageSnapshot(
            stage=self.stage,
            entered_at=self._stage_entered_at,
            originated_at=self._originated_at,
            ringing_at=self._ringing_at,
            answered_at=self._answered_at,
            amd_status=self._amd_status,
            amd_cause=self._amd_cause,
            on_machine=self._on_machine,
            beep_heard_at=self._beep_heard_at,
            sound_heard=self._sound_heard,
            greeting_plays=self._greeting_plays,
            message_started_at=self._message_started_at,
            playback_id=self._playback,
            playback_media=self._playback_media,
            playback_stopped_at=self._playback_stopped_at,
            transfer_leg=self._transfer_leg,
            transfer_outcome=self._transfer_outcome,
            transfer_started_at=self._transfer_started_at,
            transfer_answered_at=self._transfer_answered_at,
            transfer_ended_at=self._transfer_ended_at,
            seq=self._seq,
        )

    # --- the stage ---------------------------------------------------------------------------------------

    def _announce(self, now: float, out: list[Action]) -> None:
        """Announce the stage when it, or what must survive within it, changed since the last time. On
        a new stage, arm its deadline."""
        last = self._announced
        new_stage = last is None or self.stage is not last.stage
        if new_stage:
            self._stage_entered_at = now
            self._arm_deadline(now, out)
        snapshot = self.snapshot()
        # The id counter alone moving (a timer started) changes nothing a restarted engine needs: every
        # playback id it handed out is in an announced snapshot.
        if not new_stage and last is not None and replace(last, seq=snapshot.seq) == snapshot:
            return
        self._announced = snapshot
        out.append(StageChanged(snapshot.stage, now, snapshot.detail, snapshot))

    def _arm_deadline(self, now: float, out: list[Action]) -> None:
        """The deadline of the stage just entered (the one running is kept when it is the same)."""
        deadline = None if self._state is CallState.ended else stage_deadline_at(self._plan, self.snapshot())
        if deadline is not None and deadline == self._deadline_at and Timer.deadline in self._timers:
            return  # dialing, then ringing: both end by the ring timeout
        self._cancel_timer(Timer.deadline, out)
        self._deadline_at = deadline
        if deadline is not None:
            self._resume_timer(Timer.deadline, deadline, now, out)

    # --- playbacks ---------------------------------------------------------------------------------------

    def _play(self, media: Media, uri: str, out: list[Action]) -> None:
        self._seq += 1
        playback_id = f"p{self._seq:02d}-{media}"
        self._playback = playback_id
        self._playback_media = media
        self._playback_stopped_at = None
        out.append(Play(playback_id, uri))

    def _play_greeting(self, greeting: str, out: list[Action]) -> None:
        self._greeting_plays += 1
        self._state = CallState.greeting
        self._play(Media.greeting, greeting, out)

    def _play_message(self, now: float, out: list[Action], *, replay: bool) -> None:
        self._state = CallState.replay if replay else CallState.message
        if self._message_started_at is None:
            self._message_started_at = now
        self._play(Media.message, self._plan.message, out)

    def _play_preamble_first(self, out: list[Action]) -> bool:
        """Play the preamble if the plan has one it has not played yet (then its end goes on)."""
        if self._plan.preamble is None or self._preamble_done:
            return False
        self._preamble_done = True
        self._state = CallState.preamble
        self._play(Media.preamble, self._plan.preamble, out)
        return True

    def _start_machine_message(self, now: float, out: list[Action]) -> None:
        """A mailbox records: the preamble (if any), then the message; no greeting (it cannot press `*`)."""
        if not self._play_preamble_first(out):
            self._play_message(now, out, replay=False)

    def _start_normal_flow(self, now: float, out: list[Action]) -> None:
        if self._play_preamble_first(out):
            return
        if self._plan.greeting:
            self._play_greeting(self._plan.greeting, out)
        else:
            self._play_message(now, out, replay=False)

    def _stop_playback(self, out: list[Action]) -> None:
        if self._playback is not None:
            out.append(StopPlayback(self._playback))
        self._forget_playback()

    def _forget_playback(self) -> None:
        # Its PlaybackFinished will carry an id we no longer watch, so it is ignored.
        self._playback = None
        self._playback_media = None
        self._playback_stopped_at = None

    # --- timers ------------------------------------------------------------------------------------------

    def _start_timer(self, timer: Timer, seconds: float, out: list[Action]) -> None:
        self._cancel_timer(timer, out)
        self._seq += 1
        name = f"t{self._seq:02d}-{timer}"
        self._timers[timer] = name
        out.append(StartTimer(name, seconds))

    def _resume_timer(self, timer: Timer, due_at: float, now: float, out: list[Action]) -> None:
        """Start `timer` for what is left until `due_at` (at once if that time has passed)."""
        self._start_timer(timer, max(due_at - now, MIN_TIMER_S), out)

    def _cancel_timer(self, timer: Timer, out: list[Action]) -> None:
        name = self._timers.pop(timer, None)
        if name is not None:
            out.append(CancelTimer(name))

    def _timer_kind(self, name: str) -> Timer | None:
        """The running timer of that name, now spent; None when it was cancelled or never existed."""
        timer = next((kind for kind, active in self._timers.items() if active == name), None)
        if timer is not None:
            del self._timers[timer]
        return timer

    # --- the end -----------------------------------------------------------------------------------------

    def _outcome_if_ended_now(self, *, answered: bool = False) -> Outcome:
        """The outcome of an answered call ending now, from how far it got; `failed` if never answered."""
        if self._state is CallState.dialing and not answered:
            return Outcome.failed
        if self._bridged:
            return Outcome.transferred
        if self._message_completed:
            return Outcome.voicemail if self._on_machine else Outcome.listened
        if self._message_started_at is not None:
            return Outcome.partial
        # Answered, but the message never started: hang-up during the greeting or the `*` wait, during
        # AMD or before the beep, or after `9` pressed during the greeting. Retryable and not charged.
        return Outcome.not_confirmed

    def _end_here(self, now: float, out: list[Action], end_reason: EndReason, *, gone: bool = False) -> None:
        """End the call from where it is (a timer, an abort), with the outcome of how far it got."""
        self._finish(now, out, end_reason=end_reason, outcome=self._outcome_if_ended_now(), callee_gone=gone)

    def _finish(
        self,
        now: float,
        out: list[Action],
        *,
        end_reason: EndReason,
        outcome: Outcome,
        callee_gone: bool,
        cause: int | None = None,
        sip_code: int | None = None,
        dialstatus: str | None = None,
        may_fail_over: bool = False,
        abort_reason: str | None = None,
        cut: str | None = None,
        free_retry: bool = False,
        ended_at: float | None = None,
    ) -> None:
        for timer in list(self._timers):
            self._cancel_timer(timer, out)
        if self._detecting and not callee_gone:
            out.append(StopDetection())
        self._detecting = False
        if self._transfer_leg:
            self._transfer_leg = False
            out.append(HangupTransfer())
        if self._transfer_started_at is not None and self._transfer_ended_at is None:
            self._transfer_ended_at = now
        if not callee_gone:
            out.append(HangupCallee(end_reason))
            cause = NORMAL_CLEARING
        if self._bridged:
            out.append(DestroyBridge())
        self._forget_playback()
        self._state = CallState.ended
        self._announce(now, out)
        self._result = CallResult(
            outcome=outcome,
            end_reason=end_reason,
            cause=cause,
            sip_code=sip_code,
            dialstatus=dialstatus,
            may_fail_over=may_fail_over,
            originated_at=self._originated_at,
            ringing_at=self._ringing_at,
            answered_at=self._answered_at,
            ended_at=now if ended_at is None else ended_at,
            message_started_at=self._message_started_at,
            greeting_plays=self._greeting_plays,
            amd_status=self._amd_status,
            amd_cause=self._amd_cause,
            transfer_outcome=self._transfer_outcome,
            transfer_started_at=self._transfer_started_at,
            transfer_answered_at=self._transfer_answered_at,
            transfer_ended_at=self._transfer_ended_at,
            abort_reason=abort_reason,
            cut=cut,
            free_retry=free_retry,
            opted_out=self._opted_out,
        )
        out.append(Finished(self._result))
