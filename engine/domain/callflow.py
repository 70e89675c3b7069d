"""What happens on one outbound call: a pure state machine fed with events, returning actions.

The ARI adapter (engine/telephony/outbound.py) turns each ARI event of the call into one event of
engine/domain/callevents.py, calls `CallFlow.handle(event, now)` and executes the returned actions in
order; it makes no decision itself. The steps live beside this module: the state and its primitives in
callcore.py, the voicemail drop's AMD and beep wait in beepwait.py, the transfer in calltransfer.py, the
stages and their deadlines in callstage.py.
"""

from __future__ import annotations

from typing import Final, assert_never

from engine.domain.beepwait import BeepWaitSteps
from engine.domain.callcore import NORMAL_CLEARING, CallState, Timer
from engine.domain.callevents import (
    Abort,
    Action,
    AmdResult,
    Answered,
    Dtmf,
    EndReason,
    Event,
    Hangup,
    HangupRequested,
    Originated,
    OriginateFailed,
    PlaybackFinished,
    PlaybackStarted,
    Progress,
    Ringing,
    RunAmd,
    TalkingFinished,
    TalkingStarted,
    TimerFired,
    ToneDetected,
    TransferAnswered,
    TransferEnded,
)
from engine.domain.callplan import CallPlan, DropMode, originate_timeout_s
from engine.domain.callstage import Media, Stage, StageSnapshot
from engine.domain.calltransfer import TRANSFER_ORIGINATE_MARGIN_S, TransferSteps
from engine.domain.outcomes import Outcome, allows_failover, classify_failed_dial
from engine.domain.unobserved import Cut, unobserved_outcome

__all__ = ["NORMAL_CLEARING", "TRANSFER_ORIGINATE_MARGIN_S", "CallFlow", "CallState"]

# How the adapter feeds the machine (one ARI event -> at most one event here, `now` on every call):
#   POST /channels error reply (nothing dialled) -> OriginateFailed; success -> Originated (optional)
#   Dial dialstatus RINGING, or ChannelStateChange to Ringing -> Ringing; Dial PROGRESS -> Progress
#   (remember the last final Dial dialstatus of the channel: Hangup carries it)
#   first StasisStart -> Answered; StasisStart with args ("amd", AMDSTATUS, AMDCAUSE) -> AmdResult
#   ChannelDtmfReceived -> Dtmf; PlaybackStarted -> PlaybackStarted;
#   PlaybackFinished -> PlaybackFinished(completed=playback.state == "done"); ids are the machine's ids
#   ChannelToneDetected -> ToneDetected; ChannelTalkingStarted/Finished -> TalkingStarted/Finished
#   ChannelHangupRequest -> HangupRequested(cause, tech_cause); ChannelDestroyed -> Hangup(cause,
#   tech_cause, last final dialstatus); StasisEnd -> nothing (it also happens around AMD)
#   second leg: StasisStart -> TransferAnswered; ChannelDestroyed or a refused originate -> TransferEnded
#   an ARI error on an action, shutdown -> Abort; the sweep finding the channel gone -> Abort(channel_gone)
# Actions are executed in order, one call at a time (a HangupTransfer may follow an OriginateTransfer
# whose POST is still in flight). A 404/422 on a Play/Stop/Hangup of a channel that just went away is
# expected: its Hangup event follows. StageChanged is for persistence: it never feeds anything back.

# Where the opt-out key is heard: from the preamble that announces it until our own message is over.
OPT_OUT_STATES: Final = frozenset(
    {CallState.preamble, CallState.greeting, CallState.star_wait, CallState.message, CallState.replay}
)

# A channel destroyed unanswered, without a final dial status, this close to the originate's timeout was
# ended by that timeout.
RING_TIMEOUT_MARGIN_S: Final = 0.5


class CallFlow(TransferSteps, BeepWaitSteps):
    """One outbound call, from origination (or from a stage it is resumed at) to its single Finished.

    Every event is accepted in every state: what does not apply is ignored, never an error. After
    Finished, every event returns no action. Each change of stage is announced (StageChanged), and each
    stage has a deadline (engine/domain/callstage.py) that ends the call if an event is lost.
    """

    def handle(self, event: Event, now: float) -> list[Action]:
        """Apply one event; return the actions to execute, in order."""
        if self._result is not None:
            return []
        out: list[Action] = []
        self._dispatch(event, now, out)
        if self._result is None:
            if not self._started:
                # Armed by the first event rather than in __init__, which cannot return actions.
                self._started = True
                if self._plan.max_call_s is not None:
                    self._start_timer(Timer.call_limit, self._plan.max_call_s, out)
            self._announce(now, out)
        return out

    @classmethod
    def resume(cls, plan: CallPlan, snapshot: StageSnapshot, now: float) -> tuple[CallFlow, list[Action]]:
        """A machine carrying on a call from `snapshot` (announced by a machine of an earlier engine), and
        the actions to execute first: the timers of its stage for what is left of them (at once when
        that time has passed), the stage's deadline, the detectors of a beep wait. Playbacks in progress
        are not played again: their PlaybackFinished (the snapshot's playback id) moves the call on.
        A snapshot at `ended`, or any stage the machine cannot carry on from, raises ValueError."""
        flow = cls(plan, snapshot.originated_at)
        out: list[Action] = []
        flow._restore(snapshot, now, out)
        return flow, out

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
            case ToneDetected():
                self._on_tone(now, out)
            case TalkingStarted():
                self._on_talking_started(out)
            case TalkingFinished():
                self._on_talking_finished(now, out)
            case PlaybackStarted(playback_id=playback_id):
                if (
                    playback_id == self._playback
                    and self._playback_media is Media.message
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
            case Abort(reason=reason, channel_gone=True, cut=str(cut), ended_at=ended_at):
                # Ended while nobody followed it (a websocket gap, an Asterisk restart): the unobserved
                # rule, from the stage the call was in, says what it was and whether it is ours.
                unseen = unobserved_outcome(
                    self.snapshot(),
                    cut=Cut(cut),
                    ended_at=ended_at if ended_at is not None else now,
                    message_s=self._plan.message_s,
                )
                self._finish(
                    now,
                    out,
                    end_reason=EndReason.aborted,
                    outcome=unseen.outcome,
                    callee_gone=True,
                    abort_reason=reason,
                    cut=cut,
                    free_retry=unseen.free_retry,
                    ended_at=min(ended_at, now) if ended_at is not None else None,
                )
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
            self._start_timer(Timer.amd_wait, self._plan.amd_wait_max_s, out)
        elif self._plan.drop_mode is DropMode.direct:
            # A mailbox cannot press `*`: no greeting.
            self._on_machine = True
            self._start_machine_message(now, out)
        else:
            self._start_normal_flow(now, out)

    # --- playbacks ---------------------------------------------------------------------------------------

    def _on_playback_finished(self, playback_id: str, completed: bool, now: float, out: list[Action]) -> None:
        if playback_id != self._playback:
            return  # a playback we stopped, or one from an earlier step
        media = self._playback_media
        self._forget_playback()
        state = self._state
        if state is CallState.greeting and media is Media.greeting:
            # Even a greeting cut short (failed media) leads to the `*` wait: a hang-up, if that is what
            # stopped it, ends the call meanwhile.
            self._state = CallState.star_wait
            self._start_timer(Timer.star_wait, self._plan.star_wait_s, out)
        elif state in (CallState.message, CallState.replay) and media is Media.message:
            if completed:
                self._message_completed = True
                self._announce(now, out)  # message_done, before the hang-up
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
                self._playback_stopped_at = now
                self._start_timer(Timer.playback_grace, self._plan.playback_grace_s, out)
        elif state is CallState.transfer_dialing:
            self._on_transfer_media_finished(media, completed, out)
        elif state is CallState.apology and media is Media.apology:
            self._play_message(now, out, replay=True)
        elif state is CallState.preamble and media is Media.preamble:
            # Even cut short, the callee heard who calls as far as the media could play.
            if self._on_machine:
                self._play_message(now, out, replay=False)
            else:
                self._start_normal_flow(now, out)
        elif state is CallState.opt_out and media is Media.opt_out:
            self._finish(
                now,
                out,
                end_reason=EndReason.opted_out,
                outcome=self._outcome_if_ended_now(),
                callee_gone=False,
            )

    # --- keys --------------------------------------------------------------------------------------------

    def _on_dtmf(self, digit: str, now: float, out: list[Action]) -> None:
        state = self._state
        if digit == self._plan.opt_out_key and state in OPT_OUT_STATES and not self._on_machine:
            self._opt_out(out)
        elif digit == "*":
            if state is CallState.greeting:
                self._stop_playback(out)
                self._play_message(now, out, replay=False)
            elif state is CallState.star_wait:
                self._cancel_timer(Timer.star_wait, out)
                self._play_message(now, out, replay=False)
        elif digit == "9" and self._may_transfer():
            self._start_transfer(now, out)
        # Any other key, and keys in other states (including `9` during the replay after a failed
        # transfer: the call centre could not take the call, the replay happens once, then we hang up),
        # are ignored.

    def _opt_out(self, out: list[Action]) -> None:
        """The callee objects to further calls (issue 18): stop what plays, thank them, then hang up. The
        result carries it whatever ends the call from here (a hang-up during the thanks included)."""
        self._stop_playback(out)
        self._cancel_timer(Timer.star_wait, out)
        self._cancel_timer(Timer.playback_grace, out)
        self._opted_out = True
        self._state = CallState.opt_out
        self._play(Media.opt_out, self._plan.opt_out_media, out)

    # --- timers ------------------------------------------------------------------------------------------

    def _on_timer(self, name: str, now: float, out: list[Action]) -> None:
        timer = self._timer_kind(name)
        if timer is None:
            return  # cancelled, or fired late after its state ended
        state = self._state
        match timer:
            case Timer.call_limit:
                self._end_here(now, out, EndReason.call_limit)
            case Timer.deadline:
                self._end_here(now, out, EndReason.stage_deadline)
            case Timer.star_wait if state is CallState.star_wait:
                if self._plan.greeting and self._greeting_plays < self._plan.greeting_max_plays:
                    self._play_greeting(self._plan.greeting, out)
                else:
                    self._finish(
                        now,
                        out,
                        end_reason=EndReason.no_star,
                        outcome=Outcome.not_confirmed,
                        callee_gone=False,
                    )
            case Timer.amd_wait if state is CallState.amd:
                self._end_here(now, out, EndReason.amd_timeout)
            case Timer.beep_wait | Timer.no_sound | Timer.after_beep:
                self._on_beep_timer(timer, now, out)
            case Timer.transfer_ring:
                self._on_transfer_ring_timeout(now, out)
            case Timer.transfer_max:
                self._on_transfer_max(now, out)
            case Timer.playback_grace if state in (CallState.message, CallState.replay):
                # The message stopped by itself and the callee is still there: the media could not be
                # played. Not charged, and retryable: the callee did not hear the message through our fault.
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
        if dialstatus is None and self._ring_timed_out(now):
            # Our own ring timeout: Asterisk reports cause 19 with a SIP code it derived from that cause
            # (480), whether the phone rang or the trunk never answered the INVITE at all (lab, issue 6):
            # that code is not a response. Nothing heard from the phone (no 180/183) within the whole ring
            # time means the trunk did not route the call: a trunk failure another trunk may not have,
            # not a callee who did not answer.
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

    def _ring_timed_out(self, now: float) -> bool:
        """Unanswered when the originate's timeout had run out (it ends the call with no final status)."""
        timeout_s = originate_timeout_s(self._plan.ring_timeout_s)
        return now - self._originated_at >= timeout_s - RING_TIMEOUT_MARGIN_S

    # --- resuming ----------------------------------------------------------------------------------------

    def _restore(self, snapshot: StageSnapshot, now: float, out: list[Action]) -> None:
        stage = snapshot.stage
        if stage is Stage.ended:
            raise ValueError("an ended call cannot be resumed: engine/domain/unobserved.py gives its outcome")
        if stage in (Stage.dialing, Stage.ringing):
            self._state = CallState.dialing
        elif stage is Stage.message_done:
            self._state = CallState.message
            self._message_completed = True
        else:
            self._state = CallState(stage.value)
        self._seq = snapshot.seq
        self._stage_entered_at = snapshot.entered_at
        self._ringing_at = snapshot.ringing_at
        self._answered_at = snapshot.answered_at
        self._amd_status = snapshot.amd_status
        self._amd_cause = snapshot.amd_cause
        self._on_machine = snapshot.on_machine
        self._beep_heard_at = snapshot.beep_heard_at
        self._sound_heard = snapshot.sound_heard
        self._greeting_plays = snapshot.greeting_plays
        self._message_started_at = snapshot.message_started_at
        self._playback = snapshot.playback_id
        self._playback_media = snapshot.playback_media
        self._playback_stopped_at = snapshot.playback_stopped_at
        self._transfer_leg = snapshot.transfer_leg
        self._transfer_outcome = snapshot.transfer_outcome
        self._transfer_started_at = snapshot.transfer_started_at
        self._transfer_answered_at = snapshot.transfer_answered_at
        self._transfer_ended_at = snapshot.transfer_ended_at
        self._bridged = stage is Stage.bridged
        self._opted_out = stage is Stage.opt_out
        # Past the answer's first steps, the preamble (when the plan has one) has played.
        self._preamble_done = stage not in (Stage.dialing, Stage.ringing, Stage.amd, Stage.beep_wait)
        self._announced = snapshot
        self._started = True
        if self._plan.max_call_s is not None:
            self._resume_timer(Timer.call_limit, snapshot.originated_at + self._plan.max_call_s, now, out)
        if stage is Stage.message_done:
            # Heard to its end; only the hang-up was left to do.
            self._finish(
                now,
                out,
                end_reason=EndReason.message_completed,
                outcome=self._outcome_if_ended_now(),
                callee_gone=False,
            )
            return
        self._arm_deadline(now, out)
        self._resume_stage(snapshot, now, out)
        self._announce(now, out)  # only if resuming moved the call on

    def _resume_stage(self, snapshot: StageSnapshot, now: float, out: list[Action]) -> None:
        entered = snapshot.entered_at
        match self._state:
            case CallState.amd:
                self._resume_timer(Timer.amd_wait, entered + self._plan.amd_wait_max_s, now, out)
            case CallState.beep_wait:
                self._resume_beep_wait(now, out)
            case CallState.star_wait:
                self._resume_timer(Timer.star_wait, entered + self._plan.star_wait_s, now, out)
            case CallState.message | CallState.replay if snapshot.playback_stopped_at is not None:
                grace_until = snapshot.playback_stopped_at + self._plan.playback_grace_s
                self._resume_timer(Timer.playback_grace, grace_until, now, out)
            case CallState.transfer_dialing | CallState.bridged:
                self._resume_transfer(now, out)
            case _:
                # dialing, ringing: Asterisk's ring timeout (and the deadline) end the wait. greeting,
                # message, replay, apology, preamble, opt_out: the playback's end moves the call on (and
                # the deadline).
                pass
