"""A trunk's circuit breaker: fed by trunk-side failures only, it takes a failing trunk out of routing and
lets one probe call test it before it carries calls again.

- Closed: calls flow. Trunk-side results (a 503, a 500, 502, 504, 408, 429, no final response, Asterisk
  refusing the originate, qualify lost) and successes (any call that reached the callee's side, whatever
  the callee did) are kept over a sliding window. When at least ``min_failures`` of the window's calls
  failed and they are at least ``failure_ratio`` of them, the breaker opens.
- Open: no new call for the cooldown, which starts at ``cooldown_first_s`` and grows by ``growth`` at each
  failed probe, up to ``cooldown_max_s``. A ``Retry-After`` the carrier sent (503, 429) opens it for that
  long at least (up to ``retry_after_max_s``), whatever the window says.
- Half-open: the cooldown is over; exactly one probe call may go. Its success closes the breaker (and the
  cooldown starts again from the first); its failure opens it again, for longer.

Callee-side results (486, 603, 404, 480, no answer, a hang-up) are successes here: the trunk did its job.
Time is passed in: this module reads no clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum


class BreakerState(StrEnum):
    closed = "closed"
    open = "open"
    half_open = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    window_s: float = 30.0
    min_failures: int = 3
    failure_ratio: float = 0.5
    cooldown_first_s: float = 10.0
    growth: float = 2.0
    cooldown_max_s: float = 300.0
    retry_after_max_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.min_failures < 1 or not 0 < self.failure_ratio <= 1:
            raise ValueError("breaker window, minimum failures and ratio must be positive (ratio ≤ 1)")
        if not 0 < self.cooldown_first_s <= self.cooldown_max_s or self.growth < 1:
            raise ValueError("breaker cooldowns must satisfy 0 < first ≤ max, and growth ≥ 1")
        if self.retry_after_max_s <= 0:
            raise ValueError("retry_after_max_s must be positive")


@dataclass
class Breaker:
    settings: BreakerSettings = field(default_factory=BreakerSettings)
    _events: deque[tuple[float, bool]] = field(default_factory=deque)  # (time, failed)
    _open_until: float | None = None
    _cooldown_s: float = 0.0
    _probe_in_flight: bool = False
    reason: str = ""  # why it opened last, for /healthz and logs

    def state(self, now: float) -> BreakerState:
        if self._open_until is None:
            return BreakerState.closed
        if now < self._open_until:
            return BreakerState.open
        return BreakerState.half_open

    def open_for_s(self, now: float) -> float:
        """Seconds left before the probe may go (0 when closed or half-open)."""
        return max(0.0, (self._open_until or now) - now)

    def allows(self, now: float) -> bool:
        """May a new call go through this trunk now?"""
        state = self.state(now)
        if state is BreakerState.closed:
            return True
        return state is BreakerState.half_open and not self._probe_in_flight

    def on_call(self, now: float) -> None:
        """A call was placed through the trunk (call only when ``allows`` said yes)."""
        if self.state(now) is BreakerState.half_open:
            self._probe_in_flight = True

    def on_success(self, now: float) -> None:
        """The call reached the callee's side (answered, busy, declined, rang out...)."""
        state = self.state(now)
        if state is BreakerState.half_open:
            self._close()
        elif state is BreakerState.closed:
            self._remember(now, failed=False)
        # Open: a call placed before the opening ended well; the pause (a Retry-After) still holds.

    def on_failure(self, now: float, reason: str, *, retry_after_s: float | None = None) -> None:
        """A trunk-side failure; ``retry_after_s`` when the carrier said how long to stay away."""
        state = self.state(now)
        if retry_after_s is not None and retry_after_s > 0:
            self._open(now, min(retry_after_s, self.settings.retry_after_max_s), reason, keep_longer=True)
            self._remember(now, failed=True)
            return
        if state is BreakerState.half_open:
            self._open(now, self._next_cooldown(), reason)
            return
        if state is BreakerState.open:
            return  # a call placed before it opened: already counted by the opening
        self._remember(now, failed=True)
        failures = sum(1 for _, failed in self._events if failed)
        if (
            failures >= self.settings.min_failures
            and failures / len(self._events) >= self.settings.failure_ratio
        ):
            self._open(now, self._next_cooldown(), reason)

    def force_open(self, now: float, seconds: float, reason: str) -> None:
        """Open for at least ``seconds`` (qualify lost, a carrier's pause shared by another node)."""
        self._open(now, seconds, reason, keep_longer=True)

    # --- internals -------------------------------------------------------------------------------------
    def _remember(self, now: float, *, failed: bool) -> None:
        self._events.append((now, failed))
        horizon = now - self.settings.window_s
        while self._events and self._events[0][0] < horizon:
            self._events.popleft()

    def _next_cooldown(self) -> float:
        s = self.settings
        self._cooldown_s = (
            s.cooldown_first_s
            if self._cooldown_s == 0
            else min(s.cooldown_max_s, self._cooldown_s * s.growth)
        )
        return self._cooldown_s

    def _open(self, now: float, seconds: float, reason: str, *, keep_longer: bool = False) -> None:
        until = now + seconds
        if keep_longer and self._open_until is not None and self._open_until > until:
            until = self._open_until
        self._open_until = until
        self._probe_in_flight = False
        self._events.clear()
        self.reason = reason

    def _close(self) -> None:
        self._open_until = None
        self._probe_in_flight = False
        self._cooldown_s = 0.0
        self._events.clear()
        self.reason = ""
