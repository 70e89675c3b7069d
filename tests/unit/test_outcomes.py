"""The outcome table and the mapping of unanswered calls (lab facts from shared/notes/sipp-callees.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.domain.outcomes import (
    OUTCOMES,
    Outcome,
    TransferOutcome,
    allows_failover,
    classify_failed_dial,
    classify_transfer_failure,
    trunk_failure_reason,
)
from engine.domain.sends import recipient_note_fr


def test_table_covers_every_outcome_exactly() -> None:
    assert set(OUTCOMES) == set(Outcome)
    assert len(Outcome) == 11
    for outcome in Outcome:
        assert OUTCOMES[outcome].label_fr
        assert outcome.label_fr == OUTCOMES[outcome].label_fr
        assert outcome.rule is OUTCOMES[outcome]


def test_credit_and_retry_rules_follow_issue_6() -> None:
    charged = {o for o in Outcome if o.consumes_credit}
    assert charged == {Outcome.listened, Outcome.partial, Outcome.transferred, Outcome.voicemail}
    retryable = {o for o in Outcome if o.retryable}
    assert retryable == {
        Outcome.busy,
        Outcome.no_answer,
        Outcome.not_confirmed,
        Outcome.congestion,
        Outcome.failed,
    }
    assert {o for o in Outcome if o.success} == {Outcome.listened, Outcome.transferred, Outcome.voicemail}
    # Nothing is both charged and retried: a person who heard the message is never called again.
    assert not charged & retryable


def test_answered_flag() -> None:
    answered = {o for o in Outcome if OUTCOMES[o].answered}
    assert answered == {
        Outcome.listened,
        Outcome.partial,
        Outcome.not_confirmed,
        Outcome.transferred,
        Outcome.voicemail,
    }


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        OUTCOMES[Outcome.busy] = OUTCOMES[Outcome.listened]  # type: ignore[index]


@pytest.mark.parametrize(
    ("dialstatus", "cause", "sip_code", "rang", "expected"),
    [
        # Lab: 486 -> cause 17, dialstatus BUSY.
        ("BUSY", 17, None, True, Outcome.busy),
        ("BUSY", 17, 486, False, Outcome.busy),
        # Lab: 603 -> cause 21 with dialstatus NOANSWER: the cause wins.
        ("NOANSWER", 21, None, True, Outcome.rejected),
        ("NOANSWER", 21, 603, True, Outcome.rejected),
        # A trunk's 403 also becomes cause 21: with the SIP code it is our failure, not the callee's refusal.
        ("NOANSWER", 21, 403, False, Outcome.failed),
        (None, 21, 401, False, Outcome.failed),
        (None, 21, 407, False, Outcome.failed),
        # Lab: ring until the originate timeout -> 19; some paths give 0.
        ("NOANSWER", 19, None, True, Outcome.no_answer),
        ("NOANSWER", 0, None, True, Outcome.no_answer),
        (None, 0, None, True, Outcome.no_answer),
        ("NOANSWER", None, None, False, Outcome.no_answer),
        # 480 after ringing -> 19.
        ("NOANSWER", 19, 480, True, Outcome.no_answer),
        (None, 18, None, True, Outcome.no_answer),
        (None, 20, None, False, Outcome.no_answer),
        # 408: no answer after ringing, trunk failure before.
        (None, 18, 408, True, Outcome.no_answer),
        (None, 18, 408, False, Outcome.failed),
        # Unallocated / invalid numbers.
        (None, 1, None, False, Outcome.unreachable),
        ("CHANUNAVAIL", 1, 404, False, Outcome.unreachable),
        (None, 3, None, False, Outcome.unreachable),
        (None, 22, 410, False, Outcome.unreachable),
        (None, 28, 484, False, Outcome.unreachable),
        (None, 1, 604, False, Outcome.unreachable),
        # Congestion.
        ("CONGESTION", 34, 503, False, Outcome.congestion),
        (None, 34, None, False, Outcome.congestion),
        (None, 38, None, False, Outcome.congestion),
        (None, 41, None, False, Outcome.congestion),
        (None, 42, None, False, Outcome.congestion),
        (None, 44, None, False, Outcome.congestion),
        ("CONGESTION", None, None, False, Outcome.congestion),
        # 183 with an announcement, then 486: still busy.
        ("BUSY", 17, 486, True, Outcome.busy),
        # Generic or unknown causes defer to the dial status.
        ("BUSY", 16, None, True, Outcome.busy),
        ("BUSY", 127, None, True, Outcome.busy),
        ("busy", None, None, False, Outcome.busy),
        ("CHANUNAVAIL", None, None, False, Outcome.failed),
        ("CANCEL", 0, None, False, Outcome.failed),
        (None, None, None, False, Outcome.failed),
        (None, 0, None, False, Outcome.failed),
        (None, 127, None, False, Outcome.failed),
        (None, 27, 502, False, Outcome.failed),
        (None, 58, 488, False, Outcome.failed),
        # Unknown SIP code: the cause decides.
        (None, 17, 499, True, Outcome.busy),
    ],
)
def test_classify_failed_dial(
    dialstatus: str | None, cause: int | None, sip_code: int | None, rang: bool, expected: Outcome
) -> None:
    assert classify_failed_dial(dialstatus, cause, sip_code, rang=rang) is expected


@pytest.mark.parametrize(
    ("dialstatus", "cause", "sip_code", "expected"),
    [
        ("BUSY", 17, 486, TransferOutcome.busy),
        ("NOANSWER", 19, None, TransferOutcome.no_answer),
        ("NOANSWER", 0, None, TransferOutcome.no_answer),
        ("CONGESTION", 34, 503, TransferOutcome.failed),
        (None, 1, 404, TransferOutcome.failed),
        (None, 21, 603, TransferOutcome.failed),
        (None, None, None, TransferOutcome.failed),
    ],
)
def test_classify_transfer_failure(
    dialstatus: str | None, cause: int | None, sip_code: int | None, expected: TransferOutcome
) -> None:
    assert classify_transfer_failure(dialstatus, cause, sip_code) is expected


def test_transfer_labels() -> None:
    for outcome in TransferOutcome:
        assert outcome.label_fr


@pytest.mark.parametrize(
    ("dialstatus", "cause", "sip_code"),
    [
        ("CONGESTION", 34, 503),
        (None, 34, None),
        (None, 38, 500),
        (None, 41, None),
        (None, 42, None),
        (None, 44, None),
        ("CHANUNAVAIL", None, None),
        ("CHANUNAVAIL", 0, None),
        ("CONGESTION", None, None),
        (None, 18, 408),
        (None, 21, 403),
        (None, 27, 502),
        (None, 102, 504),
    ],
)
def test_failover_before_ringing_on_trunk_refusals(
    dialstatus: str | None, cause: int | None, sip_code: int | None
) -> None:
    assert allows_failover(dialstatus, cause, sip_code, rang=False)
    # Never once the phone may have rung.
    assert not allows_failover(dialstatus, cause, sip_code, rang=True)


@pytest.mark.parametrize(
    ("dialstatus", "cause", "sip_code"),
    [
        ("BUSY", 17, 486),
        ("NOANSWER", 21, 603),
        ("NOANSWER", 19, None),
        ("NOANSWER", 0, None),
        (None, 1, 404),
        (None, 28, 484),
        (None, 0, None),
        (None, None, None),
        ("ANSWER", 16, None),
        # A SIP code that says "busy" wins over a cause in the failover set.
        (None, 34, 486),
    ],
)
def test_no_failover_on_callee_answers(
    dialstatus: str | None, cause: int | None, sip_code: int | None
) -> None:
    assert not allows_failover(dialstatus, cause, sip_code, rang=False)


# --- what a recipient waits for, in the customer's words ------------------------------------------------


NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def note(**kw: object) -> str:
    values: dict[str, object] = {
        "state": "pending",
        "outcome": None,
        "attempts": 0,
        "wait_reason": None,
        "next_attempt_at": None,
        "last_outcome": None,
        "now": NOW,
    }
    return recipient_note_fr(**{**values, **kw})  # type: ignore[arg-type]


def test_recipients_waiting_for_a_trunk_and_retries_are_explained() -> None:
    assert (
        note(wait_reason="no_route") == "En attente : aucune ligne ne peut appeler ce numéro pour l'instant."
    )
    assert "incident chez l'opérateur" in note(wait_reason="trunk_failure", attempts=1)
    retry = note(attempts=1, next_attempt_at=NOW + timedelta(minutes=5), last_outcome="busy")
    assert retry == "Nouvel essai prévu à 10h05 (occupé)."  # Paris time
    ended = note(state="done", outcome="congestion", wait_reason="no_route", attempts=0)
    assert ended.startswith("Non appelé : aucune ligne")
    assert note(state="done", outcome="listened", attempts=1) == ""


def test_recipients_the_law_holds_or_leaves_out_are_explained() -> None:
    later = NOW + timedelta(hours=4)
    assert note(wait_reason="outside_hours", next_attempt_at=later) == (
        "En attente : hors plage horaire, appel possible à partir de 14h00."
    )
    assert note(wait_reason="cap_reached", next_attempt_at=NOW + timedelta(days=3)) == (
        "En attente : plafond de 4 appels atteint, appel possible à partir de 07/12 à 10h00."
    )
    assert note(state="cancelled", wait_reason="stop_listed") == "Non appelé : liste d'opposition."
    assert note(state="cancelled", wait_reason="no_consent") == "Non appelé : sans consentement."
    assert "jour férié" in note(wait_reason="holiday", next_attempt_at=later)
    assert "opposition" in note(wait_reason="refused", next_attempt_at=later)


def _trunk_reason(**given: object) -> str | None:
    call: dict[str, object] = {
        "may_fail_over": False,
        "answered": False,
        "rang": False,
        "sip_code": None,
        "cause": None,
        "trunk_answered_at_all": None,
    }
    return trunk_failure_reason(**(call | given))  # type: ignore[arg-type]


def test_trunk_failure_reasons_tell_the_trunk_from_the_callee() -> None:
    # Refused before ringing, another trunk may take it: the trunk's fault.
    assert _trunk_reason(may_fail_over=True, sip_code=503, cause=34) == "SIP 503"
    assert _trunk_reason(may_fail_over=True, cause=38) == "cause 38"
    # An INVITE nobody answered at all (not even 100 Trying), ended by the ring timeout.
    assert _trunk_reason(trunk_answered_at_all=False, cause=19, sip_code=480) == "no response to the INVITE"
    assert _trunk_reason(trunk_answered_at_all=False) == "no response to the INVITE"
    # The callee's doing, even when the HEP copy of the answer came too late to be seen.
    assert _trunk_reason(trunk_answered_at_all=False, cause=17, sip_code=486) is None
    assert _trunk_reason(trunk_answered_at_all=False, cause=21, sip_code=603) is None
    assert _trunk_reason(trunk_answered_at_all=True, cause=19) is None
    assert _trunk_reason(rang=True, trunk_answered_at_all=False, cause=19) is None
    assert _trunk_reason(answered=True, may_fail_over=True, sip_code=503) is None
