"""The retry table: only the outcome table decides retryability; attempts and interval bound the rest;
legal caps, then abuse limits, then the send's policy, then timing by cause."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.domain.outcomes import OUTCOMES, Outcome
from engine.domain.retries import MAX_EXTRA_ATTEMPTS, RetryPolicy, RetryTiming, decide, is_final, next_attempt
from engine.errors import InvalidInput


def test_default_is_a_single_attempt() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 1
    for outcome in Outcome:
        assert next_attempt(outcome, 1, policy, 1000.0) is None
        assert is_final(outcome, 1, policy)


def test_retryable_outcomes_come_back_after_the_interval() -> None:
    policy = RetryPolicy(extra_attempts=2, interval_s=600.0)
    for outcome in (
        Outcome.busy,
        Outcome.no_answer,
        Outcome.not_confirmed,
        Outcome.congestion,
        Outcome.failed,
    ):
        assert next_attempt(outcome, 1, policy, 1000.0) == 1600.0
        assert next_attempt(outcome, 2, policy, 2000.0) == 2600.0
        assert next_attempt(outcome, 3, policy, 3000.0) is None
        assert not is_final(outcome, 2, policy)
        assert is_final(outcome, 3, policy)


def test_final_outcomes_are_never_retried() -> None:
    policy = RetryPolicy(extra_attempts=5, interval_s=60.0)
    for outcome in (
        Outcome.listened,
        Outcome.partial,
        Outcome.transferred,
        Outcome.voicemail,
        Outcome.rejected,
        Outcome.unreachable,
    ):
        assert next_attempt(outcome, 1, policy, 0.0) is None


@given(
    outcome=st.sampled_from(list(Outcome)),
    extra=st.integers(min_value=0, max_value=MAX_EXTRA_ATTEMPTS),
    made=st.integers(min_value=1, max_value=20),
    interval=st.floats(min_value=0, max_value=1e6),
    ended=st.floats(min_value=0, max_value=4e9),
)
def test_retry_only_from_the_table(
    outcome: Outcome, extra: int, made: int, interval: float, ended: float
) -> None:
    policy = RetryPolicy(extra_attempts=extra, interval_s=interval)
    got = next_attempt(outcome, made, policy, ended)
    expected_retry = OUTCOMES[outcome].retryable and made < 1 + extra
    assert (got is not None) == expected_retry
    if got is not None:
        assert got >= ended
        assert got == ended + interval


@pytest.mark.parametrize(
    "kwargs",
    [
        {"extra_attempts": -1},
        {"extra_attempts": MAX_EXTRA_ATTEMPTS + 1},
        {"extra_attempts": True},
        {"interval_s": -1.0},
        {"interval_s": math.nan},
        {"interval_s": math.inf},
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput) as info:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert info.value.code == "bad_retry_policy"
    assert info.value.message_fr


def test_attempts_made_starts_at_one() -> None:
    with pytest.raises(ValueError, match="attempts_made"):
        next_attempt(Outcome.busy, 0, RetryPolicy(extra_attempts=1, interval_s=1.0), 0.0)


# --- the retry table (decide): its rows and their precedence -----------------------------------------


def test_timing_by_cause_busy_sooner_than_no_answer() -> None:
    policy = RetryPolicy(extra_attempts=2, interval_s=600.0)
    timing = RetryTiming(busy=0.5, no_answer=1.0)
    assert decide(Outcome.busy, 1, policy, 0.0, timing=timing).at == 300.0
    assert decide(Outcome.no_answer, 1, policy, 0.0, timing=timing).at == 600.0
    assert decide(Outcome.busy, 1, policy, 0.0, timing=timing).rule == "cause_timing"


def test_an_unconfirmed_listener_is_tried_again_at_most_once() -> None:
    policy = RetryPolicy(extra_attempts=5, interval_s=60.0)
    assert decide(Outcome.not_confirmed, 1, policy, 0.0).at == 60.0
    refused = decide(Outcome.not_confirmed, 2, policy, 0.0, not_confirmed_before=1)
    assert (refused.at, refused.rule) == (None, "abuse_limit")


def test_legal_caps_come_first() -> None:
    policy = RetryPolicy(extra_attempts=5, interval_s=60.0)
    forbidden = decide(Outcome.busy, 1, policy, 0.0, legal=lambda outcome, at: None)
    assert (forbidden.at, forbidden.rule) == (None, "legal_cap")
    # The law forbids even what the abuse limit would also forbid: its row decides.
    both = decide(Outcome.not_confirmed, 2, policy, 0.0, not_confirmed_before=1, legal=lambda o, at: None)
    assert both.rule == "legal_cap"
    later = decide(Outcome.busy, 1, policy, 0.0, legal=lambda outcome, at: at + 3600.0)
    assert (later.at, later.rule) == (3630.0, "legal_cap")
    # The law never makes a call the send's policy would not make.
    assert decide(Outcome.listened, 1, policy, 0.0, legal=lambda o, at: at).at is None


@given(
    st.sampled_from(list(Outcome)),
    st.integers(1, 12),
    st.integers(0, MAX_EXTRA_ATTEMPTS),
    st.integers(0, 3),
    st.sampled_from([None, "forbid", "delay"]),
)
def test_the_table_never_adds_a_call_to_what_the_send_allows(
    outcome: Outcome, made: int, extra: int, not_confirmed: int, law: str | None
) -> None:
    policy = RetryPolicy(extra_attempts=extra, interval_s=100.0)
    legal = {None: None, "forbid": (lambda o, at: None), "delay": (lambda o, at: at + 50.0)}[law]
    decision = decide(outcome, made, policy, 0.0, not_confirmed_before=not_confirmed, legal=legal)
    if decision.at is not None:
        assert next_attempt(outcome, made, policy, 0.0) is not None  # the send's policy allows it
        assert decision.at >= 50.0  # never sooner than the cause's share of the interval


def test_a_cut_of_ours_is_called_again_at_once_without_using_an_attempt() -> None:
    """Row 2: whatever the outcome and the send's policy (the manual's default: no retry), a call cut on
    our side comes back at once; only the law's caps come before it."""
    for outcome in (Outcome.not_confirmed, Outcome.failed):
        decision = decide(outcome, 1, RetryPolicy(), 100.0, cut_on_our_side=True)
        assert (decision.at, decision.rule) == (100.0, "our_cut")
    # Even past the abuse limit on unconfirmed listeners: the cut was not theirs.
    again = decide(Outcome.not_confirmed, 2, RetryPolicy(), 0.0, not_confirmed_before=1, cut_on_our_side=True)
    assert again.rule == "our_cut"
    forbidden = decide(Outcome.failed, 1, RetryPolicy(), 0.0, cut_on_our_side=True, legal=lambda o, at: None)
    assert (forbidden.at, forbidden.rule) == (None, "legal_cap")
    postponed = decide(Outcome.failed, 1, RetryPolicy(), 0.0, cut_on_our_side=True, legal=lambda o, at: 50.0)
    assert (postponed.at, postponed.rule) == (50.0, "our_cut")
