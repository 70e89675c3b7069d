"""The outcome of a call that ended while no engine followed it, from its last announced stage (issue 16):
the rule, then the property that a crash never turns a non-charged outcome into a charged one."""

from __future__ import annotations

import pytest
from hypothesis import event as note_event
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.domain.callevents import Abort, Hangup, HangupRequested
from engine.domain.callflow import CallFlow
from engine.domain.callplan import CallPlan, DropMode
from engine.domain.callstage import Stage, StageSnapshot
from engine.domain.outcomes import Outcome
from engine.domain.unobserved import Cut, UnobservedOutcome, heard_to_the_end, unobserved_outcome
from tests.unit.test_callflow import CENTRE, ENDING_EVENTS, GREETING, MESSAGE, T0
from tests.unit.test_callresume import EVENTS, GUIDES, SNAPSHOTS, FireTimer, Run, Step, timer_kinds

MESSAGE_S = 30.0


def snap(stage: Stage, **fields: object) -> StageSnapshot:
    values: dict[str, object] = {"entered_at": T0 + 10.0, "originated_at": T0}
    if stage not in (Stage.dialing, Stage.ringing):
        values["answered_at"] = T0 + 5.0
    return StageSnapshot(stage=stage, **values | fields)  # type: ignore[arg-type]


def rule(
    snapshot: StageSnapshot | None, cut: Cut, ended_at: float | None = None, **kw: object
) -> UnobservedOutcome:
    return unobserved_outcome(snapshot, cut=cut, ended_at=ended_at, message_s=MESSAGE_S, **kw)  # type: ignore[arg-type]


def test_never_answered_takes_the_cdr_verdict_or_failed() -> None:
    ringing = snap(Stage.ringing, ringing_at=T0 + 1.0)
    assert rule(ringing, Cut.callee, dial_outcome=Outcome.busy) == UnobservedOutcome(
        Outcome.busy, free_retry=False, known=True
    )
    assert rule(ringing, Cut.ours) == UnobservedOutcome(Outcome.failed, free_retry=True, known=True)
    unknown = rule(None, Cut.unknown)
    assert unknown == UnobservedOutcome(Outcome.failed, free_retry=False, known=False)
    assert unknown.retried_under_policy and not unknown.charged


def test_answered_during_the_gap_is_not_confirmed() -> None:
    # The CDR says answered, the last stage was ringing: nobody was there to play anything.
    got = rule(snap(Stage.ringing), Cut.callee, answered=True)
    assert got == UnobservedOutcome(Outcome.not_confirmed, free_retry=False, known=True)


@pytest.mark.parametrize("stage", [Stage.amd, Stage.beep_wait, Stage.greeting, Stage.star_wait])
def test_answered_without_the_message_is_not_confirmed(stage: Stage) -> None:
    assert rule(snap(stage, greeting_plays=1), Cut.callee).outcome is Outcome.not_confirmed
    ours = rule(snap(stage), Cut.ours)
    assert (ours.outcome, ours.free_retry, ours.charged) == (Outcome.not_confirmed, True, False)
    unknown = rule(snap(stage), Cut.unknown)
    assert (unknown.outcome, unknown.known, unknown.free_retry) == (Outcome.not_confirmed, False, False)


def test_message_started_is_partial_or_listened_by_the_played_time() -> None:
    message = snap(Stage.message, message_started_at=T0 + 10.2, playback_id="p03-message")
    assert rule(message, Cut.callee, ended_at=T0 + 20.0).outcome is Outcome.partial
    assert rule(message, Cut.callee, ended_at=T0 + 39.5).outcome is Outcome.listened  # within a second
    assert rule(message, Cut.callee).outcome is Outcome.partial  # when it ended is not known
    on_machine = snap(Stage.message, message_started_at=T0 + 10.2, on_machine=True)
    assert rule(on_machine, Cut.callee, ended_at=T0 + 45.0).outcome is Outcome.voicemail
    # Stopped by itself (the media failed, or the hang-up stopped it): played until then, not to the end.
    stopped = snap(Stage.message, message_started_at=T0 + 10.2, playback_stopped_at=T0 + 12.0)
    assert rule(stopped, Cut.callee, ended_at=T0 + 90.0).outcome is Outcome.partial


def test_a_cut_of_ours_is_not_charged_unless_the_message_was_heard_to_its_end() -> None:
    message = snap(Stage.message, message_started_at=T0 + 10.2)
    cut_short = rule(message, Cut.ours, ended_at=T0 + 20.0)
    assert (cut_short.outcome, cut_short.charged, cut_short.free_retry, cut_short.retried_under_policy) == (
        Outcome.not_confirmed,
        False,
        True,
        False,
    )
    heard = rule(message, Cut.ours, ended_at=T0 + 41.0)
    assert (heard.outcome, heard.charged, heard.free_retry) == (Outcome.listened, True, False)
    done = rule(snap(Stage.message_done, message_started_at=T0 + 10.2), Cut.ours)
    assert (done.outcome, done.free_retry) == (Outcome.listened, False)


def test_truth_unknown_is_not_charged_and_retried_only_under_the_send_policy() -> None:
    got = rule(snap(Stage.message, message_started_at=T0 + 10.2), Cut.unknown, ended_at=T0 + 20.0)
    assert (got.outcome, got.charged, got.known, got.free_retry, got.retried_under_policy) == (
        Outcome.not_confirmed,
        False,
        False,
        False,
        True,
    )


def test_the_bridge_entered_is_transferred_whoever_cut() -> None:
    bridged = snap(
        Stage.bridged, message_started_at=T0 + 8.0, transfer_leg=True, transfer_answered_at=T0 + 20.0
    )
    for cut in Cut:
        assert rule(bridged, cut) == UnobservedOutcome(Outcome.transferred, free_retry=False, known=True)


def test_after_nine_the_played_time_no_longer_counts() -> None:
    # `9` stopped the message: the callee did not hear it to its end, however long the call lasted.
    waiting = snap(Stage.transfer_dialing, message_started_at=T0 + 8.0, transfer_started_at=T0 + 10.0)
    assert rule(waiting, Cut.callee, ended_at=T0 + 200.0).outcome is Outcome.partial
    # ... but the replay after a failed transfer counts from its own start.
    replay = snap(Stage.replay, message_started_at=T0 + 8.0, entered_at=T0 + 30.0)
    assert heard_to_the_end(replay, ended_at=T0 + 59.5, message_s=MESSAGE_S)
    assert not heard_to_the_end(replay, ended_at=T0 + 45.0, message_s=MESSAGE_S)


# --- properties ---------------------------------------------------------------------------------------


@given(SNAPSHOTS, st.sampled_from(list(Cut)), st.none() | st.floats(0, 5000).map(lambda t: T0 + t))
def test_only_a_started_message_or_the_bridge_is_ever_charged(
    snapshot: StageSnapshot, cut: Cut, ended_at: float | None
) -> None:
    got = rule(snapshot, cut, ended_at=ended_at)
    if got.charged:
        assert snapshot.answered
        assert (
            snapshot.message_started_at is not None
            or snapshot.stage in (Stage.bridged, Stage.message_done)
            or snapshot.transfer_answered_at is not None
        )
    assert not (got.free_retry and got.charged)
    assert not got.free_retry or cut is Cut.ours
    assert got.known or not (got.charged or got.free_retry)


PLANS = st.builds(
    CallPlan,
    message=st.just(MESSAGE),
    greeting=st.sampled_from([None, GREETING]),
    transfer_number=st.sampled_from([None, CENTRE]),
    drop_mode=st.sampled_from(list(DropMode)),
    message_s=st.just(MESSAGE_S),
)


@settings(max_examples=3 * settings().max_examples)
@given(plan=PLANS, data=st.data())
def test_a_crash_never_turns_a_non_charged_outcome_into_a_charged_one(
    plan: CallPlan, data: st.DataObject
) -> None:
    """The call runs to a random point, then the engine is gone and the call ends `dt` later, cut by the
    callee or by us. Had the engine stayed, the same end at the same time would have been observed
    (a hang-up, or an abort of ours): where that outcome is not charged, the crash's is not either."""
    steps: list[tuple[Step, float]] = []
    now = T0
    probe = Run(CallFlow(plan, now))
    for _ in range(data.draw(st.integers(min_value=1, max_value=30), label="steps")):
        if probe.flow.finished:
            break
        roll = data.draw(st.integers(0, 99), label="roll")
        kinds = timer_kinds(probe.flow)
        step: Step
        if roll < 15 and kinds:
            step = FireTimer(data.draw(st.sampled_from(kinds), label="timer"))
        elif roll < 80 and probe.flow.state in GUIDES:
            step = data.draw(st.sampled_from(GUIDES[probe.flow.state]), label="guided")
        elif roll < 99:
            step = data.draw(st.sampled_from(EVENTS), label="event")
        else:
            step = data.draw(st.sampled_from(ENDING_EVENTS), label="ending")
        now += data.draw(st.floats(min_value=0, max_value=20), label="dt")
        steps.append((step, now))
        probe.feed(step, now)
    # The engine goes away while the call is still going (before the step that ended it, if any).
    alive = len(steps) - 1 if probe.flow.finished else len(steps)
    steps = steps[: alive - data.draw(st.integers(min_value=0, max_value=alive), label="back")]
    run = Run(CallFlow(plan, T0))
    for step, at in steps:
        run.feed(step, at)
    assert not run.flow.finished
    now = steps[-1][1] if steps else T0
    snapshot = run.announced[-1] if run.announced else None
    cut = data.draw(st.sampled_from(list(Cut)), label="cut")
    ended_at = now + data.draw(st.floats(min_value=0, max_value=90), label="lasted")
    crash = rule(snapshot, cut, ended_at=ended_at)

    def observed(end: Cut) -> Outcome:
        again = Run(CallFlow(plan, T0))
        for step, at in steps:
            again.feed(step, at)
        answered = again.flow.snapshot().answered
        event = (
            Abort("engine gone", channel_gone=True)
            if end is Cut.ours
            else HangupRequested(cause=16)
            if answered
            else Hangup(cause=16)
        )
        again.flow.handle(event, ended_at)
        result = again.flow.result
        assert result is not None
        return result.outcome

    ends = [Cut.callee, Cut.ours] if cut is Cut.unknown else [cut]
    note_event(f"{snapshot.stage if snapshot else None}: {crash.outcome}")
    if any(not observed(end).consumes_credit for end in ends):
        assert not crash.charged, (snapshot, cut, crash)
