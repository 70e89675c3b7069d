"""Pacing: token buckets for new calls per second, and the engine's adaptive pace when Asterisk slows
down (which trunk takes a call: engine.domain.routing)."""

from __future__ import annotations


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up. Time is passed in (pure)."""

    def __init__(self, rate: float, burst: float | None = None, *, now: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._tokens = self.burst
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now

    def available(self, now: float) -> int:
        self._refill(now)
        return int(self._tokens)

    def take(self, now: float, count: int = 1) -> bool:
        self._refill(now)
        if self._tokens >= count:
            self._tokens -= count
            return True
        return False

    def set_rate(self, rate: float, now: float) -> None:
        """A new pace from now on (what was saved up so far stays, within the burst)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._refill(now)
        self.rate = rate

    def wait_s(self, now: float) -> float:
        """How long until one token is available."""
        self._refill(now)
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate


class AdaptivePace:
    """The engine's pace when Asterisk itself struggles: additive increase, multiplicative decrease.

    A slow originate (its request took longer than ``slow_s``) or one refused as overloaded cuts the pace
    by ``decrease`` (at most once per ``hold_s``: a burst of slow answers is one signal); every second
    without trouble adds ``step_cps``, up to the ceiling (the engine-wide VOCALCAST_MAX_CPS). Calls are
    slowed down, never failed. Time is passed in.
    """

    def __init__(
        self,
        ceiling_cps: float,
        *,
        now: float,
        floor_cps: float = 1.0,
        step_cps: float = 2.0,
        decrease: float = 0.5,
        slow_s: float = 1.0,
        hold_s: float = 1.0,
    ) -> None:
        if ceiling_cps <= 0 or not 0 < decrease < 1 or floor_cps <= 0:
            raise ValueError("pace: positive ceiling and floor, decrease in (0, 1)")
        self.ceiling = ceiling_cps
        self.floor = min(floor_cps, ceiling_cps)
        self.step = step_cps
        self.decrease = decrease
        self.slow_s = slow_s
        self.hold_s = hold_s
        self.rate = ceiling_cps
        self._at = now
        self._cut_at = float("-inf")
        self.cuts = 0

    def observe(self, now: float, *, latency_s: float, overloaded: bool) -> None:
        """One originate: how long its request took, and whether Asterisk refused it as overloaded."""
        self._grow(now)
        if (overloaded or latency_s > self.slow_s) and now - self._cut_at >= self.hold_s:
            self.rate = max(self.floor, self.rate * self.decrease)
            self._cut_at = now
            self.cuts += 1

    def current(self, now: float) -> float:
        self._grow(now)
        return self.rate

    def _grow(self, now: float) -> None:
        """Add the growth of the time since the last look, the hold after a cut excluded."""
        start = max(self._at, self._cut_at + self.hold_s)
        if now > start:
            self.rate = min(self.ceiling, self.rate + self.step * (now - start))
        self._at = max(self._at, now)
