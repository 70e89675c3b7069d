"""The per-call state machine, driven by pure event sequences (the issue 6 scenarios, then random ones)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest
from hypothesis import event as note_event
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.domain.callevents import (
    Abort,
    Action,
    AmdResult,
    Answered,
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
    ListenForBeep,
    Originated,
    OriginateFailed,
    OriginateTransfer,
    Play,
    PlaybackFinished,
    PlaybackStarted,
    Progress,
    Ringing,
    RunAmd,
    SetTalkDetection,
    StageChanged,
    StartTimer,
    StopDetection,
    StopPlayback,
    TalkingFinished,
    TalkingStarted,
    TimerFired,
    ToneDetected,
    TransferAnswered,
    TransferEnded,
)
from engine.domain.callflow import (
    TRANSFER_ORIGINATE_MARGIN_S,
    CallFlow,
    CallState,
)
from engine.domain.callplan import (
    RINGBACK_MEDIA,
    TRANSFER_APOLOGY_MEDIA,
    TRANSFER_WAIT_MEDIA,
    CallPlan,
    DropMode,
)
from engine.domain.callstage import Stage
from engine.domain.outcomes import Outcome, TransferOutcome

MESSAGE = "sound:/var/lib/vocalcast/messages/42"
GREETING = "sound:/var/lib/vocalcast/greetings/default"
CENTRE = "0170000000"

T0 = 1000.0


@dataclass
class Call:
    """A fake adapter: feeds events at given times, keeps the timers and playbacks the machine asked for."""

    plan: CallPlan
    now: float = T0
    flow: CallFlow = field(init=False)
    log: list[Action] = field(default_factory=list)
    timers: dict[str, float] = field(default_factory=dict)  # active name -> seconds
    stages: list[StageChanged] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.flow = CallFlow(self.plan, self.now)

    def feed(self, event: Event, at: float | None = None) -> list[Action]:
        if at is not None:
            assert at >= self.now
            self.now = at
        return self.track(self.flow.handle(event, self.now))

    def track(self, actions: list[Action]) -> list[Action]:
        """Keep the timers and the announced stages; return the actions but the stage announcements
        (checked here: each one is the machine's snapshot, stamped with the time of the event)."""
        for action in actions:
            if isinstance(action, StartTimer):
                assert action.name not in self.timers
                self.timers[action.name] = action.seconds
            elif isinstance(action, CancelTimer):
                assert action.name in self.timers
                del self.timers[action.name]
            elif isinstance(action, StageChanged):
                assert action.at == self.now and action.stage is action.snapshot.stage
                self.stages.append(action)
        if actions and self.stages:
            last = self.stages[-1].snapshot
            assert dataclasses.replace(last, seq=0) == dataclasses.replace(self.flow.snapshot(), seq=0)
        self.log.extend(actions)
        return [a for a in actions if not isinstance(a, StageChanged)]

    def timer(self, kind: str) -> str:
        names = [name for name in self.timers if name.endswith(f"-{kind}")]
        assert len(names) == 1, (kind, self.timers)
        return names[0]

    def fire(self, kind: str, at: float | None = None) -> list[Action]:
        name = self.timer(kind)
        del self.timers[name]
        return self.feed(TimerFired(name), at)

    def playing(self, kind: str) -> str:
        ids = [a.playback_id for a in self.log if isinstance(a, Play) and a.playback_id.endswith(f"-{kind}")]
        assert ids, kind
        return ids[-1]

    def end_playback(self, kind: str, *, completed: bool = True, at: float | None = None) -> list[Action]:
        return self.feed(PlaybackFinished(self.playing(kind), completed), at)

    @property
    def result(self) -> CallResult:
        result = self.flow.result
        assert result is not None
        return result

    def count(self, kind: type) -> int:
        return sum(isinstance(a, kind) for a in self.log)


def non_timer(actions: list[Action]) -> list[Action]:
    return [a for a in actions if not isinstance(a, StartTimer | CancelTimer)]


def no_deadline(actions: list[Action]) -> list[Action]:
    """The actions but the stage deadlines' timers (each stage that plays a medium arms its own)."""
    return [
        a for a in actions if not (isinstance(a, StartTimer | CancelTimer) and a.name.endswith("-deadline"))
    ]


def plan(**kwargs: object) -> CallPlan:
    return CallPlan(message=MESSAGE, **kwargs)  # type: ignore[arg-type]


def answered_call(**kwargs: object) -> Call:
    call = Call(plan(**kwargs))
    call.feed(Originated(), T0 + 0.05)
    call.feed(Ringing(), T0 + 1.0)
    call.feed(Answered(), T0 + 5.0)
    return call


def assert_finished_once(call: Call) -> None:
    assert call.count(Finished) == 1
    assert isinstance(call.log[-1], Finished)
    assert not call.timers, f"timers left running: {call.timers}"
    assert call.flow.state is CallState.ended


# --- The issue 6 scenarios --------------------------------------------------------------------------------


def test_answers_presses_star_and_listens_to_the_end() -> None:
    call = answered_call(greeting=GREETING)
    assert [a for a in call.log if isinstance(a, Play)] == [Play(call.playing("greeting"), GREETING)]
    actions = no_deadline(call.end_playback("greeting", at=T0 + 9.0))
    assert actions == [StartTimer(call.timer("star_wait"), 6.0)]
    actions = call.feed(Dtmf("*"), T0 + 10.0)
    assert non_timer(actions) == [Play(call.playing("message"), MESSAGE)]
    call.feed(PlaybackStarted(call.playing("message")), T0 + 10.1)
    actions = call.end_playback("message", at=T0 + 40.1)
    assert non_timer(actions)[-2:] == [HangupCallee(EndReason.message_completed), Finished(call.result)]
    assert_finished_once(call)
    result = call.result
    assert result.outcome is Outcome.listened
    assert result.end_reason is EndReason.message_completed
    assert result.cause == 16
    assert result.originated_at == T0
    assert result.ringing_at == T0 + 1.0
    assert result.answered_at == T0 + 5.0
    assert result.message_started_at == T0 + 10.1
    assert result.ended_at == T0 + 40.1
    assert result.ring_s == pytest.approx(4.0)
    assert result.talk_s == pytest.approx(35.1)
    assert result.transfer_s is None
    assert result.greeting_plays == 1
    assert result.transfer_outcome is None
    assert not result.may_fail_over


def test_answers_never_presses_star_greeting_twice_then_not_confirmed() -> None:
    call = answered_call(greeting=GREETING)
    call.end_playback("greeting", at=T0 + 9.0)
    actions = call.fire("star_wait", at=T0 + 15.0)
    assert non_timer(actions) == [Play(call.playing("greeting"), GREETING)]
    call.end_playback("greeting", at=T0 + 19.0)
    actions = call.fire("star_wait", at=T0 + 25.0)
    assert non_timer(actions) == [HangupCallee(EndReason.no_star), Finished(call.result)]
    assert_finished_once(call)
    assert call.count(Play) == 2
    assert call.result.outcome is Outcome.not_confirmed
    assert call.result.greeting_plays == 2
    assert call.result.message_started_at is None


@pytest.mark.parametrize("plays", [1, 2, 3])
def test_greeting_played_at_most_max_plays(plays: int) -> None:
    call = answered_call(greeting=GREETING, greeting_max_plays=plays)
    for _ in range(plays):
        call.end_playback("greeting")
        call.fire("star_wait")
    assert_finished_once(call)
    assert call.count(Play) == plays
    assert call.result.outcome is Outcome.not_confirmed


def test_star_during_the_greeting_stops_it_and_starts_the_message() -> None:
    call = answered_call(greeting=GREETING)
    greeting = call.playing("greeting")
    actions = call.feed(Dtmf("*"), T0 + 6.0)
    assert no_deadline(actions) == [StopPlayback(greeting), Play(call.playing("message"), MESSAGE)]
    # The stopped greeting's PlaybackFinished is not mistaken for anything.
    assert call.feed(PlaybackFinished(greeting, False)) == []
    assert call.flow.state is CallState.message


def test_star_on_the_second_greeting_is_accepted() -> None:
    call = answered_call(greeting=GREETING)
    call.end_playback("greeting")
    call.fire("star_wait")
    call.end_playback("greeting")
    call.feed(Dtmf("*"))
    call.end_playback("message")
    assert call.result.outcome is Outcome.listened
    assert call.result.greeting_plays == 2


def test_without_greeting_the_message_starts_on_answer() -> None:
    call = Call(plan())
    call.feed(Ringing(), T0 + 1.0)
    actions = call.feed(Answered(), T0 + 3.0)
    assert non_timer(actions) == [Play(call.playing("message"), MESSAGE)]
    call.end_playback("message", at=T0 + 33.0)
    assert call.result.outcome is Outcome.listened
    assert call.result.message_started_at == T0 + 3.0
    assert call.result.greeting_plays == 0


def test_announcement_answering_200_never_sends_dtmf_is_not_confirmed() -> None:
    call = Call(plan(greeting=GREETING))
    call.feed(Answered(), T0 + 0.5)  # 200 OK straight away, no 180
    call.end_playback("greeting")
    call.fire("star_wait")
    call.end_playback("greeting")
    call.fire("star_wait")
    assert call.result.outcome is Outcome.not_confirmed
    assert call.result.ringing_at is None
    assert call.result.ring_s is None


def test_hangup_during_the_greeting_is_not_confirmed() -> None:
    call = answered_call(greeting=GREETING)
    actions = call.feed(HangupRequested(cause=16), T0 + 7.0)
    assert non_timer(actions) == [Finished(call.result)]  # nothing to hang up: the callee is gone
    assert call.result.outcome is Outcome.not_confirmed
    assert call.result.end_reason is EndReason.callee_hangup
    assert call.result.cause == 16
    assert_finished_once(call)


def test_hangup_during_the_star_wait_is_not_confirmed() -> None:
    call = answered_call(greeting=GREETING)
    call.end_playback("greeting")
    call.feed(Hangup(cause=0))
    assert call.result.outcome is Outcome.not_confirmed
    assert_finished_once(call)


@pytest.mark.parametrize(("cause", "recorded"), [(16, 16), (None, None)])
def test_callee_bye_mid_message_with_and_without_reason(cause: int | None, recorded: int | None) -> None:
    call = answered_call(greeting=GREETING)
    call.feed(Dtmf("*"), T0 + 6.0)
    actions = call.feed(HangupRequested(cause=cause), T0 + 12.0)
    assert non_timer(actions) == [Finished(call.result)]
    # ChannelDestroyed (cause 0 without Reason) and the playback's end come afterwards: ignored.
    assert call.feed(PlaybackFinished(call.playing("message"), True), T0 + 12.01) == []
    assert call.feed(Hangup(cause=0 if cause is None else cause), T0 + 12.02) == []
    assert call.result.outcome is Outcome.partial
    assert call.result.cause == recorded
    assert call.result.talk_s == pytest.approx(7.0)
    assert_finished_once(call)


def test_bye_without_reason_seen_only_as_channel_destroyed_cause_0() -> None:
    call = answered_call()
    call.feed(Hangup(cause=0), T0 + 8.0)
    assert call.result.outcome is Outcome.partial
    assert call.result.cause == 0


def test_playback_finished_after_hangup_is_not_listened() -> None:
    call = answered_call()
    message = call.playing("message")
    call.feed(Hangup(cause=16), T0 + 8.0)
    assert call.feed(PlaybackFinished(message, True), T0 + 8.1) == []
    assert call.result.outcome is Outcome.partial
    assert call.count(Finished) == 1


def test_playback_stopped_before_the_hangup_event_arrives_is_partial() -> None:
    call = answered_call()
    actions = call.end_playback("message", completed=False, at=T0 + 8.0)
    assert [type(a) for a in actions] == [StartTimer]  # grace: wait for the hang-up that stopped it
    call.feed(Hangup(cause=16), T0 + 8.05)
    assert call.result.outcome is Outcome.partial
    assert_finished_once(call)


def test_message_that_stops_by_itself_without_hangup_is_failed() -> None:
    call = answered_call()
    call.end_playback("message", completed=False)
    actions = call.fire("playback_grace")
    assert non_timer(actions) == [HangupCallee(EndReason.playback_failed), Finished(call.result)]
    assert call.result.outcome is Outcome.failed
    assert_finished_once(call)


def test_other_digits_are_ignored() -> None:
    call = answered_call(greeting=GREETING, transfer_number=CENTRE)
    for digit in "0123456780#ABCD":
        assert call.feed(Dtmf(digit)) == []
    assert call.flow.state is CallState.greeting
    call.feed(Dtmf("*"))
    for digit in "*#1":
        assert call.feed(Dtmf(digit)) == []
    assert call.flow.state is CallState.message


@pytest.mark.parametrize("number", [None, "", "   "])
def test_nine_without_transfer_number_does_nothing(number: str | None) -> None:
    call = answered_call(greeting=GREETING, transfer_number=number)
    assert call.feed(Dtmf("9")) == []
    call.feed(Dtmf("*"))
    assert call.feed(Dtmf("9")) == []
    assert call.flow.state is CallState.message
    call.end_playback("message")
    assert call.result.outcome is Outcome.listened
    assert call.result.transfer_outcome is None


# --- Transfer ---------------------------------------------------------------------------------------------


def start_transfer(call: Call, at: float) -> None:
    message = call.playing("message")
    actions = call.feed(Dtmf("9"), at)
    assert non_timer(actions) == [
        StopPlayback(message),
        Play(call.playing("transfer_wait"), TRANSFER_WAIT_MEDIA),
        OriginateTransfer(CENTRE, 30.0 + TRANSFER_ORIGINATE_MARGIN_S),
    ]
    assert StartTimer(call.timer("transfer_ring"), 30.0) in actions


def test_star_then_nine_with_transfer_answered_then_callee_hangs_up() -> None:
    call = answered_call(greeting=GREETING, transfer_number=CENTRE)
    call.feed(Dtmf("*"), T0 + 6.0)
    start_transfer(call, T0 + 10.0)
    assert call.feed(PlaybackFinished(call.playing("message"), False)) == []  # the stop we asked for
    actions = call.end_playback("transfer_wait", at=T0 + 13.0)
    assert actions == [Play(call.playing("ringback"), RINGBACK_MEDIA)]
    actions = call.feed(TransferAnswered(), T0 + 20.0)
    assert non_timer(actions) == [StopPlayback(call.playing("ringback")), BridgeWithTransfer()]
    assert StartTimer(call.timer("transfer_max"), 1800.0) in actions
    assert call.flow.state is CallState.bridged
    assert call.feed(Dtmf("9")) == []  # keys in the bridge are for the call centre
    actions = call.feed(HangupRequested(cause=16), T0 + 140.0)
    assert non_timer(actions) == [HangupTransfer(), DestroyBridge(), Finished(call.result)]
    result = call.result
    assert result.outcome is Outcome.transferred
    assert result.transfer_outcome is TransferOutcome.answered
    assert result.transfer_started_at == T0 + 10.0
    assert result.transfer_answered_at == T0 + 20.0
    assert result.transfer_s == pytest.approx(120.0)
    assert result.talk_s == pytest.approx(135.0)
    assert_finished_once(call)


def test_call_centre_hangs_up_the_bridged_call() -> None:
    call = answered_call(transfer_number=CENTRE)
    start_transfer(call, T0 + 8.0)
    call.feed(TransferAnswered(), T0 + 9.0)  # answered while the "please wait" prompt still plays
    actions = call.feed(TransferEnded(cause=16), T0 + 69.0)
    assert non_timer(actions) == [
        HangupCallee(EndReason.transfer_hangup),
        DestroyBridge(),
        Finished(call.result),
    ]
    assert call.result.outcome is Outcome.transferred
    assert call.result.transfer_s == pytest.approx(60.0)
    assert_finished_once(call)


def test_nine_during_the_greeting_transfers() -> None:
    call = answered_call(greeting=GREETING, transfer_number=CENTRE)
    greeting = call.playing("greeting")
    actions = call.feed(Dtmf("9"))
    assert actions[0] == StopPlayback(greeting)
    assert OriginateTransfer(CENTRE, 35.0) in actions
    call.feed(TransferAnswered())
    call.feed(Hangup(cause=16))
    assert call.result.outcome is Outcome.transferred


def test_nine_during_the_star_wait_transfers() -> None:
    call = answered_call(greeting=GREETING, transfer_number=CENTRE)
    call.end_playback("greeting")
    star = call.timer("star_wait")
    actions = call.feed(Dtmf("9"))
    assert CancelTimer(star) in actions
    assert OriginateTransfer(CENTRE, 35.0) in actions
    assert call.flow.state is CallState.transfer_dialing


@pytest.mark.parametrize(
    ("ended", "expected"),
    [
        (TransferEnded(cause=17, sip_code=486, dialstatus="BUSY"), TransferOutcome.busy),
        (TransferEnded(cause=34, sip_code=503, dialstatus="CONGESTION"), TransferOutcome.failed),
        (TransferEnded(), TransferOutcome.failed),  # its originate was refused
        (TransferEnded(cause=19, dialstatus="NOANSWER"), TransferOutcome.no_answer),
    ],
)
def test_call_centre_busy_or_failed_apology_then_message_once(
    ended: TransferEnded, expected: TransferOutcome
) -> None:
    call = answered_call(transfer_number=CENTRE)
    start_transfer(call, T0 + 8.0)
    call.end_playback("transfer_wait", at=T0 + 11.0)
    ringback = call.playing("ringback")
    actions = call.feed(ended, T0 + 12.0)
    assert non_timer(actions) == [
        StopPlayback(ringback),
        Play(call.playing("apology"), TRANSFER_APOLOGY_MEDIA),
    ]
    assert call.flow.state is CallState.apology
    assert call.feed(Dtmf("9")) == []
    actions = call.end_playback("apology", at=T0 + 15.0)
    assert no_deadline(actions) == [Play(call.playing("message"), MESSAGE)]
    assert call.flow.state is CallState.replay
    assert call.feed(Dtmf("9")) == []  # no second transfer after a failed one
    actions = call.end_playback("message", at=T0 + 45.0)
    assert non_timer(actions) == [HangupCallee(EndReason.message_completed), Finished(call.result)]
    result = call.result
    assert result.outcome is Outcome.listened
    assert result.transfer_outcome is expected
    assert result.transfer_ended_at == T0 + 12.0
    assert result.transfer_s is None
    assert call.count(OriginateTransfer) == 1
    assert call.count(HangupTransfer) == 0  # the leg ended by itself
    assert_finished_once(call)


def test_call_centre_does_not_answer_in_time() -> None:
    call = answered_call(transfer_number=CENTRE)
    start_transfer(call, T0 + 8.0)
    call.end_playback("transfer_wait", at=T0 + 11.0)
    actions = call.fire("transfer_ring", at=T0 + 38.0)
    assert non_timer(actions)[:2] == [HangupTransfer(), StopPlayback(call.playing("ringback"))]
    assert call.flow.state is CallState.apology
    # Late news from the leg we gave up on is ignored.
    assert call.feed(TransferAnswered(), T0 + 38.1) == []
    assert call.feed(TransferEnded(cause=16), T0 + 38.2) == []
    call.end_playback("apology")
    call.feed(HangupRequested(cause=16))
    assert call.result.outcome is Outcome.partial
    assert call.result.transfer_outcome is TransferOutcome.no_answer
    assert call.count(HangupTransfer) == 1
    assert_finished_once(call)


def test_callee_hangs_up_while_the_call_centre_rings() -> None:
    call = answered_call(greeting=GREETING, transfer_number=CENTRE)
    call.feed(Dtmf("9"), T0 + 6.0)  # from the greeting: the message never started
    actions = call.feed(HangupRequested(cause=16), T0 + 9.0)
    assert non_timer(actions) == [HangupTransfer(), Finished(call.result)]
    assert call.result.outcome is Outcome.not_confirmed
    assert call.result.transfer_outcome is None
    assert call.result.transfer_ended_at == T0 + 9.0
    assert_finished_once(call)


def test_transfer_max_duration() -> None:
    call = answered_call(transfer_number=CENTRE, transfer_max_s=1800.0)
    start_transfer(call, T0 + 8.0)
    call.feed(TransferAnswered(), T0 + 20.0)
    actions = call.fire("transfer_max", at=T0 + 1820.0)
    assert non_timer(actions) == [
        HangupTransfer(),
        HangupCallee(EndReason.transfer_max),
        DestroyBridge(),
        Finished(call.result),
    ]
    assert call.result.outcome is Outcome.transferred
    assert call.result.end_reason is EndReason.transfer_max
    assert call.result.transfer_s == pytest.approx(1800.0)
    assert_finished_once(call)


def test_ringback_restarts_if_the_tone_ends() -> None:
    call = answered_call(transfer_number=CENTRE)
    start_transfer(call, T0 + 8.0)
    call.end_playback("transfer_wait")
    first = call.playing("ringback")
    actions = call.end_playback("ringback", completed=True)
    assert len(actions) == 1
    assert isinstance(actions[0], Play)
    assert actions[0].playback_id != first
    # A ringback that failed is not restarted (no busy loop).
    assert call.end_playback("ringback", completed=False) == []


# --- Unanswered calls -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "hangup", "expected", "fail_over"),
    [
        ([Ringing()], Hangup(cause=17, sip_code=486, dialstatus="BUSY"), Outcome.busy, False),
        ([Ringing()], Hangup(cause=17, dialstatus="BUSY"), Outcome.busy, False),
        ([Ringing()], Hangup(cause=19, dialstatus="NOANSWER"), Outcome.no_answer, False),
        ([Ringing()], Hangup(cause=0, dialstatus="NOANSWER"), Outcome.no_answer, False),
        ([Ringing()], Hangup(cause=0), Outcome.no_answer, False),
        ([Ringing()], Hangup(cause=21, dialstatus="NOANSWER"), Outcome.rejected, False),
        ([Progress()], Hangup(cause=17, sip_code=486, dialstatus="BUSY"), Outcome.busy, False),
        ([Progress(), Ringing()], Hangup(cause=19, dialstatus="NOANSWER"), Outcome.no_answer, False),
        ([], Hangup(cause=1, sip_code=404), Outcome.unreachable, False),
        ([], Hangup(cause=34, sip_code=503, dialstatus="CONGESTION"), Outcome.congestion, True),
        ([Ringing()], Hangup(cause=34, sip_code=503, dialstatus="CONGESTION"), Outcome.congestion, False),
        ([], Hangup(cause=0, dialstatus="CHANUNAVAIL"), Outcome.failed, True),
        ([], Hangup(cause=21, sip_code=403), Outcome.failed, True),
    ],
)
def test_unanswered_calls(events: list[Event], hangup: Hangup, expected: Outcome, fail_over: bool) -> None:
    call = Call(plan(greeting=GREETING, transfer_number=CENTRE))
    call.feed(Originated(), T0 + 0.02)
    for event in events:
        call.feed(event, call.now + 1.0)
    actions = call.feed(hangup, call.now + 20.0)
    assert non_timer(actions) == [Finished(call.result)]  # nothing to hang up, nothing played
    result = call.result
    assert result.outcome is expected
    assert result.end_reason is EndReason.dial_failed
    assert result.cause == hangup.cause
    assert result.sip_code == hangup.sip_code
    assert result.may_fail_over is fail_over
    assert result.answered_at is None
    assert result.talk_s is None
    assert (result.ring_s is not None) == bool(events)
    assert call.count(Play) == 0
    assert_finished_once(call)


def test_ring_duration_is_measured_from_the_first_provisional() -> None:
    call = Call(plan())
    call.feed(Progress(), T0 + 1.0)
    call.feed(Ringing(), T0 + 2.0)
    call.feed(Hangup(cause=19, dialstatus="NOANSWER"), T0 + 31.0)
    assert call.result.ringing_at == T0 + 1.0
    assert call.result.ring_s == pytest.approx(30.0)


def test_ring_timeout_after_ringing_is_no_answer_without_the_made_up_sip_code() -> None:
    # Lab: the originate's own timeout after a 180 arrives as cause 19 with tech_cause 480 that no phone
    # sent (it answered our CANCEL with 487), and no final dial status.
    call = Call(plan())
    call.feed(Ringing(), T0 + 0.1)
    call.feed(Hangup(cause=19, sip_code=480), T0 + 30.0)
    result = call.result
    assert (result.outcome, result.cause, result.sip_code, result.may_fail_over) == (
        Outcome.no_answer,
        19,
        None,
        False,
    )
    assert result.ring_s == pytest.approx(29.9)


def test_ring_timeout_without_any_provisional_is_a_trunk_failure_that_may_fail_over() -> None:
    # Nothing from the trunk for the whole ring time (not even 180/183): the phone never rang.
    call = Call(plan())
    call.feed(Originated(), T0 + 0.01)
    call.feed(Hangup(cause=19, sip_code=480), T0 + 30.0)
    result = call.result
    assert (result.outcome, result.cause, result.sip_code, result.may_fail_over) == (
        Outcome.failed,
        19,
        None,
        True,
    )
    assert result.ring_s is None
    assert result.outcome.retryable and not result.outcome.consumes_credit


def test_a_real_480_before_the_ring_timeout_stays_no_answer() -> None:
    call = Call(plan())
    call.feed(Ringing(), T0 + 0.1)
    call.feed(Hangup(cause=19, sip_code=480), T0 + 12.0)
    assert (call.result.outcome, call.result.sip_code) == (Outcome.no_answer, 480)


def test_hangup_request_before_answer_waits_for_the_destroyed_cause() -> None:
    call = Call(plan())
    call.feed(Ringing(), T0 + 1.0)
    assert call.feed(HangupRequested(cause=17, sip_code=486), T0 + 3.0) == []
    assert not call.flow.finished
    call.feed(Hangup(cause=0, dialstatus="BUSY"), T0 + 3.01)
    assert call.result.outcome is Outcome.busy
    assert call.result.cause == 17
    assert call.result.sip_code == 486


def test_destroyed_with_answer_status_but_no_answered_event() -> None:
    call = Call(plan(greeting=GREETING))
    call.feed(Ringing())
    call.feed(Hangup(cause=16, dialstatus="ANSWER"))
    assert call.result.outcome is Outcome.not_confirmed
    assert call.result.end_reason is EndReason.callee_hangup


def test_originate_refused() -> None:
    call = Call(plan())
    actions = call.feed(OriginateFailed("HTTP 500 Allocation failed"), T0 + 0.1)
    assert actions == [Finished(call.result)]
    assert call.result.outcome is Outcome.failed
    assert call.result.end_reason is EndReason.originate_failed
    assert call.result.may_fail_over
    assert call.result.abort_reason == "HTTP 500 Allocation failed"
    # The channel's own events, if any arrive, change nothing.
    assert call.feed(Hangup(cause=0)) == []


def test_originate_failed_after_the_channel_rang_is_ignored() -> None:
    call = Call(plan())
    call.feed(Ringing())
    assert call.feed(OriginateFailed("late reply")) == []
    assert not call.flow.finished


def test_events_before_the_answer_are_ignored() -> None:
    call = Call(plan(greeting=GREETING, transfer_number=CENTRE))
    call.feed(Ringing())
    for event in (
        Dtmf("9"),
        Dtmf("*"),
        PlaybackFinished("p01-message", True),
        PlaybackStarted("p01-message"),
        AmdResult("MACHINE"),
        TalkingFinished(),
        TransferAnswered(),
        TransferEnded(),
        TimerFired("t99-star_wait"),
        Originated(),
    ):
        assert call.feed(event) == []
    assert call.flow.state is CallState.dialing


# --- Voicemail drop (answering-machine mode) --------------------------------------------------------------


def test_amd_machine_waits_for_the_beep_then_leaves_the_message() -> None:
    call = Call(plan(greeting=GREETING, drop_mode=DropMode.amd))
    call.feed(Ringing(), T0 + 1.0)
    actions = call.feed(Answered(), T0 + 4.0)
    assert RunAmd() in actions
    assert StartTimer(call.timer("amd_wait"), 10.0) in actions
    assert call.count(Play) == 0
    actions = call.feed(AmdResult("MACHINE", "LONGGREETING-2000-1500"), T0 + 7.0)
    # Both detectors on what the callee sends: a long silence, or the 1000 Hz beep, ends the greeting.
    assert non_timer(actions) == [SetTalkDetection(1500, 256), ListenForBeep(150)]
    assert StartTimer(call.timer("beep_wait"), 20.0) in actions
    assert StartTimer(call.timer("no_sound"), 2.0) in actions
    assert call.flow.stage is Stage.beep_wait
    assert call.feed(Dtmf("*")) == []
    call.feed(TalkingStarted(), T0 + 7.5)  # the machine's greeting
    assert "no_sound" not in str(call.timers)
    actions = call.feed(TalkingFinished(), T0 + 15.0)
    # The greeting is skipped: a machine cannot press `*`.
    assert non_timer(actions) == [StopDetection(), Play(call.playing("message"), MESSAGE)]
    call.end_playback("message", at=T0 + 45.0)
    result = call.result
    assert result.outcome is Outcome.voicemail
    assert result.amd_status == "MACHINE"
    assert result.amd_cause == "LONGGREETING-2000-1500"
    assert result.message_started_at == T0 + 15.0
    assert result.greeting_plays == 0
    assert_finished_once(call)


def test_amd_machine_beep_never_heard_plays_at_the_cap() -> None:
    call = Call(plan(drop_mode=DropMode.amd, beep_wait_max_s=12.0))
    call.feed(Answered())
    call.feed(AmdResult("MACHINE", "MAXWORDLENGTH"))
    assert call.flow.plan.beep_wait_max_s == 12.0
    call.feed(TalkingStarted())  # a greeting that never ends with a silence long enough
    actions = call.fire("beep_wait")
    assert non_timer(actions) == [StopDetection(), Play(call.playing("message"), MESSAGE)]
    call.end_playback("message")
    assert call.result.outcome is Outcome.voicemail


def test_amd_machine_hangs_up_before_the_beep() -> None:
    call = Call(plan(drop_mode=DropMode.amd))
    call.feed(Answered())
    call.feed(AmdResult("MACHINE"))
    actions = call.feed(Hangup(cause=16))
    assert non_timer(actions) == [Finished(call.result)]
    assert call.result.outcome is Outcome.not_confirmed
    assert_finished_once(call)


def test_amd_machine_cuts_the_message() -> None:
    call = Call(plan(drop_mode=DropMode.amd))
    call.feed(Answered())
    call.feed(AmdResult("MACHINE"))
    call.feed(TalkingFinished())
    call.feed(HangupRequested(cause=16))
    assert call.result.outcome is Outcome.partial


@pytest.mark.parametrize("status", ["HUMAN", "NOTSURE", "HANGUP", "human"])
def test_amd_human_or_unsure_gets_the_normal_flow(status: str) -> None:
    call = Call(plan(greeting=GREETING, drop_mode=DropMode.amd))
    call.feed(Answered())
    amd_timer = call.timer("amd_wait")
    actions = call.feed(AmdResult(status, "INITIALSILENCE"))
    assert no_deadline(actions) == [CancelTimer(amd_timer), Play(call.playing("greeting"), GREETING)]
    call.feed(Dtmf("*"))
    call.end_playback("message")
    assert call.result.outcome is Outcome.listened
    assert call.result.amd_status == status


def test_amd_human_without_greeting_gets_the_message() -> None:
    call = Call(plan(drop_mode=DropMode.amd))
    call.feed(Answered())
    actions = call.feed(AmdResult("HUMAN"))
    assert non_timer(actions) == [Play(call.playing("message"), MESSAGE)]


def test_amd_result_lost() -> None:
    call = Call(plan(drop_mode=DropMode.amd))
    call.feed(Answered())
    actions = call.fire("amd_wait")
    assert non_timer(actions) == [HangupCallee(EndReason.amd_timeout), Finished(call.result)]
    assert call.result.outcome is Outcome.not_confirmed
    assert call.feed(AmdResult("HUMAN")) == []


def test_amd_events_ignored_without_drop_mode() -> None:
    call = answered_call(greeting=GREETING)
    for event in (AmdResult("MACHINE"), ToneDetected(), TalkingStarted(), TalkingFinished()):
        assert call.feed(event) == []
    assert call.flow.state is CallState.greeting


def machine_on_the_line(**kwargs: object) -> Call:
    call = Call(plan(drop_mode=DropMode.amd, **kwargs))
    call.feed(Answered(), T0 + 1.0)
    call.feed(AmdResult("MACHINE", "LONGGREETING"), T0 + 4.0)
    return call


def test_beep_heard_then_a_short_silence_ends_the_wait() -> None:
    call = machine_on_the_line()
    call.feed(TalkingStarted(), T0 + 4.2)
    actions = call.feed(ToneDetected(), T0 + 9.0)
    # Once the beep is heard, a short silence means it ended (and AFTER_BEEP_MAX_S at the latest).
    assert non_timer(actions) == [SetTalkDetection(200, 256)]
    assert StartTimer(call.timer("after_beep"), 1.0) in actions
    assert call.flow.snapshot().beep_heard_at == T0 + 9.0
    assert call.feed(ToneDetected(), T0 + 9.1) == []  # the same beep, still sounding
    actions = call.feed(TalkingFinished(), T0 + 9.7)
    assert non_timer(actions) == [StopDetection(), Play(call.playing("message"), MESSAGE)]
    assert not any(name.endswith(("after_beep", "beep_wait", "no_sound")) for name in call.timers)
    call.end_playback("message", at=T0 + 40.0)
    assert call.result.outcome is Outcome.voicemail
    assert call.result.message_started_at == T0 + 9.7


def test_beep_heard_but_line_noise_hides_the_silence_after_it() -> None:
    call = machine_on_the_line()
    call.feed(TalkingStarted(), T0 + 4.2)
    call.feed(ToneDetected(), T0 + 9.0)
    actions = call.fire("after_beep", at=T0 + 10.0)
    assert non_timer(actions) == [StopDetection(), Play(call.playing("message"), MESSAGE)]


def test_no_sound_at_all_means_the_greeting_is_already_over() -> None:
    call = machine_on_the_line()
    actions = call.fire("no_sound", at=T0 + 6.0)
    assert non_timer(actions) == [StopDetection(), Play(call.playing("message"), MESSAGE)]
    assert call.flow.state is CallState.message


def test_a_long_silence_before_any_beep_ends_the_wait() -> None:
    # A greeting without a beep (or a beep too faint to hear): its closing silence (1.5 s, longer than the
    # pauses between sentences) ends the wait.
    call = machine_on_the_line()
    call.feed(TalkingStarted(), T0 + 4.1)
    actions = call.feed(TalkingFinished(), T0 + 12.0)
    assert non_timer(actions) == [StopDetection(), Play(call.playing("message"), MESSAGE)]


def test_the_callee_gone_during_the_beep_wait_needs_no_detector_removed() -> None:
    call = machine_on_the_line()
    actions = call.feed(Hangup(cause=16), T0 + 5.0)
    assert StopDetection() not in actions
    actions = machine_on_the_line().fire("beep_wait")
    assert StopDetection() in actions


# --- Guards -----------------------------------------------------------------------------------------------


def test_call_limit_is_armed_by_the_first_event_and_ends_the_call() -> None:
    call = Call(plan(max_call_s=600.0))
    actions = call.feed(Originated())
    assert no_deadline(actions) == [StartTimer(call.timer("call_limit"), 600.0)]
    call.feed(Ringing())
    call.feed(Answered())
    actions = call.fire("call_limit")
    assert non_timer(actions) == [HangupCallee(EndReason.call_limit), Finished(call.result)]
    assert call.result.outcome is Outcome.partial
    assert_finished_once(call)


def test_call_limit_before_answer_cancels_the_call() -> None:
    call = Call(plan(max_call_s=600.0))
    call.feed(Ringing())
    call.fire("call_limit")
    assert call.result.outcome is Outcome.failed
    assert HangupCallee(EndReason.call_limit) in call.log


def test_abort_mid_message() -> None:
    call = answered_call()
    actions = call.feed(Abort("ARI 404 on play"))
    assert non_timer(actions) == [HangupCallee(EndReason.aborted), Finished(call.result)]
    assert call.result.outcome is Outcome.partial
    assert call.result.abort_reason == "ARI 404 on play"
    assert_finished_once(call)


def test_abort_for_a_vanished_channel_hangs_up_nothing_and_knows_no_cause() -> None:
    # The sweep found the channel gone and its events lost: how far the call got decides the outcome.
    call = answered_call()
    actions = call.feed(Abort("channel vanished without events", channel_gone=True))
    assert non_timer(actions) == [Finished(call.result)]
    result = call.result
    assert (result.outcome, result.end_reason, result.cause) == (Outcome.partial, EndReason.aborted, None)
    assert result.abort_reason == "channel vanished without events"
    assert_finished_once(call)


def test_abort_for_a_vanished_channel_still_hangs_up_the_transfer_leg() -> None:
    call = answered_call(transfer_number=CENTRE)
    start_transfer(call, T0 + 8.0)
    call.feed(TransferAnswered())
    actions = call.feed(Abort("channel vanished without events", channel_gone=True))
    assert non_timer(actions) == [HangupTransfer(), DestroyBridge(), Finished(call.result)]
    assert call.result.outcome is Outcome.transferred


def test_abort_during_a_transfer_hangs_up_both_legs() -> None:
    call = answered_call(transfer_number=CENTRE)
    start_transfer(call, T0 + 8.0)
    call.feed(TransferAnswered())
    actions = call.feed(Abort("sweep"))
    assert non_timer(actions) == [
        HangupTransfer(),
        HangupCallee(EndReason.aborted),
        DestroyBridge(),
        Finished(call.result),
    ]
    assert call.result.outcome is Outcome.transferred


def test_stale_timers_and_unknown_playbacks_are_ignored() -> None:
    call = answered_call(greeting=GREETING)
    call.end_playback("greeting")
    star = call.timer("star_wait")
    call.feed(Dtmf("*"))
    assert call.feed(TimerFired(star)) == []  # fired after we cancelled it
    assert call.feed(TimerFired("nonsense")) == []
    assert call.feed(PlaybackFinished("p77-greeting", True)) == []
    assert call.feed(PlaybackStarted("p77-greeting")) == []
    assert call.flow.state is CallState.message


def test_answered_twice_is_ignored() -> None:
    call = answered_call()
    assert call.feed(Answered()) == []
    assert call.feed(Ringing()) == []
    assert not call.flow.finished
    assert call.flow.state is CallState.message


def test_same_events_give_the_same_actions() -> None:
    def run() -> list[Action]:
        call = answered_call(greeting=GREETING, transfer_number=CENTRE)
        call.end_playback("greeting")
        call.fire("star_wait")
        call.feed(Dtmf("*"))
        call.feed(Dtmf("9"))
        call.end_playback("transfer_wait")
        call.feed(TransferAnswered())
        call.feed(TransferEnded(cause=16))
        return call.log

    assert run() == run()


def test_playback_ids_are_unique_and_fixed_width() -> None:
    call = answered_call(greeting=GREETING, transfer_number=CENTRE, greeting_max_plays=2)
    call.end_playback("greeting")
    call.fire("star_wait")
    call.feed(Dtmf("*"))
    call.feed(Dtmf("9"))
    call.end_playback("transfer_wait")
    call.feed(TransferEnded(cause=17, dialstatus="BUSY"))
    call.end_playback("apology")
    ids = [a.playback_id for a in call.log if isinstance(a, Play)]
    # greeting x2, message, please-wait, ringback, apology, message replayed
    assert len(ids) == len(set(ids)) == 7
    # No id is a prefix of another (Asterisk's id checks have bitten us with prefixes).
    assert not any(a != b and b.startswith(a) for a in ids for b in ids)
    names = [a.name for a in call.log if isinstance(a, StartTimer)]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"message": ""},
        {"message": MESSAGE, "greeting_max_plays": 0},
        {"message": MESSAGE, "star_wait_s": 0.0},
        {"message": MESSAGE, "transfer_max_s": -1.0},
        {"message": MESSAGE, "max_call_s": float("inf")},
        {"message": MESSAGE, "beep_wait_max_s": float("nan")},
    ],
)
def test_bad_plans_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CallPlan(**kwargs)  # type: ignore[arg-type]


# --- Random event sequences -------------------------------------------------------------------------------


PLANS = st.builds(
    CallPlan,
    message=st.just(MESSAGE),
    greeting=st.sampled_from([None, GREETING]),
    transfer_number=st.sampled_from([None, CENTRE]),
    drop_mode=st.sampled_from(list(DropMode)),
    greeting_max_plays=st.integers(min_value=1, max_value=3),
    max_call_s=st.sampled_from([None, 3600.0]),
    message_s=st.sampled_from([None, 30.0]),
    greeting_s=st.sampled_from([None, 8.0]),
    # A commercial send's preamble and opt-out key (issue 18).
    preamble=st.sampled_from([None, "sound:/var/lib/vocalcast/media/preambles/acme"]),
    opt_out_key=st.sampled_from([None, "0"]),
)

# Events that keep the call going, and events that usually end it (drawn rarely, so that random sequences
# also reach the transfer, the bridge, the apology and the voicemail drop).
ONGOING_EVENTS: list[Event] = [
    Originated(),
    Ringing(),
    Progress(),
    Answered(),
    AmdResult("HUMAN"),
    AmdResult("MACHINE"),
    AmdResult("NOTSURE"),
    ToneDetected(),
    TalkingStarted(),
    TalkingFinished(),
    Dtmf("*"),
    Dtmf("9"),
    Dtmf("1"),
    Dtmf("0"),
    TransferAnswered(),
    TransferEnded(cause=17, sip_code=486, dialstatus="BUSY"),
    TransferEnded(cause=16),
    TransferEnded(),
    TimerFired("bogus"),
    PlaybackFinished("p99-message", True),
]
ENDING_EVENTS: list[Event] = [
    OriginateFailed("refused"),
    HangupRequested(cause=16),
    HangupRequested(),
    Hangup(cause=0),
    Hangup(cause=17, dialstatus="BUSY"),
    Hangup(cause=21, dialstatus="NOANSWER"),
    Hangup(cause=34, sip_code=503, dialstatus="CONGESTION"),
    Hangup(cause=16, dialstatus="ANSWER"),
    Hangup(cause=19, sip_code=480),
    Abort("test"),
    Abort("vanished", channel_gone=True),
]
ALL_EVENTS = ONGOING_EVENTS + ENDING_EVENTS
# Events that move each state forward, drawn half of the time so that sequences go deep.
GUIDES: dict[CallState, list[Event]] = {
    CallState.dialing: [Answered()],
    CallState.amd: [AmdResult("HUMAN"), AmdResult("MACHINE"), AmdResult("NOTSURE")],
    CallState.beep_wait: [TalkingFinished(), ToneDetected(), TalkingStarted()],
    CallState.greeting: [Dtmf("*"), Dtmf("9")],
    CallState.star_wait: [Dtmf("*"), Dtmf("9")],
    CallState.message: [Dtmf("9"), Dtmf("0")],
    CallState.preamble: [Dtmf("0"), Dtmf("*")],
    CallState.transfer_dialing: [
        TransferAnswered(),
        TransferEnded(cause=17, dialstatus="BUSY"),
        TransferEnded(),
    ],
    CallState.bridged: [TransferEnded(cause=16)],
}


@dataclass
class Invariants:
    """Checks every action list the machine returns, as the adapter would see them."""

    timers: set[str] = field(default_factory=set)
    timer_names_seen: set[str] = field(default_factory=set)
    playbacks: set[str] = field(default_factory=set)
    live_playbacks: set[str] = field(default_factory=set)
    finished: int = 0
    transfer_legs_open: int = 0
    bridges: int = 0
    callee_hangups: int = 0
    detecting: bool = False
    tone: bool = False
    stages: list[StageChanged] = field(default_factory=list)

    def check(self, flow: CallFlow, actions: list[Action], *, was_finished: bool) -> None:
        if was_finished:
            assert actions == []
            return
        for index, action in enumerate(actions):
            assert self.finished == 0, "an action after Finished"
            match action:
                case StartTimer(name=name, seconds=seconds):
                    assert name not in self.timer_names_seen, "a timer name was reused"
                    assert seconds > 0
                    self.timer_names_seen.add(name)
                    self.timers.add(name)
                case CancelTimer(name=name):
                    assert name in self.timers, "cancel of a timer that is not running"
                    self.timers.remove(name)
                case Play(playback_id=playback_id):
                    assert playback_id not in self.playbacks
                    self.playbacks.add(playback_id)
                    self.live_playbacks.add(playback_id)
                case StopPlayback(playback_id=playback_id):
                    assert playback_id in self.playbacks
                case OriginateTransfer():
                    assert self.transfer_legs_open == 0
                    self.transfer_legs_open += 1
                case HangupTransfer():
                    assert self.transfer_legs_open == 1
                    self.transfer_legs_open -= 1
                case BridgeWithTransfer():
                    assert self.bridges == 0
                    self.bridges += 1
                case DestroyBridge():
                    assert self.bridges == 1
                    self.bridges -= 1
                case HangupCallee():
                    self.callee_hangups += 1
                    assert self.callee_hangups == 1
                case ListenForBeep():
                    assert not self.tone
                    self.tone = self.detecting = True
                case SetTalkDetection():
                    self.detecting = True
                case StopDetection():
                    assert self.detecting
                    self.tone = self.detecting = False
                case StageChanged(stage=stage, snapshot=snapshot):
                    assert stage is snapshot.stage
                    assert not self.stages or self.stages[-1].snapshot != snapshot, "announced twice"
                    assert stage is not Stage.ended or index == len(actions) - 2, "ended, then Finished"
                    self.stages.append(action)
                case Finished(result=result):
                    assert index == len(actions) - 1, "Finished must be the last action"
                    self.finished += 1
                    assert result is flow.result
                    assert isinstance(result.outcome, Outcome)
                    assert result.outcome in set(Outcome)
                    assert result.ended_at >= result.originated_at
                    assert not self.timers, f"timers left running at the end: {self.timers}"
                    assert self.transfer_legs_open == 0, "transfer leg left behind"
                    assert self.bridges == 0, "bridge left behind"
                    assert self.stages[-1].stage is Stage.ended
                case RunAmd():
                    pass
                case _:
                    raise AssertionError(f"unexpected action {action!r}")


@settings(max_examples=5 * settings().max_examples)  # 500 in `make test` (tests/conftest.py)
@given(plan=PLANS, data=st.data())
def test_random_event_sequences_keep_the_invariants(plan: CallPlan, data: st.DataObject) -> None:
    now = T0
    flow = CallFlow(plan, now)
    inv = Invariants()
    steps = data.draw(st.integers(min_value=0, max_value=60), label="steps")
    for _ in range(steps):
        roll = data.draw(st.integers(min_value=0, max_value=99), label="roll")
        # The absolute call limit fires rarely, other timers often: as in real calls.
        timers = sorted(name for name in inv.timers if roll == 0 or not name.endswith("-call_limit"))
        event: Event
        if roll < 20 and timers:
            name = data.draw(st.sampled_from(timers), label="timer")
            inv.timers.discard(name)  # the adapter's timer fires and is gone
            event = TimerFired(name)
        elif roll < 45 and inv.live_playbacks:
            playback_id = data.draw(st.sampled_from(sorted(inv.live_playbacks)), label="playback")
            if data.draw(st.booleans(), label="started"):
                event = PlaybackStarted(playback_id)
            else:
                inv.live_playbacks.discard(playback_id)
                event = PlaybackFinished(playback_id, data.draw(st.booleans(), label="completed"))
        elif roll < 70 and flow.state in GUIDES:
            event = data.draw(st.sampled_from(GUIDES[flow.state]), label="guided")
        elif roll < 97:
            event = data.draw(st.sampled_from(ONGOING_EVENTS), label="event")
        else:
            event = data.draw(st.sampled_from(ENDING_EVENTS), label="ending")
        if isinstance(event, TransferEnded) and inv.transfer_legs_open:
            inv.transfer_legs_open -= 1  # the leg really ended
        now += data.draw(st.floats(min_value=0, max_value=100), label="dt")
        was_finished = flow.finished
        actions = flow.handle(event, now)
        inv.check(flow, actions, was_finished=was_finished)
        assert flow.active_timers == frozenset(inv.timers) or flow.finished
    # Whatever happened, the callee's channel going away ends the call.
    was_finished = flow.finished
    actions = flow.handle(Hangup(cause=16), now + 1)
    inv.check(flow, actions, was_finished=was_finished)
    assert flow.finished
    assert inv.finished == 1
    assert flow.result is not None
    # Shown by --hypothesis-show-statistics: proves the sequences reach the deep states.
    note_event(f"ended {flow.result.end_reason} / {flow.result.outcome} / {flow.result.transfer_outcome}")
    assert isinstance(flow.result.outcome, Outcome)
    # After the end, nothing more.
    for event in ALL_EVENTS:
        assert flow.handle(event, now + 2) == []


# --- Voicemail drop (direct deposit through the trunk) -------------------------------------------------


def test_direct_deposit_plays_the_message_at_once_and_counts_as_voicemail() -> None:
    call = Call(plan(greeting=GREETING, transfer_number="+33140000000", drop_mode=DropMode.direct))
    actions = call.feed(Answered(), T0 + 2.0)
    # The mailbox answered: no greeting (it cannot press `*`), no AMD.
    assert non_timer(actions) == [Play(call.playing("message"), MESSAGE)]
    assert call.feed(Dtmf("9")) == []  # nobody to transfer
    call.end_playback("message", at=T0 + 32.0)
    assert call.result.outcome is Outcome.voicemail
    assert call.result.greeting_plays == 0
    assert_finished_once(call)


def test_direct_deposit_cut_short_is_partial() -> None:
    call = Call(plan(drop_mode=DropMode.direct))
    call.feed(Answered())
    call.feed(HangupRequested(cause=16))
    assert call.result.outcome is Outcome.partial
