"""The login throttle's arithmetic: a budget of attempts per key and window, windows that grow after each
one that ended exhausted. Pure: the store locks the counters and applies what this decides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

# A window that ended exhausted makes the next one twice as long, up to 2**MAX_STRIKES windows.
MAX_STRIKES: Final = 5


@dataclass(frozen=True, slots=True)
class Budget:
    """At most ``limit`` attempts per ``window_s`` for ``key``."""

    key: str
    limit: int
    window_s: float


@dataclass(frozen=True, slots=True)
class Counter:
    """A key's attempts in its current window (failures, and logins still being checked)."""

    attempts: int
    window_start: datetime
    strikes: int = 0


def span_s(budget: Budget, strikes: int) -> float:
    return budget.window_s * float(2 ** min(strikes, MAX_STRIKES))


def take(counter: Counter | None, budget: Budget, now: datetime) -> tuple[Counter, float | None]:
    """The counter after one more attempt, and None when the attempt may go ahead; else the counter
    unchanged and the seconds until the key may try again (the attempt is then not counted).

    A window that is over starts a new one; when the old one ended exhausted and was not followed by a
    whole quiet window, the new one is twice as long (a guesser waits longer each round; a customer who
    mistyped once long ago does not).
    """
    if counter is None:
        return Counter(1, now, 0), None
    span = timedelta(seconds=span_s(budget, counter.strikes))
    if now >= counter.window_start + span:
        exhausted = counter.attempts >= budget.limit and now < counter.window_start + 2 * span
        strikes = min(counter.strikes + 1, MAX_STRIKES) if exhausted else 0
        return Counter(1, now, strikes), None
    if counter.attempts >= budget.limit:
        wait = (counter.window_start + span - now).total_seconds()
        return counter, max(1.0, wait)
    return Counter(counter.attempts + 1, counter.window_start, counter.strikes), None


def take_all(
    counters: dict[str, Counter], budgets: list[Budget], now: datetime
) -> tuple[dict[str, Counter], float | None]:
    """One attempt against every budget: all counted, or none when one of them is spent (then the
    longest wait among the spent ones)."""
    updated: dict[str, Counter] = {}
    waits: list[float] = []
    for budget in budgets:
        after, wait = take(counters.get(budget.key), budget, now)
        updated[budget.key] = after
        if wait is not None:
            waits.append(wait)
    if waits:
        return {}, max(waits)
    return updated, None
