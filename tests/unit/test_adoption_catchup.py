"""What adoption infers from the channels it finds (engine/services/dialing/adoption.py): a transfer leg
answered while no engine was connected waits in the dialplan for the next engine's application; only a
leg already in the application is caught up as answered (bridging a leg outside it would fail)."""

from __future__ import annotations

from engine.domain import callevents as ce
from engine.domain.callstage import Stage, StageSnapshot
from engine.services.dialing.adoption import _caught_up, _in_amd

AT = 1_700_000_000.0


def _snapshot(stage: Stage) -> StageSnapshot:
    return StageSnapshot(stage=stage, entered_at=AT, originated_at=AT - 20, answered_at=AT - 15)


def _channel(state: str, context: str = "", app: str = "Stasis") -> dict[str, object]:
    return {"id": "c", "state": state, "dialplan": {"context": context, "exten": "s", "app_name": app}}


CALLEE = _channel("Up", "default")


def test_a_leg_answered_in_the_application_is_caught_up() -> None:
    leg = _channel("Up", "vocalcast-stasis", app="Stasis")
    assert _caught_up(_snapshot(Stage.transfer_dialing), CALLEE, leg) == [ce.TransferAnswered()]


def test_a_leg_answered_while_waiting_for_an_engine_is_left_to_its_stasis_start() -> None:
    for context, app in (
        ("vocalcast-stasis", "Wait"),
        ("vocalcast-stasis", "Stasis!"),
        ("vocalcast-transfer", "Gosub"),
    ):
        leg = _channel("Up", context, app=app)
        assert _caught_up(_snapshot(Stage.transfer_dialing), CALLEE, leg) == [], (context, app)


def test_a_ringing_leg_is_not_answered() -> None:
    leg = _channel("Ringing", "vocalcast-transfer", app="AppDial2")
    assert _caught_up(_snapshot(Stage.transfer_dialing), CALLEE, leg) == []


def test_a_leg_is_caught_up_only_while_the_call_dials_it() -> None:
    leg = _channel("Up", "vocalcast-stasis", app="Stasis")
    assert _caught_up(_snapshot(Stage.bridged), CALLEE, leg) == []


def test_the_answering_machine_detour_includes_its_way_back_into_the_application() -> None:
    assert _in_amd(_channel("Up", "vocalcast-amd", app="AMD"))
    assert _in_amd(_channel("Up", "vocalcast-stasis", app="Wait"))
    assert not _in_amd(_channel("Up", "vocalcast-transfer", app="Gosub"))
    assert not _in_amd(CALLEE)


def _in_stasis_with(app_data: str, context: str = "vocalcast-stasis") -> dict[str, object]:
    return {
        "id": "c",
        "state": "Up",
        "dialplan": {"context": context, "exten": "s", "app_name": "Stasis", "app_data": app_data},
    }


def test_a_verdict_whose_stasis_start_was_lost_is_read_back_from_the_channel() -> None:
    channel = _in_stasis_with("vocalcast-test,amd,MACHINE,LONGGREETING-2400-2400")
    assert _caught_up(_snapshot(Stage.amd), channel) == [ce.AmdResult("MACHINE", "LONGGREETING-2400-2400")]
    # Still detecting, or waiting for an engine to enter the application: its StasisStart is to come.
    for app in ("AMD", "Wait"):
        waiting = _channel("Up", "vocalcast-stasis" if app == "Wait" else "vocalcast-amd", app=app)
        assert _caught_up(_snapshot(Stage.amd), waiting) == []
    # In the application for another reason, or outside the detour: no verdict to read.
    assert _caught_up(_snapshot(Stage.amd), _in_stasis_with("vocalcast-test,transfer,,")) == []
    assert _caught_up(_snapshot(Stage.amd), _in_stasis_with("vocalcast-test,call", context="default")) == []
