"""What happens on one outbound call: a pure state machine fed with events, returning actions.

The ARI adapter (engine/telephony/calls.py) turns each ARI event of the call into one event of
engine/domain/callevents.py, calls `CallFlow.handle(event, now)` and executes the returned actions in
order; it makes no decision itself.
"""

from __future__ import annotations

from enum import StrEnum
from typing import assert_never

from engine.domain.callevents import (
    Abort,
    Action,
    AmdResult,
    Answered,
    BeepDetected,
    BridgeWithTransfer,
    CallResult,
    CancelTimer,
    DestroyBridge,
    Dtmf,
    EndReason,
    Event,
    Finished,
    Hangup,
    HangupCallee,
    HangupRequested,
    HangupTransfer,
    Originated,
    OriginateFailed,
    OriginateTransfer,
    Play,
    PlaybackFinished,
    PlaybackStarted,
    Progress,
    Ringing,
    RunAmd,
    StartBeepDetection,
    StartTimer,
    StopBeepDetection,
    StopPlayback,
    TimerFired,
    TransferAnswered,
    TransferEnded,
)
from engine.domain.callplan import CallPlan, DropMode
from engine.domain.outcomes import (
    Outcome,
    TransferOutcome,
    allows_failover,
    classify_failed_dial,
    classify_transfer_failure,
)

# How the adapter feeds the machine (one ARI event -> at most one event here, `now` on every call):
#   POST /channels error reply (nothing dialled) -> OriginateFailed; success -> Originated (optional)
#   Dial dialstatus RINGING, or ChannelStateChange to Ringing -> Ringing; Dial PROGRESS -> Progress
#   (remember the last Dial dialstatus of the channel: Hangup carries it)
#   first StasisStart -> Answered; StasisStart with args ("amd", AMDSTATUS, AMDCAUSE) -> AmdResult
#   ChannelDtmfReceived -> Dtmf; PlaybackStarted -> PlaybackStarted;
#   PlaybackFinished -> PlaybackFinished(completed=playback.state == "done"); ids are the machine's ids
#   ChannelHangupRequest -> HangupRequested(cause, tech_cause); ChannelDestroyed -> Hangup(cause,
#   tech_cause, last final dialstatus, ring_timeout=unanswered when the originate timeout expired);
#   StasisEnd -> nothing (it also happens around AMD)
#   second leg: StasisStart -> TransferAnswered; ChannelDestroyed or a refused originate -> TransferEnded
#   an ARI error on an action, shutdown -> Abort; the sweep finding the channel gone -> Abort(channel_gone)
# Actions are executed in order, one call at a time (a HangupTransfer may follow an OriginateTransfer
# whose POST is still in flight). A 404/422 on a Play/Stop/Hangup of a channel that just went away is
# expected: its Hangup event follows.

# The machine's own transfer ring timer decides "no answer"; Asterisk's originate timeout is only a
# backstop behind it, so that the outcome does not depend on which of the two fires first.
TRANSFER_ORIGINATE_MARGIN_S = 5.0

# What Asterisk reports when we hang up with DELETE /channels/{id}?reason=normal.
NORMAL_CLEARING = 16


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
    ended = "ended"


class _Timer(StrEnum):
    star_wait = "star_wait"
    amd_wait = "amd_wait"
    beep_wait = "beep_wait"
    transfer_ring = "transfer_ring"
    transfer_max = "transfer_max"
    playback_grace = "playback_grace"
    call_limit = "call_limit"


class _Media(StrEnum):
    greeting = "greeting"
    message = "message"
    transfer_wait = "transfer_wait"
    ringback = "ringback"
    apology = "apology"


# States where `9` starts a transfer (issue 6: "at any time during the greeting or the message").
_TRANSFER_STATES = frozenset({CallState.greeting, CallState.star_wait, CallState.message})


class CallFlow:
    """One outbound call, from origination to its single Finished action.

    Every event is accepted in every state: what does not apply is ignored, never an error. After
    Finished, every event returns no action.
    """

    def __init__(self, plan: CallPlan, now: float) -> None:
        self._plan = plan
        self._state = CallState.dialing
        self._result: CallResult | None = None
        self._seq = 0
        self._timers: dict[_Timer, str] = {}
        self._limit_armed = False
        self._playback: str | None = None  # the playback whose end matters; stopped ones are forgotten
        self._playback_media: _Media | None = None
        self._beep_detection = False
        self._transfer_leg = False  # a second leg exists that we have not hung up and has not ended
        self._bridged = False
        self._pre_answer_hangup: HangupRequested | None = None
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

    def handle(self, event: Event, now: float) -> list[Action]:
        """Apply one event; return the actions to execute, in order."""
        if self._result is not None:
            return []
        out: list[Action] = []
        self._dispatch(event, now, out)
        if self._result is None and not self._limit_armed:
            # Armed by the first event rather than in __init__, which cannot return actions.
            self._limit_armed = True
            self._start_timer(_Timer.call_limit, self._plan.max_call_s, out)
        return out

    # --- dispatch ----------------------------------------------------------------------------------------

    def _dispatch(self, event: Event, now: float, out: list[Action]) -> None:
        match event:
            case Originated():
                pass
            case OriginateFailed(reason=reason):
                self._on_originate_failed(reason, now, out)
            case Ringing() | Progress():
                if self._state is CallState.dialing and self._ringing_at is None:
                    self._ringing_at = now
            case Answered():
                self._on_answered(now, out)
            case AmdResult(status=status, cause=cause):
                self._on_amd_result(status, cause, now, out)
            case BeepDetected():
                if self._state is CallState.beep_wait:
                    self._end_beep_wait(now, out)
            case PlaybackStarted(playback_id=playback_id):
                if (
                    playback_id == self._playback
                    and self._playback_media is _Media.message
                    and self._state is CallState.message
                ):
                    self._message_started_at = now  # more precise than the time we asked for it
            case PlaybackFinished(playback_id=playback_id, completed=completed):
                self._on_playback_finished(playback_id, completed, now, out)
            case Dtmf(digit=digit):
                self._on_dtmf(digit, now, out)
            case TimerFired(name=name):
                self._on_timer(name, now, out)
            case TransferAnswered():
                self._on_transfer_answered(now, out)
            case TransferEnded():
                self._on_transfer_ended(event, now, out)
            case HangupRequested():
                self._on_hangup_requested(event, now, out)
            case Hangup():
                self._on_hangup(event, now, out)
            case Abort(reason=reason, channel_gone=gone):
                self._finish(
                    now,
                    out,
                    end_reason=EndReason.aborted,
                    outcome=self._outcome_if_ended_now(),
                    callee_gone=gone,
                    abort_reason=reason,
                )
            case _:
                assert_never(event)

    # --- before the answer -------------------------------------------------------------------------------

    def _on_originate_failed(self, reason: str, now: float, out: list[Action]) -> None:
        # Only meaningful while no channel has shown signs of life; otherwise the channel's own events
        # will end the call.
        if self._state is not CallState.dialing or self._ringing_at is not None:
            return
        self._finish(
            now,
            out,
            end_reason=EndReason.originate_failed,
            outcome=Outcome.failed,
            callee_gone=True,
            may_fail_over=True,  # nothing was dialled: another trunk cannot ring anyone twice
            abort_reason=reason,
        )

    def _on_answered(self, now: float, out: list[Action]) -> None:
        if self._state is not CallState.dialing:
            return
        self._answered_at = now
        if self._plan.drop_mode is DropMode.amd:
            self._state = CallState.amd
            out.append(RunAmd())
            self._start_timer(_Timer.amd_wait, self._plan.amd_wait_max_s, out)
        elif self._plan.drop_mode is DropMode.direct:
            # A mailbox cannot press `*`: no greeting.
            self._on_machine = True
            self._play_message(now, out, replay=False)
        else:
            self._start_normal_flow(now, out)

    def _on_amd_result(self, status: str, cause: str | None, now: float, out: list[Action]) -> None:
        if self._state is not CallState.amd:
            return
        self._cancel_timer(_Timer.amd_wait, out)
        self._amd_status = status
        self._amd_cause = cause
        if status.strip().upper() == "MACHINE":
            self._on_machine = True
            self._state = CallState.beep_wait
            self._beep_detection = True
            out.append(StartBeepDetection())
            self._start_timer(_Timer.beep_wait, self._plan.beep_wait_max_s, out)
        else:
            # HUMAN, and also NOTSURE: a person must never wait in silence for a beep; the greeting's `*`
            # (when the send has one) still keeps a machine from getting the message.
            self._start_normal_flow(now, out)

    def _end_beep_wait(self, now: float, out: list[Action]) -> None:
        self._cancel_timer(_Timer.beep_wait, out)
        if self._beep_detection:
            self._beep_detection = False
            out.append(StopBeepDetection())
        # A machine cannot press `*`: the greeting is skipped.
        self._play_message(now, out, replay=False)

    def _start_normal_flow(self, now: float, out: list[Action]) -> None:
        if self._plan.greeting:
            self._play_greeting(self._plan.greeting, out)
        else:
            self._play_message(now, out, replay=False)

    # --- playbacks ---------------------------------------------------------------------------------------

    def _play(self, media: _Media, uri: str, out: list[Action]) -> None:
        self._seq += 1
        playback_id = f"p{self._seq:02d}-{media}"
        self._playback = playback_id
        self._playback_media = media
        out.append(Play(playback_id, uri))

    def _stop_playback(self, out: list[Action]) -> None:
        if self._playback is not None:
            out.append(StopPlayback(self._playback))
        # Its PlaybackFinished will carry an id we no longer watch, so it is ignored.
        self._playback = None
        self._playback_media = None

    def _play_greeting(self, greeting: str, out: list[Action]) -> None:
        self._greeting_plays += 1
        self._state = CallState.greeting
        self._play(_Media.greeting, greeting, out)

    def _play_message(self, now: float, out: list[Action], *, replay: bool) -> None:
        self._state = CallState.replay if replay else CallState.message
        if self._message_started_at is None:
            self._message_started_at = now
        self._play(_Media.message, self._plan.message, out)

    def _on_playback_finished(self, playback_id: str, completed: bool, now: float, out: list[Action]) -> None:
        if playback_id != self._playback:
            return  # a playback we stopped, or one from an earlier step
        media = self._playback_media
        self._playback = None
        self._playback_media = None
        state = self._state
        if state is CallState.greeting and media is _Media.greeting:
            # Even a greeting cut short (failed media) leads to the `*` wait: a hang-up, if that is what
            # stopped it, ends the call meanwhile.
            self._state = CallState.star_wait
            self._start_timer(_Timer.star_wait, self._plan.star_wait_s, out)
        elif state in (CallState.message, CallState.replay) and media is _Media.message:
            if completed:
                self._message_completed = True
                self._finish(
                    now,
                    out,
                    end_reason=EndReason.message_completed,
                    outcome=self._outcome_if_ended_now(),
                    callee_gone=False,
                )
            else:
                # Stopped without our asking: normally the callee's hang-up, whose event follows. If none
                # comes, the media failed to play.
                self._start_timer(_Timer.playback_grace, self._plan.playback_grace_s, out)
        elif state is CallState.transfer_dialing and media is _Media.transfer_wait:
            self._play(_Media.ringback, self._plan.ringback_media, out)
        elif state is CallState.transfer_dialing and media is _Media.ringback:
            if completed:  # a finite tone ran out while the call centre still rings: keep ringing
                self._play(_Media.ringback, self._plan.ringback_media, out)
        elif state is CallState.apology and media is _Media.apology:
            self._play_message(now, out, replay=True)

    # --- keys --------------------------------------------------------------------------------------------

    def _on_dtmf(self, digit: str, now: float, out: list[Action]) -> None:
        state = self._state
        if digit == "*":
            if state is CallState.greeting:
                self._stop_playback(out)
                self._play_message(now, out, replay=False)
            elif state is CallState.star_wait:
                self._cancel_timer(_Timer.star_wait, out)
                self._play_message(now, out, replay=False)
        elif digit == "9" and state in _TRANSFER_STATES and self._plan.can_transfer and not self._on_machine:
            self._start_transfer(str(self._plan.transfer_number).strip(), now, out)
        # Any other key, and keys in other states (including `9` during the replay after a failed
        # transfer: the call centre could not take the call, the replay happens once, then we hang up),
        # are ignored.

    # --- transfer ----------------------------------------------------------------------------------------

    def _start_transfer(self, number: str, now: float, out: list[Action]) -> None:
        self._stop_playback(out)
        self._cancel_timer(_Timer.star_wait, out)
        self._cancel_timer(_Timer.playback_grace, out)
        self._state = CallState.transfer_dialing
        self._transfer_started_at = now
        self._transfer_leg = True
        self._play(_Media.transfer_wait, self._plan.transfer_wait_media, out)
        out.append(
            OriginateTransfer(
                number,
                self._plan.transfer_ring_timeout_s + TRANSFER_ORIGINATE_MARGIN_S,
            )
        )
        self._start_timer(_Timer.transfer_ring, self._plan.transfer_ring_timeout_s, out)

    def _on_transfer_answered(self, now: float, out: list[Action]) -> None:
        if self._state is not CallState.transfer_dialing or not self._transfer_leg:
            return  # too late: we already gave up on that leg and asked for its hang-up
        self._cancel_timer(_Timer.transfer_ring, out)
        self._stop_playback(out)
        out.append(BridgeWithTransfer())
        self._bridged = True
        self._state = CallState.bridged
        self._transfer_answered_at = now
        self._transfer_outcome = TransferOutcome.answered
        self._start_timer(_Timer.transfer_max, self._plan.transfer_max_s, out)

    def _on_transfer_ended(self, event: TransferEnded, now: float, out: list[Action]) -> None:
        if not self._transfer_leg:
            return  # the leg we hung up ourselves (ring timeout), or no leg at all
        self._transfer_leg = False
        self._transfer_ended_at = now
        if self._state is CallState.transfer_dialing:
            self._transfer_outcome = classify_transfer_failure(event.dialstatus, event.cause, event.sip_code)
            self._transfer_failed(out)
        elif self._state is CallState.bridged:
            self._finish(
                now,
                out,
                end_reason=EndReason.transfer_hangup,
                outcome=Outcome.transferred,
                callee_gone=False,
            )

    def _transfer_failed(self, out: list[Action]) -> None:
        self._cancel_timer(_Timer.transfer_ring, out)
        self._stop_playback(out)
        self._state = CallState.apology
        self._play(_Media.apology, self._plan.transfer_apology_media, out)

    # --- timers ------------------------------------------------------------------------------------------

    def _start_timer(self, timer: _Timer, seconds: float, out: list[Action]) -> None:
        self._cancel_timer(timer, out)
        self._seq += 1
        name = f"t{self._seq:02d}-{timer}"
        self._timers[timer] = name
        out.append(StartTimer(name, seconds))

    def _cancel_timer(self, timer: _Timer, out: list[Action]) -> None:
        name = self._timers.pop(timer, None)
        if name is not None:
            out.append(CancelTimer(name))

    def _on_timer(self, name: str, now: float, out: list[Action]) -> None:
        timer = next((kind for kind, active in self._timers.items() if active == name), None)
        if timer is None:
            return  # cancelled, or fired late after its state ended
        del self._timers[timer]
        state = self._state
        if timer is _Timer.call_limit:
            self._finish(
                now,
                out,
                end_reason=EndReason.call_limit,
                outcome=self._outcome_if_ended_now(),
                callee_gone=False,
            )
        elif timer is _Timer.star_wait and state is CallState.star_wait:
            if self._plan.greeting and self._greeting_plays < self._plan.greeting_max_plays:
                self._play_greeting(self._plan.greeting, out)
            else:
                self._finish(
                    now, out, end_reason=EndReason.no_star, outcome=Outcome.not_confirmed, callee_gone=False
                )
        elif timer is _Timer.amd_wait and state is CallState.amd:
            self._finish(
                now,
                out,
                end_reason=EndReason.amd_timeout,
                outcome=self._outcome_if_ended_now(),
                callee_gone=False,
            )
        elif timer is _Timer.beep_wait and state is CallState.beep_wait:
            self._end_beep_wait(now, out)
        elif timer is _Timer.transfer_ring and state is CallState.transfer_dialing:
            self._transfer_outcome = TransferOutcome.no_answer
            self._transfer_ended_at = now
            self._transfer_leg = False
            out.append(HangupTransfer())
            self._transfer_failed(out)
        elif timer is _Timer.transfer_max and state is CallState.bridged:
            self._finish(
                now, out, end_reason=EndReason.transfer_max, outcome=Outcome.transferred, callee_gone=False
            )
        elif timer is _Timer.playback_grace and state in (CallState.message, CallState.replay):
            # The message stopped by itself and the callee is still there: the media could not be played.
            # Not charged, and retryable: the callee did not hear the message through our fault.
            self._finish(
                now, out, end_reason=EndReason.playback_failed, outcome=Outcome.failed, callee_gone=False
            )

    # --- hang-ups ----------------------------------------------------------------------------------------

    def _on_hangup_requested(self, event: HangupRequested, now: float, out: list[Action]) -> None:
        if self._state is CallState.dialing:
            # Before the answer the cause that counts comes with ChannelDestroyed; keep this one in case
            # that event carries less.
            self._pre_answer_hangup = event
            return
        # After the answer, end at the first sign: a PlaybackFinished that follows must not count.
        self._finish(
            now,
            out,
            end_reason=EndReason.callee_hangup,
            outcome=self._outcome_if_ended_now(),
            callee_gone=True,
            cause=event.cause,
            sip_code=event.sip_code,
        )

    def _on_hangup(self, event: Hangup, now: float, out: list[Action]) -> None:
        dialstatus = event.dialstatus.strip().upper() if event.dialstatus else None
        if self._state is not CallState.dialing or dialstatus == "ANSWER":
            # Answered (even if the Answered event was lost): what counts is how far the call got.
            self._finish(
                now,
                out,
                end_reason=EndReason.callee_hangup,
                outcome=self._outcome_if_ended_now(answered=True),
                callee_gone=True,
                cause=event.cause,
                sip_code=event.sip_code,
                dialstatus=dialstatus,
            )
            return
        cause = event.cause
        sip_code = event.sip_code
        hint = self._pre_answer_hangup
        if hint is not None:
            if cause in (None, 0) and hint.cause not in (None, 0):
                cause = hint.cause
            if sip_code is None:
                sip_code = hint.sip_code
        rang = self._ringing_at is not None
        if event.ring_timeout:
            # Our own ring timeout: the SIP code is Asterisk's translation of cause 19, not a response.
            # Nothing heard from the phone (no 180/183) within the whole ring time means the trunk did not
            # route the call: a trunk failure another trunk may not have, not a callee who did not answer.
            sip_code = None
            outcome = Outcome.no_answer if rang else Outcome.failed
            may_fail_over = not rang
        else:
            outcome = classify_failed_dial(dialstatus, cause, sip_code, rang=rang)
            may_fail_over = allows_failover(dialstatus, cause, sip_code, rang=rang)
        self._finish(
            now,
            out,
            end_reason=EndReason.dial_failed,
            outcome=outcome,
            callee_gone=True,
            cause=cause,
            sip_code=sip_code,
            dialstatus=dialstatus,
            may_fail_over=may_fail_over,
        )

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
    ) -> None:
        for timer in list(self._timers):
            self._cancel_timer(timer, out)
        if self._beep_detection and not callee_gone:
            out.append(StopBeepDetection())
        self._beep_detection = False
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
        self._playback = None
        self._playback_media = None
        self._state = CallState.ended
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
            ended_at=now,
            message_started_at=self._message_started_at,
            greeting_plays=self._greeting_plays,
            amd_status=self._amd_status,
            amd_cause=self._amd_cause,
            transfer_outcome=self._transfer_outcome,
            transfer_started_at=self._transfer_started_at,
            transfer_answered_at=self._transfer_answered_at,
            transfer_ended_at=self._transfer_ended_at,
            abort_reason=abort_reason,
        )
        out.append(Finished(self._result))
