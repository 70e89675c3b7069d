"""The commercial call's preamble and opt-out key in the call flow (issue 18): who calls is said first,
the opt-out key thanks the callee and ends the call, and the result carries the objection."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from engine.domain.callevents import (
    AmdResult,
    Answered,
    Dtmf,
    EndReason,
    Finished,
    Hangup,
    HangupCallee,
    HangupRequested,
    Originated,
    OriginateTransfer,
    Play,
    PlaybackFinished,
    Ringing,
    RunAmd,
    StopPlayback,
    TalkingFinished,
    TransferAnswered,
)
from engine.domain.callflow import CallFlow, CallState
from engine.domain.callplan import OPT_OUT_MEDIA, CallPlan, DropMode
from engine.domain.callstage import STAGE_DEADLINE_MARGIN_S, Stage, stage_deadline_at
from engine.domain.outcomes import Outcome
from engine.domain.retries import RetryPolicy
from engine.domain.unobserved import Cut
from engine.services.dialing.adoption import Cdr, ended_unobserved
from engine.store.attempts import Claim, OpenAttempt
from tests.unit.test_callflow import (
    CENTRE,
    GREETING,
    MESSAGE,
    T0,
    Call,
    answered_call,
    assert_finished_once,
    no_deadline,
    non_timer,
)

PREAMBLE = "sound:/var/lib/vocalcast/media/preambles/acme"
COMMERCIAL = {"preamble": PREAMBLE, "opt_out_key": "0", "preamble_s": 6.0, "opt_out_s": 3.0}


def plays(call: Call) -> list[str]:
    return [a.media for a in call.log if isinstance(a, Play)]


def test_the_preamble_plays_first_then_the_greeting() -> None:
    call = answered_call(greeting=GREETING, **COMMERCIAL)
    assert plays(call) == [PREAMBLE]
    assert call.flow.state is CallState.preamble
    assert [s.stage for s in call.stages][-1] is Stage.preamble
    actions = call.end_playback("preamble", at=T0 + 11.0)
    assert non_timer(actions) == [Play(call.playing("greeting"), GREETING)]
    call.end_playback("greeting", at=T0 + 15.0)
    call.fire("star_wait", at=T0 + 21.0)  # the greeting again: never the preamble twice
    assert plays(call) == [PREAMBLE, GREETING, GREETING]


def test_without_greeting_the_message_follows_the_preamble() -> None:
    call = answered_call(**COMMERCIAL)
    actions = call.end_playback("preamble", at=T0 + 11.0)
    assert non_timer(actions) == [Play(call.playing("message"), MESSAGE)]
    call.end_playback("message", at=T0 + 41.0)
    assert_finished_once(call)
    assert call.result.outcome is Outcome.listened and not call.result.opted_out


def test_the_opt_out_key_in_the_preamble_thanks_and_hangs_up() -> None:
    call = answered_call(greeting=GREETING, **COMMERCIAL)
    preamble = call.playing("preamble")
    actions = call.feed(Dtmf("0"), T0 + 7.0)
    assert no_deadline(actions) == [StopPlayback(preamble), Play(call.playing("opt_out"), OPT_OUT_MEDIA)]
    assert call.flow.state is CallState.opt_out
    assert call.stages[-1].stage is Stage.opt_out
    assert call.feed(PlaybackFinished(preamble, False)) == []  # the stopped preamble moves nothing
    actions = call.end_playback("opt_out", at=T0 + 10.0)
    assert non_timer(actions)[-2:] == [HangupCallee(EndReason.opted_out), Finished(call.result)]
    assert_finished_once(call)
    result = call.result
    assert result.opted_out and result.end_reason is EndReason.opted_out
    assert result.outcome is Outcome.not_confirmed  # nothing heard of the message: nothing charged
    assert plays(call) == [PREAMBLE, OPT_OUT_MEDIA]


@pytest.mark.parametrize("where", ["greeting", "star_wait", "message"])
def test_the_opt_out_key_is_heard_until_the_message_ends(where: str) -> None:
    call = answered_call(greeting=GREETING, **COMMERCIAL)
    call.end_playback("preamble")
    if where in ("star_wait", "message"):
        call.end_playback("greeting")
    if where == "message":
        call.feed(Dtmf("*"))
    call.feed(Dtmf("0"))
    assert call.flow.state is CallState.opt_out
    assert not any(name.endswith("-star_wait") for name in call.timers)
    call.end_playback("opt_out")
    assert_finished_once(call)
    assert call.result.opted_out
    expected = Outcome.partial if where == "message" else Outcome.not_confirmed
    assert call.result.outcome is expected


def test_a_hang_up_during_the_thanks_keeps_the_objection() -> None:
    call = answered_call(**COMMERCIAL)
    call.feed(Dtmf("0"))
    call.feed(HangupRequested(cause=16))
    assert_finished_once(call)
    assert call.result.opted_out and call.result.end_reason is EndReason.callee_hangup


def test_the_key_means_nothing_without_an_opt_out_key_or_after_the_message() -> None:
    info = answered_call(greeting=GREETING)  # an information send: no preamble, no key
    info.feed(Dtmf("0"))
    assert info.flow.state is CallState.greeting
    call = answered_call(transfer_number=CENTRE, **COMMERCIAL)
    call.end_playback("preamble")
    actions = call.feed(Dtmf("9"))
    assert any(isinstance(a, OriginateTransfer) for a in actions)
    call.feed(Dtmf("0"))  # the call centre is ringing: the callee talks to it, not to us
    assert call.flow.state is CallState.transfer_dialing
    call.feed(TransferAnswered())
    call.feed(Dtmf("0"))
    assert call.flow.state is CallState.bridged
    call.feed(Hangup(cause=16))
    assert not call.result.opted_out


def test_a_mailbox_hears_the_preamble_before_the_message_and_cannot_opt_out() -> None:
    call = Call(CallPlan(message=MESSAGE, drop_mode=DropMode.amd, greeting=GREETING, **COMMERCIAL))  # type: ignore[arg-type]
    call.feed(Originated(), T0 + 0.05)
    call.feed(Ringing(), T0 + 1.0)
    assert RunAmd() in call.feed(Answered(), T0 + 3.0)
    call.feed(AmdResult("MACHINE"), T0 + 5.0)
    call.feed(TalkingFinished(), T0 + 9.0)  # the beep wait ends
    assert plays(call) == [PREAMBLE]
    call.feed(Dtmf("0"))  # a recorded greeting's tones are no objection
    assert call.flow.state is CallState.preamble
    call.end_playback("preamble")
    call.end_playback("message")
    assert plays(call) == [PREAMBLE, MESSAGE]
    assert call.result.outcome is Outcome.voicemail and not call.result.opted_out


def test_a_direct_deposit_hears_the_preamble_first() -> None:
    call = Call(CallPlan(message=MESSAGE, drop_mode=DropMode.direct, **COMMERCIAL))  # type: ignore[arg-type]
    call.feed(Answered(), T0 + 2.0)
    call.end_playback("preamble")
    assert plays(call) == [PREAMBLE, MESSAGE]


def test_a_call_resumed_in_the_thanks_or_the_preamble_carries_on() -> None:
    call = answered_call(greeting=GREETING, **COMMERCIAL)
    at_preamble = call.stages[-1].snapshot
    call.feed(Dtmf("0"))
    at_thanks = call.stages[-1].snapshot
    flow, _ = CallFlow.resume(call.plan, at_thanks, T0 + 20.0)
    assert flow.state is CallState.opt_out
    flow.handle(Hangup(cause=16), T0 + 21.0)
    assert flow.result is not None and flow.result.opted_out
    flow, _ = CallFlow.resume(call.plan, at_preamble, T0 + 20.0)
    assert flow.state is CallState.preamble
    actions = flow.handle(PlaybackFinished(str(at_preamble.playback_id), True), T0 + 21.0)
    assert [a.media for a in actions if isinstance(a, Play)] == [GREETING]


def test_the_preamble_and_the_thanks_have_deadlines() -> None:
    plan = CallPlan(message=MESSAGE, **COMMERCIAL)  # type: ignore[arg-type]
    call = answered_call(**COMMERCIAL)
    snapshot = call.stages[-1].snapshot
    assert stage_deadline_at(plan, snapshot) == snapshot.entered_at + 6.0 + STAGE_DEADLINE_MARGIN_S
    call.feed(Dtmf("0"))
    snapshot = call.stages[-1].snapshot
    assert stage_deadline_at(plan, snapshot) == snapshot.entered_at + 3.0 + STAGE_DEADLINE_MARGIN_S
    call.fire("deadline")
    assert_finished_once(call)
    assert call.result.opted_out and call.result.end_reason is EndReason.stage_deadline


@pytest.mark.parametrize(
    "kwargs",
    [
        {"opt_out_key": "*"},
        {"opt_out_key": "00"},
        {"opt_out_key": "a"},
        {"opt_out_key": "9", "transfer_number": CENTRE},
        {"preamble_s": 0.0},
    ],
)
def test_plans_with_an_unusable_opt_out_key_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CallPlan(message=MESSAGE, preamble=PREAMBLE, **kwargs)  # type: ignore[arg-type]


def test_a_call_ended_unobserved_in_the_thanks_still_carries_the_objection() -> None:
    """A crash after the key, before the result (engine/services/dialing/adoption.py): the snapshot
    kept at the opt_out stage is enough for the number to be stopped."""
    call = answered_call(**COMMERCIAL)
    before = call.stages[-1].snapshot
    call.feed(Dtmf("0"))
    thanks = call.stages[-1].snapshot
    claim = Claim(uuid.uuid4(), uuid.uuid4(), 1, "+33612345678", 1, "t")
    started = datetime.fromtimestamp(T0, UTC)
    cdr = Cdr("ANSWERED", T0 + 5.0, T0 + 12.0)
    for snapshot, opted_out in ((thanks, True), (before, False)):
        open_ = OpenAttempt(claim, "answered", started, RetryPolicy(), 30.0, snapshot.encode())
        result = ended_unobserved(open_, cdr, Cut.callee)
        assert result.opted_out is opted_out
