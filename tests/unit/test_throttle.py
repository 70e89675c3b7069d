"""The login throttle's arithmetic: budgets per window, nothing counted when refused, growing windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.domain.throttle import MAX_STRIKES, Budget, Counter, take, take_all

T0 = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
BUDGET = Budget("pair:a@b.fr|192.0.2.1", limit=3, window_s=100)


def spend(counter: Counter | None, budget: Budget, now: datetime, n: int) -> Counter | None:
    for _ in range(n):
        counter, wait = take(counter, budget, now)
        assert wait is None
    return counter


def test_the_budget_then_a_wait_until_the_window_ends() -> None:
    counter = spend(None, BUDGET, T0, 3)
    assert counter == Counter(3, T0, 0)
    after, wait = take(counter, BUDGET, T0 + timedelta(seconds=40))
    assert after == counter and wait == 60  # refused, not counted
    fresh, wait = take(counter, BUDGET, T0 + timedelta(seconds=100))
    assert wait is None and fresh == Counter(1, T0 + timedelta(seconds=100), 1)


def test_each_exhausted_window_doubles_the_next_up_to_a_cap() -> None:
    counter: Counter | None = None
    now = T0
    waits = []
    for _ in range(MAX_STRIKES + 3):
        counter = spend(counter, BUDGET, now, 3 if counter is None else 2)  # the first take opened the window
        assert counter is not None
        _, wait = take(counter, BUDGET, now)
        assert wait is not None
        waits.append(wait)
        now += timedelta(seconds=wait)
        counter, first = take(counter, BUDGET, now)
        assert first is None
    assert waits[:4] == [100, 200, 400, 800]
    assert waits[-1] == waits[-2] == 100 * 2**MAX_STRIKES


def test_a_quiet_window_forgets_the_strikes() -> None:
    counter = spend(None, BUDGET, T0, 3)
    later = T0 + timedelta(seconds=250)  # a whole quiet window after the exhausted one
    fresh, wait = take(counter, BUDGET, later)
    assert wait is None and fresh.strikes == 0
    unexhausted = Counter(2, T0, 3)
    fresh, _ = take(unexhausted, BUDGET, T0 + timedelta(seconds=800))
    assert fresh.strikes == 0


def test_all_or_nothing_across_budgets() -> None:
    pair = Budget("pair", limit=5, window_s=100)
    account = Budget("account", limit=2, window_s=100)
    counters = {"pair": Counter(1, T0), "account": Counter(2, T0)}
    updated, wait = take_all(counters, [pair, account], T0 + timedelta(seconds=10))
    assert updated == {} and wait == 90  # the pair's slot is not taken either
    updated, wait = take_all({}, [pair, account], T0)
    assert wait is None and updated == {"pair": Counter(1, T0), "account": Counter(1, T0)}
