"""Stages, deadlines and resuming (issue 16): each call announces its stage, each stage ends by its own
deadline when an event is lost, and a call is carried on from its last announced stage as if the engine
had never stopped."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest
from hypothesis import event as note_event
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.domain.callevents import (
    Abort,
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
    OriginateTransfer,
    Play,
    PlaybackFinished,
    PlaybackStarted,
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
from engine.domain.callflow import CallFlow, CallState
from engine.domain.callplan import CallPlan, DropMode
from engine.domain.callstage import (
    STAGE_DEADLINE_MARGIN_S,
    UNKNOWN_MEDIA_S,
    Media,
    Stage,
    StageSnapshot,
)
from engine.domain.outcomes import Outcome, TransferOutcome
from tests.unit.test_callflow import (
    CENTRE,
    ENDING_EVENTS,
    GREETING,
    MESSAGE,
    ONGOING_EVENTS,
    T0,
    Call,
    answered_call,
    assert_finished_once,
    no_deadline,
    non_timer,
    plan,
)

# --- the stages a call announces ----------------------------------------------------------------------


def stages_of(call: Call) -> list[tuple[Stage, str]]:
    return [(s.stage, s.detail) for s in call.stages]


def test_each_stage_is_announced_once_with_its_time_and_detail() -> None:
    call = Call(plan(greeting=GREETING, transfer_number=CENTRE))
    call.feed(Originated(), T0 + 0.1)
    call.feed(Ringing(), T0 + 1.0)
    call.feed(Answered(), T0 + 4.0)
    call.end_playback("greeting", at=T0 + 9.0)
    call.fire("star_wait", at=T0 + 15.0)
    call.feed(Dtmf("*"), T0 + 16.0)
    call.feed(PlaybackStarted(call.playing("message")), T0 + 16.2)
    call.feed(Dtmf("9"), T0 + 20.0)
    call.end_playback("transfer_wait", at=T0 + 23.0)
    call.feed(TransferAnswered(), T0 + 25.0)
    call.feed(TransferEnded(cause=16), T0 + 85.0)
    plays = [a.playback_id for a in call.log if isinstance(a, Play)]
    greeting1, greeting2, message, wait, ringback = plays
    assert stages_of(call) == [
        (Stage.dialing, ""),
        (Stage.ringing, ""),
        (Stage.greeting, f"play 1 {greeting1}"),
        (Stage.star_wait, ""),
        (Stage.greeting, f"play 2 {greeting2}"),
        (Stage.message, message),
        (Stage.message, message),  # the message really started: its time is more precise
        (Stage.transfer_dialing, wait),
        (Stage.transfer_dialing, ringback),
        (Stage.bridged, ""),
        (Stage.ended, ""),
    ]
    assert [s.at for s in call.stages] == [
        T0 + t for t in (0.1, 1.0, 4.0, 9.0, 15.0, 16.0, 16.2, 20, 23, 25, 85)
    ]
    entered = [s.snapshot.entered_at for s in call.stages]
    assert entered[5:7] == [T0 + 16.0, T0 + 16.0]  # the stage's entry, not the detail's change
    assert call.stages[6].snapshot.message_started_at == T0 + 16.2
    bridged = call.stages[-2].snapshot
    assert (bridged.transfer_leg, bridged.transfer_answered_at) == (True, T0 + 25.0)
    # The announcement comes after the actions it describes, before Finished.
    assert isinstance(call.log[-1], Finished) and call.log[-2] == call.stages[-1]
    transfer_at = call.log.index(call.stages[7])
    assert any(isinstance(a, OriginateTransfer) for a in call.log[:transfer_at])


def test_message_heard_to_its_end_is_announced_before_the_hang_up() -> None:
    call = answered_call()
    call.end_playback("message", at=T0 + 40.0)
    assert [s.stage for s in call.stages][-3:] == [Stage.message, Stage.message_done, Stage.ended]
    done = call.log.index(call.stages[-2])
    assert call.log[done + 1 :] == [
        HangupCallee(EndReason.message_completed),
        call.stages[-1],
        Finished(call.result),
    ]


def test_beep_wait_announces_the_beep() -> None:
    call = Call(plan(drop_mode=DropMode.amd))
    call.feed(Answered(), T0 + 1.0)
    call.feed(AmdResult("MACHINE"), T0 + 3.0)
    call.feed(TalkingStarted(), T0 + 3.1)
    call.feed(ToneDetected(), T0 + 8.0)
    assert stages_of(call)[-4:] == [
        (Stage.amd, ""),
        (Stage.beep_wait, ""),
        (Stage.beep_wait, "sound heard"),
        (Stage.beep_wait, "beep heard"),
    ]


# --- deadlines ----------------------------------------------------------------------------------------


def deadline_s(actions: list) -> float | None:  # type: ignore[type-arg]
    started = [a.seconds for a in actions if isinstance(a, StartTimer) and a.name.endswith("-deadline")]
    assert len(started) <= 1
    return started[0] if started else None


def test_ringing_too_long_is_ended_by_the_dialing_deadline() -> None:
    call = Call(plan(ring_timeout_s=20.0))
    assert deadline_s(call.feed(Originated(), T0 + 0.2)) == pytest.approx(
        20.0 + STAGE_DEADLINE_MARGIN_S - 0.2
    )
    assert deadline_s(call.feed(Ringing(), T0 + 1.0)) is None  # still the same deadline, from the origination
    actions = call.fire("deadline", at=T0 + 35.0)
    assert non_timer(actions) == [HangupCallee(EndReason.stage_deadline), Finished(call.result)]
    assert (call.result.outcome, call.result.end_reason) == (Outcome.failed, EndReason.stage_deadline)
    assert_finished_once(call)


@pytest.mark.parametrize(
    ("greeting_s", "expected_s"), [(8.0, 8.0 + STAGE_DEADLINE_MARGIN_S), (None, UNKNOWN_MEDIA_S + 15.0)]
)
def test_a_greeting_whose_end_is_lost_is_ended_by_its_deadline(
    greeting_s: float | None, expected_s: float
) -> None:
    call = Call(plan(greeting=GREETING, greeting_s=greeting_s))
    call.feed(Originated(), T0)
    actions = call.feed(Answered(), T0 + 4.0)
    assert deadline_s(actions) == pytest.approx(expected_s)
    call.fire("deadline", at=T0 + 4.0 + expected_s)
    assert (call.result.outcome, call.result.end_reason, call.result.cause) == (
        Outcome.not_confirmed,
        EndReason.stage_deadline,
        16,
    )


def test_a_message_whose_end_is_lost_is_ended_by_its_deadline() -> None:
    call = Call(plan(message_s=30.0))
    call.feed(Originated(), T0)
    assert deadline_s(call.feed(Answered(), T0 + 4.0)) == pytest.approx(30.0 + STAGE_DEADLINE_MARGIN_S)
    actions = call.fire("deadline", at=T0 + 49.0)
    assert non_timer(actions) == [HangupCallee(EndReason.stage_deadline), Finished(call.result)]
    assert call.result.outcome is Outcome.partial


def test_each_playing_stage_gets_its_own_deadline_and_the_others_none() -> None:
    call = Call(
        plan(greeting=GREETING, transfer_number=CENTRE, greeting_s=8.0, message_s=30.0, apology_s=5.0)
    )
    call.feed(Originated(), T0)
    call.feed(Answered(), T0 + 4.0)
    greeting_deadline = call.timer("deadline")
    actions = call.end_playback("greeting", at=T0 + 12.0)
    assert CancelTimer(greeting_deadline) in actions and deadline_s(actions) is None  # star_wait: its timer
    assert deadline_s(call.feed(Dtmf("*"), T0 + 13.0)) == pytest.approx(45.0)
    actions = call.feed(Dtmf("9"), T0 + 15.0)
    assert deadline_s(actions) is None  # the transfer's ring timer bounds the wait
    assert not any(name.endswith("-deadline") for name in call.timers)
    assert deadline_s(call.feed(TransferEnded(cause=17, dialstatus="BUSY"), T0 + 16.0)) == pytest.approx(20.0)
    assert deadline_s(call.end_playback("apology", at=T0 + 21.0)) == pytest.approx(45.0)  # the replay
    call.fire("deadline", at=T0 + 66.0)
    assert (call.result.outcome, call.result.end_reason) == (Outcome.partial, EndReason.stage_deadline)


def test_no_call_wide_cap_unless_the_plan_asks_for_one() -> None:
    call = answered_call(greeting=GREETING, star_wait_s=600.0)
    call.end_playback("greeting")
    assert sorted(name.split("-", 1)[1] for name in call.timers) == ["star_wait"]


# --- the snapshot's text form -------------------------------------------------------------------------


def test_the_text_form_is_short_and_reads_back() -> None:
    call = answered_call(greeting=GREETING, transfer_number=CENTRE)
    call.feed(Dtmf("*"), T0 + 6.0)
    call.feed(Dtmf("9"), T0 + 9.0)
    call.feed(TransferEnded(cause=17, dialstatus="BUSY"), T0 + 10.0)
    snapshot = call.flow.snapshot()
    text = snapshot.encode()
    assert text.startswith("v1;stage=apology;o=1000.000;")
    assert len(text) < 255
    assert StageSnapshot.decode(text) == snapshot


TIMES = st.floats(min_value=0, max_value=4000).map(lambda t: round(T0 + t, 3))
SNAPSHOTS = st.builds(
    StageSnapshot,
    stage=st.sampled_from(list(Stage)),
    entered_at=TIMES,
    originated_at=st.just(T0),
    ringing_at=st.none() | TIMES,
    answered_at=st.none() | TIMES,
    amd_status=st.none() | st.sampled_from(["MACHINE", "HUMAN"]),
    amd_cause=st.none() | st.just("LONGGREETING-2000-1500"),
    on_machine=st.booleans(),
    beep_heard_at=st.none() | TIMES,
    sound_heard=st.booleans(),
    greeting_plays=st.integers(0, 3),
    message_started_at=st.none() | TIMES,
    playback_id=st.none() | st.sampled_from(["p01-greeting", "p12-message", "p104-ringback"]),
    playback_media=st.none() | st.sampled_from(list(Media)),
    playback_stopped_at=st.none() | TIMES,
    transfer_leg=st.booleans(),
    transfer_outcome=st.none() | st.sampled_from(list(TransferOutcome)),
    transfer_started_at=st.none() | TIMES,
    transfer_answered_at=st.none() | TIMES,
    transfer_ended_at=st.none() | TIMES,
    seq=st.integers(0, 200),
)


@given(SNAPSHOTS)
def test_any_snapshot_reads_back_from_its_text_form(snapshot: StageSnapshot) -> None:
    text = snapshot.encode()
    assert StageSnapshot.decode(text) == snapshot
    assert len(text) < 255


@pytest.mark.parametrize(
    "text", ["", "v0;stage=message;o=1", "v1;stage=nowhere;o=1", "v1;stage=message", "v1;o=x"]
)
def test_what_is_not_a_snapshot_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        StageSnapshot.decode(text)


# --- resuming, stage by stage -------------------------------------------------------------------------


def resumed(call: Call, at: float) -> tuple[Call, list]:  # type: ignore[type-arg]
    """The call carried on by a new machine from its last announced snapshot, `at` a later time."""
    snapshot = call.stages[-1].snapshot
    again = Call(call.plan, now=at)
    flow, actions = CallFlow.resume(call.plan, snapshot, at)
    again.flow = flow
    again.stages.append(call.stages[-1])
    return again, again.track(actions)


def test_star_wait_resumed_waits_for_what_is_left() -> None:
    call = answered_call(greeting=GREETING)  # star_wait_s 6
    call.end_playback("greeting", at=T0 + 9.0)
    again, actions = resumed(call, T0 + 11.0)
    assert actions == [StartTimer(again.timer("star_wait"), pytest.approx(4.0))]
    assert again.flow.state is CallState.star_wait
    actions = again.fire("star_wait", at=T0 + 15.0)
    assert non_timer(actions) == [Play(again.playing("greeting"), GREETING)]
    assert again.playing("greeting") != call.playing("greeting")  # never an id of the first engine
    again.end_playback("greeting", at=T0 + 20.0)
    again.fire("star_wait", at=T0 + 26.0)
    assert (again.result.outcome, again.result.greeting_plays, again.result.answered_at) == (
        Outcome.not_confirmed,
        2,
        T0 + 5.0,
    )
    assert_finished_once(again)


def test_star_wait_resumed_after_its_time_goes_on_at_once() -> None:
    call = answered_call(greeting=GREETING, greeting_max_plays=1)
    call.end_playback("greeting", at=T0 + 9.0)
    again, actions = resumed(call, T0 + 60.0)
    assert actions == [StartTimer(again.timer("star_wait"), 0.001)]
    again.fire("star_wait")
    assert again.result.outcome is Outcome.not_confirmed


def test_message_resumed_watches_its_playback_and_plays_nothing() -> None:
    call = answered_call(greeting=GREETING, message_s=30.0)
    call.feed(Dtmf("*"), T0 + 7.0)
    playing = call.playing("message")
    call.feed(PlaybackStarted(playing), T0 + 7.1)
    again, actions = resumed(call, T0 + 20.0)
    # Only the message's deadline, for what is left of it: the message plays on in Asterisk.
    assert actions == [StartTimer(again.timer("deadline"), pytest.approx(7.0 + 30.0 + 15.0 - 20.0))]
    actions = again.feed(PlaybackFinished(playing, True), T0 + 37.1)
    assert non_timer(actions) == [HangupCallee(EndReason.message_completed), Finished(again.result)]
    result = again.result
    assert (result.outcome, result.message_started_at, result.greeting_plays) == (
        Outcome.listened,
        T0 + 7.1,
        1,
    )
    assert [s.stage for s in again.stages][-2:] == [Stage.message_done, Stage.ended]


def test_message_stopped_by_itself_resumed_keeps_its_grace() -> None:
    call = answered_call()
    call.end_playback("message", completed=False, at=T0 + 8.0)
    again, actions = resumed(call, T0 + 9.0)
    assert StartTimer(again.timer("playback_grace"), pytest.approx(1.0)) in actions
    again.fire("playback_grace")
    assert (again.result.outcome, again.result.end_reason) == (Outcome.failed, EndReason.playback_failed)


def test_greeting_resumed_then_star() -> None:
    call = answered_call(greeting=GREETING)
    greeting = call.playing("greeting")
    again, actions = resumed(call, T0 + 6.0)
    assert non_timer(actions) == []
    actions = again.feed(Dtmf("*"), T0 + 6.5)
    assert no_deadline(actions) == [StopPlayback(greeting), Play(again.playing("message"), MESSAGE)]


def test_bridged_resumed_keeps_the_bridge_until_a_side_hangs_up() -> None:
    call = answered_call(transfer_number=CENTRE, transfer_max_s=1800.0)
    call.feed(Dtmf("9"), T0 + 8.0)
    call.feed(TransferAnswered(), T0 + 20.0)
    again, actions = resumed(call, T0 + 120.0)
    assert actions == [StartTimer(again.timer("transfer_max"), pytest.approx(1700.0))]
    actions = again.feed(TransferEnded(cause=16), T0 + 300.0)
    assert non_timer(actions) == [
        HangupCallee(EndReason.transfer_hangup),
        DestroyBridge(),
        Finished(again.result),
    ]
    result = again.result
    assert (result.outcome, result.transfer_outcome, result.transfer_s) == (
        Outcome.transferred,
        TransferOutcome.answered,
        280.0,
    )


def test_bridged_resumed_past_its_limit_ends_as_transferred() -> None:
    call = answered_call(transfer_number=CENTRE, transfer_max_s=60.0)
    call.feed(Dtmf("9"), T0 + 8.0)
    call.feed(TransferAnswered(), T0 + 20.0)
    again, _ = resumed(call, T0 + 200.0)
    actions = again.fire("transfer_max")
    assert non_timer(actions) == [
        HangupTransfer(),
        HangupCallee(EndReason.transfer_max),
        DestroyBridge(),
        Finished(again.result),
    ]
    assert again.result.outcome is Outcome.transferred


def test_transfer_dialing_resumed_waits_for_the_rest_of_the_ring_time() -> None:
    call = answered_call(transfer_number=CENTRE, transfer_ring_timeout_s=30.0)
    call.feed(Dtmf("9"), T0 + 8.0)
    again, actions = resumed(call, T0 + 18.0)
    assert actions == [StartTimer(again.timer("transfer_ring"), pytest.approx(20.0))]  # no second leg
    actions = again.feed(TransferAnswered(), T0 + 25.0)
    assert non_timer(actions) == [StopPlayback(call.playing("transfer_wait")), BridgeWithTransfer()]
    # ... or the ring time runs out: the leg is hung up, the apology plays.
    again, _ = resumed(call, T0 + 18.0)
    actions = again.fire("transfer_ring", at=T0 + 38.0)
    assert non_timer(actions)[:2] == [HangupTransfer(), StopPlayback(call.playing("transfer_wait"))]
    assert again.flow.result is None and again.flow.state is CallState.apology
    assert (again.flow.snapshot().transfer_outcome, again.flow.snapshot().transfer_leg) == (
        TransferOutcome.no_answer,
        False,
    )


def test_apology_and_replay_resumed() -> None:
    call = answered_call(transfer_number=CENTRE)
    call.feed(Dtmf("9"), T0 + 8.0)
    call.feed(TransferEnded(cause=17, dialstatus="BUSY"), T0 + 10.0)
    again, _ = resumed(call, T0 + 12.0)
    actions = again.feed(PlaybackFinished(call.playing("apology"), True), T0 + 15.0)
    assert no_deadline(actions) == [Play(again.playing("message"), MESSAGE)]
    again2, _ = resumed(again, T0 + 20.0)
    again2.feed(PlaybackFinished(again.playing("message"), True), T0 + 45.0)
    result = again2.result
    assert (result.outcome, result.transfer_outcome) == (Outcome.listened, TransferOutcome.busy)


def test_ringing_resumed_then_answered_or_timed_out() -> None:
    call = Call(plan(greeting=GREETING, ring_timeout_s=30.0))
    call.feed(Originated(), T0 + 0.1)
    call.feed(Ringing(), T0 + 2.0)
    again, actions = resumed(call, T0 + 10.0)
    assert actions == [StartTimer(again.timer("deadline"), pytest.approx(30.0 + 15.0 - 10.0))]
    actions = again.feed(Answered(), T0 + 12.0)
    assert non_timer(actions) == [Play(again.playing("greeting"), GREETING)]
    # Not answered: the ring timeout is told from the first engine's origination.
    again, _ = resumed(call, T0 + 10.0)
    again.feed(Hangup(cause=19, sip_code=480), T0 + 30.0)
    assert (again.result.outcome, again.result.sip_code, again.result.ring_s) == (
        Outcome.no_answer,
        None,
        28.0,
    )


def test_amd_and_beep_wait_resumed() -> None:
    call = Call(plan(drop_mode=DropMode.amd))
    call.feed(Answered(), T0 + 1.0)
    again, actions = resumed(call, T0 + 5.0)
    assert actions == [StartTimer(again.timer("amd_wait"), pytest.approx(6.0))]  # no second AMD
    assert RunAmd() not in actions
    again.feed(AmdResult("MACHINE"), T0 + 6.0)
    # Before any sound: the detectors again, and what is left of the cap and of the no-sound wait.
    beeping, actions = resumed(again, T0 + 7.0)
    assert non_timer(actions) == [SetTalkDetection(1500, 256), ListenForBeep(150)]
    assert {a.name.split("-", 1)[1]: a.seconds for a in actions if isinstance(a, StartTimer)} == {
        "beep_wait": pytest.approx(19.0),
        "no_sound": pytest.approx(1.0),
    }
    # After the beep: the short silence, and what is left of the beep's own limit.
    beeping.feed(TalkingStarted(), T0 + 7.5)
    beeping.feed(ToneDetected(), T0 + 12.0)
    after, actions = resumed(beeping, T0 + 12.5)
    assert non_timer(actions) == [SetTalkDetection(200, 256)]
    assert StartTimer(after.timer("after_beep"), pytest.approx(0.5)) in actions
    actions = after.feed(TalkingFinished(), T0 + 12.8)
    assert non_timer(actions) == [StopDetection(), Play(after.playing("message"), MESSAGE)]
    after.end_playback("message", at=T0 + 40.0)
    assert (after.result.outcome, after.result.amd_status) == (Outcome.voicemail, "MACHINE")


def test_message_done_resumed_only_hangs_up() -> None:
    snapshot = StageSnapshot(
        stage=Stage.message_done,
        entered_at=T0 + 40.0,
        originated_at=T0,
        answered_at=T0 + 5.0,
        message_started_at=T0 + 10.0,
    )
    flow, actions = CallFlow.resume(plan(), snapshot, T0 + 50.0)
    assert [type(a) for a in actions] == [HangupCallee, StageChanged, Finished]
    assert flow.result is not None and flow.result.outcome is Outcome.listened


def test_an_ended_call_cannot_be_resumed() -> None:
    with pytest.raises(ValueError, match="ended"):
        CallFlow.resume(plan(), StageSnapshot(stage=Stage.ended, entered_at=T0, originated_at=T0), T0)


def test_a_resumed_call_with_a_call_limit_keeps_what_is_left_of_it() -> None:
    call = answered_call(greeting=GREETING, max_call_s=100.0)
    call.end_playback("greeting", at=T0 + 9.0)
    again, actions = resumed(call, T0 + 30.0)
    assert StartTimer(again.timer("call_limit"), pytest.approx(70.0)) in actions


# --- resuming anywhere: the same outcome as the machine that never stopped ---------------------------


@dataclass(frozen=True)
class FireTimer:
    kind: str


@dataclass(frozen=True)
class Watched:
    """The event of the playback the machine watches (its id differs between the two runs)."""

    started: bool
    completed: bool = False


Step = Event | FireTimer | Watched


def concrete(flow: CallFlow, step: Step) -> Event | None:
    """The event a machine sees for `step` (None: nothing it would receive, such as a timer it has not)."""
    if isinstance(step, FireTimer):
        names = [n for n in flow.active_timers if n.split("-", 1)[1] == step.kind]
        return TimerFired(names[0]) if names else None
    if isinstance(step, Watched):
        playing = flow.snapshot().playback_id
        if playing is None:
            return None
        return PlaybackStarted(playing) if step.started else PlaybackFinished(playing, step.completed)
    return step


@dataclass
class Run:
    flow: CallFlow
    announced: list[StageSnapshot] = field(default_factory=list)
    finished: int = 0

    def apply(self, actions: list) -> None:  # type: ignore[type-arg]
        for action in actions:
            assert self.finished == 0
            if isinstance(action, StageChanged):
                self.announced.append(action.snapshot)
            elif isinstance(action, Finished):
                self.finished += 1

    def feed(self, step: Step, now: float) -> None:
        event = concrete(self.flow, step)
        if event is not None:
            self.apply(self.flow.handle(event, now))


def timer_kinds(flow: CallFlow) -> list[str]:
    return sorted(n.split("-", 1)[1] for n in flow.active_timers)


def summary(result: CallResult | None) -> tuple[object, ...]:
    assert result is not None
    return (
        result.outcome,
        result.end_reason,
        result.transfer_outcome,
        result.greeting_plays,
        result.answered_at,
        result.message_started_at is not None,
        result.amd_status,
    )


PLANS = st.builds(
    CallPlan,
    message=st.just(MESSAGE),
    greeting=st.sampled_from([None, GREETING]),
    transfer_number=st.sampled_from([None, CENTRE]),
    drop_mode=st.sampled_from(list(DropMode)),
    greeting_max_plays=st.integers(min_value=1, max_value=3),
    max_call_s=st.sampled_from([None, 3600.0]),
    message_s=st.sampled_from([None, 30.0]),
)
GUIDES: dict[CallState, list[Step]] = {
    CallState.dialing: [Answered()],
    CallState.amd: [AmdResult("HUMAN"), AmdResult("MACHINE")],
    CallState.beep_wait: [ToneDetected(), TalkingStarted(), TalkingFinished()],
    CallState.greeting: [Dtmf("*"), Dtmf("9"), Watched(started=False, completed=True)],
    CallState.star_wait: [Dtmf("*"), Dtmf("9"), FireTimer("star_wait")],
    CallState.message: [Dtmf("9"), Watched(started=True), Watched(started=False, completed=True)],
    CallState.transfer_dialing: [TransferAnswered(), TransferEnded(cause=17, dialstatus="BUSY")],
    CallState.bridged: [TransferEnded(cause=16), FireTimer("transfer_max")],
    CallState.apology: [Watched(started=False, completed=True)],
    CallState.replay: [Watched(started=False, completed=True)],
}
# Playback events go to the watched playback of each run: ids differ once a machine is resumed.
EVENTS: list[Step] = [
    *(e for e in ONGOING_EVENTS if not isinstance(e, PlaybackStarted | PlaybackFinished)),
    Watched(started=True),
    Watched(started=False, completed=True),
    Watched(started=False, completed=False),
]
# The cause of a HangupRequested before the answer is kept only in memory, to complete the
# ChannelDestroyed that follows within milliseconds; a snapshot between the two does not carry it.
# Resumed there, an unanswered call is classified by ChannelDestroyed's cause alone.
PRE_ANSWER_HINTS = (HangupRequested,)


@settings(max_examples=5 * settings().max_examples)
@given(plan=PLANS, data=st.data())
def test_resumed_at_any_point_the_call_ends_as_if_never_interrupted(
    plan: CallPlan, data: st.DataObject
) -> None:
    steps: list[tuple[Step, float]] = []
    now = T0
    probe = Run(CallFlow(plan, now))
    for _ in range(data.draw(st.integers(min_value=3, max_value=40), label="steps")):
        if probe.flow.finished:
            break
        roll = data.draw(st.integers(0, 99), label="roll")
        kinds = timer_kinds(probe.flow)
        step: Step
        if roll < 20 and kinds:
            step = FireTimer(data.draw(st.sampled_from(kinds), label="timer"))
        elif roll < 80 and probe.flow.state in GUIDES:
            step = data.draw(st.sampled_from(GUIDES[probe.flow.state]), label="guided")
        elif roll < 99:
            step = data.draw(st.sampled_from(EVENTS), label="event")
        else:
            step = data.draw(st.sampled_from(ENDING_EVENTS), label="ending")
        now += data.draw(st.floats(min_value=0, max_value=30), label="dt")
        steps.append((step, now))
        probe.feed(step, now)
    # The cut falls while the call is still going (before the step that ended it), counted back from
    # there: draws lean to small numbers, so the cut lands in deep stages as often as in early ones.
    alive = len(steps) - 1 if probe.flow.finished else len(steps)
    steps.append((Hangup(cause=16), now + 1))  # whatever happened, the callee's channel goes away
    if alive < 1:
        return
    cut = alive - data.draw(st.integers(min_value=0, max_value=alive - 1), label="back")

    whole = Run(CallFlow(plan, T0))
    for step, at in steps:
        whole.feed(step, at)
    assert whole.finished == 1

    first = Run(CallFlow(plan, T0))
    for step, at in steps[:cut]:
        first.feed(step, at)
    if first.flow.finished or not first.announced:
        note_event("ended before the cut")
        return  # ended before the crash, or no event reached the machine yet: nothing to resume
    last_event = steps[cut - 1][0]
    if isinstance(last_event, PRE_ANSWER_HINTS) and first.flow.state is CallState.dialing:
        return  # see PRE_ANSWER_HINTS
    snapshot = first.announced[-1]
    assert dataclasses.replace(snapshot, seq=0) == dataclasses.replace(first.flow.snapshot(), seq=0)
    at = steps[cut - 1][1]
    flow, actions = CallFlow.resume(plan, snapshot, at)
    second = Run(flow)
    second.apply(actions)
    # The resumed machine waits on the same timers as the one that kept running.
    assert timer_kinds(second.flow) == timer_kinds(first.flow)
    assert second.flow.stage is first.flow.stage
    for step, when in steps[cut:]:
        second.feed(step, when)
    assert second.finished == 1
    note_event(f"resumed at {snapshot.stage}")
    assert summary(second.flow.result) == summary(whole.flow.result)


# --- a call followed here whose channel vanished in a gap: the unobserved rule, in the machine -------------


def test_a_vanished_call_cut_on_our_side_during_the_message_is_given_back_not_charged() -> None:
    call = answered_call(greeting=GREETING, message_s=30.0)
    call.feed(Dtmf("*"), T0 + 7.0)
    call.feed(PlaybackStarted(call.playing("message")), T0 + 7.1)
    actions = call.feed(Abort("asterisk restarted", channel_gone=True, cut="ours"), T0 + 20.0)
    assert not any(isinstance(a, HangupCallee) for a in actions)  # nothing left to hang up
    result = call.result
    assert (result.outcome, result.cut, result.free_retry) == (Outcome.not_confirmed, "ours", True)
    assert not result.outcome.consumes_credit
    assert_finished_once(call)


def test_a_vanished_call_the_callee_ended_takes_the_played_time_up_to_its_cdr_end() -> None:
    heard = answered_call(greeting=GREETING, message_s=30.0)
    heard.feed(Dtmf("*"), T0 + 7.0)
    heard.feed(PlaybackStarted(heard.playing("message")), T0 + 7.1)
    heard.feed(Abort("websocket gap", channel_gone=True, cut="callee", ended_at=T0 + 37.5), T0 + 60.0)
    assert (heard.result.outcome, heard.result.ended_at, heard.result.free_retry) == (
        Outcome.listened,
        T0 + 37.5,
        False,
    )
    early = answered_call(greeting=GREETING, message_s=30.0)
    early.feed(Dtmf("*"), T0 + 7.0)
    early.feed(PlaybackStarted(early.playing("message")), T0 + 7.1)
    early.feed(Abort("websocket gap", channel_gone=True, cut="callee", ended_at=T0 + 12.0), T0 + 60.0)
    assert (early.result.outcome, early.result.cut) == (Outcome.partial, "callee")
