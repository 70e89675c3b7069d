"""The login throttle's arithmetic: slots held while checking, failures per window, nothing counted when
refused, waiting (not refusing) while running checks hold the slots, growing windows."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from engine.domain.throttle import BUSY, MAX_STRIKES, Budget, Counter, take, take_all

T0 = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
BUDGET = Budget("pair:a@b.fr|192.0.2.1", limit=3, window_s=100)


def fail(counter: Counter | None, now: datetime, n: int) -> Counter:
    """``n`` attempts that go ahead and fail, one after the other."""
    for _ in range(n):
        counter, verdict = take(counter, BUDGET, now)
        assert verdict is None and counter.pending == 1
        counter = dataclasses.replace(counter, pending=0, failures=counter.failures + 1)
    assert counter is not None
    return counter


def test_the_budget_then_a_wait_until_the_window_ends() -> None:
    counter = fail(None, T0, 3)
    assert counter == Counter(3, T0, 0)
    after, verdict = take(counter, BUDGET, T0 + timedelta(seconds=40))
    assert after == counter and verdict == 60  # refused, not counted
    fresh, verdict = take(counter, BUDGET, T0 + timedelta(seconds=100))
    assert verdict is None and fresh == Counter(0, T0 + timedelta(seconds=100), 1, pending=1)


def test_parallel_attempts_get_the_budget_then_wait_for_the_running_checks() -> None:
    counter: Counter | None = None
    for _ in range(3):
        counter, verdict = take(counter, BUDGET, T0)
        assert verdict is None
    assert counter == Counter(0, T0, 0, pending=3)
    # A fourth attempt while three checks run: not refused, not checked — asked to come back.
    assert take(counter, BUDGET, T0) == (counter, BUSY)
    # One check succeeded and gave its slot back: the fourth goes ahead.
    assert take(dataclasses.replace(counter, pending=2), BUDGET, T0)[1] is None
    # All three failed: the fourth is refused until the window ends.
    assert take(Counter(3, T0), BUDGET, T0 + timedelta(seconds=1))[1] == 99


def test_each_exhausted_window_doubles_the_next_up_to_a_cap() -> None:
    counter = fail(None, T0, 3)
    now = T0
    waits = []
    for _ in range(MAX_STRIKES + 3):
        _, verdict = take(counter, BUDGET, now)
        assert isinstance(verdict, float)
        waits.append(verdict)
        now += timedelta(seconds=verdict)
        counter = fail(counter, now, 3)
    assert waits[:4] == [100, 200, 400, 800]
    assert waits[-1] == waits[-2] == 100 * 2**MAX_STRIKES


def test_a_quiet_window_forgets_the_strikes() -> None:
    counter = fail(None, T0, 3)
    fresh, verdict = take(counter, BUDGET, T0 + timedelta(seconds=250))  # a whole quiet window after
    assert verdict is None and fresh.strikes == 0
    fresh, _ = take(Counter(2, T0, 3), BUDGET, T0 + timedelta(seconds=800))  # not exhausted
    assert fresh.strikes == 0


def test_all_or_nothing_across_budgets() -> None:
    pair = Budget("pair", limit=5, window_s=100)
    account = Budget("account", limit=2, window_s=100)
    counters = {"pair": Counter(1, T0), "account": Counter(2, T0)}
    updated, verdict = take_all(counters, [pair, account], T0 + timedelta(seconds=10))
    assert updated == {} and verdict == 90  # the pair's slot is not taken either
    busy = {"pair": Counter(1, T0), "account": Counter(1, T0, pending=1)}
    assert take_all(busy, [pair, account], T0) == ({}, BUSY)
    updated, verdict = take_all({}, [pair, account], T0)
    assert verdict is None and updated == {
        "pair": Counter(0, T0, pending=1),
        "account": Counter(0, T0, pending=1),
    }
