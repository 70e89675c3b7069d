"""The trunk circuit breaker (engine/domain/breaker.py): opening, cooldown growth, the single probe,
Retry-After pauses, and properties over random event sequences."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.domain.breaker import Breaker, BreakerSettings, BreakerState

SETTINGS = BreakerSettings(
    window_s=30, min_failures=3, failure_ratio=0.5, cooldown_first_s=10, growth=2, cooldown_max_s=40
)


def test_opens_after_enough_failures_and_a_high_enough_ratio() -> None:
    b = Breaker(SETTINGS)
    b.on_failure(0, "503")
    b.on_failure(1, "503")
    assert b.state(1) is BreakerState.closed  # two failures: below the minimum
    b.on_success(2)
    b.on_success(3)
    b.on_success(4)
    b.on_failure(5, "503")  # 3 failures of 6 calls: 50 %
    assert b.state(5) is BreakerState.open
    assert not b.allows(5)
    assert b.reason == "503"


def test_a_low_failure_ratio_keeps_it_closed() -> None:
    b = Breaker(SETTINGS)
    for t in range(10):
        b.on_success(t)
    for t in range(10, 14):
        b.on_failure(t, "503")  # 4 of 14
    assert b.state(14) is BreakerState.closed


def test_failures_out_of_the_window_are_forgotten() -> None:
    b = Breaker(SETTINGS)
    b.on_failure(0, "503")
    b.on_failure(1, "503")
    b.on_failure(40, "503")  # the first two left the 30 s window
    assert b.state(40) is BreakerState.closed


def test_one_probe_after_the_cooldown_and_its_success_closes() -> None:
    b = Breaker(SETTINGS)
    for t in range(3):
        b.on_failure(t, "timeout")
    assert not b.allows(11.9)
    assert b.allows(12)  # opened at 2, 10 s cooldown
    b.on_call(12)
    assert not b.allows(12.5)  # the probe is in flight: nobody else
    b.on_success(13)
    assert b.state(13) is BreakerState.closed
    assert b.allows(13)


def test_failed_probes_make_the_cooldown_grow_to_its_ceiling() -> None:
    b = Breaker(SETTINGS)
    for t in range(3):
        b.on_failure(t, "503")
    now = 2.0
    for expected in (20, 40, 40):
        now += b.open_for_s(now)
        assert b.allows(now)
        b.on_call(now)
        b.on_failure(now, "503")
        assert b.open_for_s(now) == expected


def test_retry_after_opens_for_that_long_at_once() -> None:
    b = Breaker(SETTINGS)
    b.on_failure(0, "503", retry_after_s=20)
    assert not b.allows(19.9)
    assert b.allows(20)


def test_a_late_success_does_not_cut_a_retry_after_pause() -> None:
    b = Breaker(SETTINGS)
    b.on_failure(0, "429", retry_after_s=20)
    b.on_success(5)  # a call placed before the 429 ended well
    assert not b.allows(10)


def test_retry_after_is_capped() -> None:
    b = Breaker(BreakerSettings(retry_after_max_s=60))
    b.on_failure(0, "503", retry_after_s=86400)
    assert b.open_for_s(0) == 60


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        BreakerSettings(cooldown_first_s=100, cooldown_max_s=10)
    with pytest.raises(ValueError):
        BreakerSettings(failure_ratio=0)


events = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=5, allow_nan=False),
        st.sampled_from(["call", "success", "failure", "retry_after"]),
    ),
    max_size=80,
)


@given(events)
def test_never_a_call_while_open_and_at_most_one_probe(sequence: list[tuple[float, str]]) -> None:
    b = Breaker(SETTINGS)
    now = 0.0
    in_flight_probes = 0
    for step, kind in sequence:
        now += step
        state = b.state(now)
        if kind == "call":
            if b.allows(now):
                assert state is not BreakerState.open
                if state is BreakerState.half_open:
                    in_flight_probes += 1
                    assert in_flight_probes == 1
                b.on_call(now)
        elif kind == "success":
            b.on_success(now)
        elif kind == "failure":
            b.on_failure(now, "503")
        else:
            b.on_failure(now, "503", retry_after_s=7)
            assert not b.allows(now)
        if b.state(now) is not BreakerState.half_open:
            in_flight_probes = 0
        if b.state(now) is BreakerState.open:
            assert not b.allows(now)


@given(st.floats(min_value=0.1, max_value=1000, allow_nan=False), events)
def test_a_retry_after_pause_is_never_shortened(pause: float, sequence: list[tuple[float, str]]) -> None:
    b = Breaker(BreakerSettings(retry_after_max_s=2000))
    b.on_failure(0, "503", retry_after_s=pause)
    now = 0.0
    for step, kind in sequence:
        now += step
        if now >= pause:
            break
        if kind == "success":
            b.on_success(now)
        elif kind in {"failure", "retry_after"}:
            b.on_failure(now, "503", retry_after_s=1 if kind == "retry_after" else None)
        assert not b.allows(now)
