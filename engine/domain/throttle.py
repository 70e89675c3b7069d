"""The login throttle's arithmetic: a budget of attempts per key and window, windows that grow after each
one that ended exhausted. Pure: the store locks the counters and applies what this decides.

An attempt holds a slot while its password is checked (``pending``); a failure keeps the slot
(``failures``), a success gives it back. An attempt goes ahead only while failures and pending checks
together leave a slot: parallel guesses never get more checks than the budget. When the slots are
held by checks still running, the attempt is told to wait for them (BUSY) rather than refused — they
may succeed and give their slots back (a customer's script sending in parallel is not a guesser).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

# A window that ended exhausted makes the next one twice as long, up to 2**MAX_STRIKES windows.
MAX_STRIKES: Final = 5
BUSY: Final = "busy"

Verdict = float | Literal["busy"] | None  # None: go ahead; seconds to wait (refused); BUSY: ask again soon


@dataclass(frozen=True, slots=True)
class Budget:
    """At most ``limit`` failed attempts per ``window_s`` for ``key``."""

    key: str
    limit: int
    window_s: float


@dataclass(frozen=True, slots=True)
class Counter:
    """A key's failures in its current window, and the attempts being checked now."""

    failures: int
    window_start: datetime
    strikes: int = 0
    pending: int = 0


def span_s(budget: Budget, strikes: int) -> float:
    return budget.window_s * float(2 ** min(strikes, MAX_STRIKES))


def take(counter: Counter | None, budget: Budget, now: datetime) -> tuple[Counter, Verdict]:
    """The counter after one more attempt and None when it may go ahead (its slot is then pending);
    else the counter unchanged and the seconds until the key may try again, or BUSY while the slots
    are held by checks still running.

    A window that is over starts a new one; when the old one ended exhausted and was not followed by a
    whole quiet window, the new one is twice as long (a guesser waits longer each round; a customer who
    mistyped once long ago does not).
    """
    if counter is None:
        return Counter(0, now, 0, pending=1), None
    span = timedelta(seconds=span_s(budget, counter.strikes))
    if now >= counter.window_start + span:
        exhausted = counter.failures >= budget.limit and now < counter.window_start + 2 * span
        strikes = min(counter.strikes + 1, MAX_STRIKES) if exhausted else 0
        return Counter(0, now, strikes, pending=1), None
    if counter.failures >= budget.limit:
        return counter, max(1.0, (counter.window_start + span - now).total_seconds())
    if counter.failures + counter.pending >= budget.limit:
        return counter, BUSY
    return dataclasses.replace(counter, pending=counter.pending + 1), None


def take_all(
    counters: dict[str, Counter], budgets: list[Budget], now: datetime
) -> tuple[dict[str, Counter], Verdict]:
    """One attempt against every budget: all taken, or none when one of them is spent (the longest wait
    among the spent ones) or busy."""
    updated: dict[str, Counter] = {}
    waits: list[float] = []
    busy = False
    for budget in budgets:
        after, verdict = take(counters.get(budget.key), budget, now)
        updated[budget.key] = after
        if verdict == BUSY:
            busy = True
        elif verdict is not None:
            waits.append(float(verdict))
    if waits:
        return {}, max(waits)
    if busy:
        return {}, BUSY
    return updated, None
