"""Pacing: token buckets for new calls per second, and which trunk takes the next call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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

    def wait_s(self, now: float) -> float:
        """How long until one token is available."""
        self._refill(now)
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate


@dataclass(frozen=True, slots=True)
class TrunkLoad:
    name: str
    priority: int
    active: int
    max_channels: int
    tokens: int  # new calls it may place right now
    failing: bool  # refused calls before ringing recently: used only when nothing else can


def pick_trunk(trunks: Sequence[TrunkLoad], exclude: frozenset[str] = frozenset()) -> str | None:
    """The trunk for the next call: lowest priority number with a free channel and a token; a trunk
    that has been failing is used only when no healthy one can take the call."""
    candidates = [t for t in trunks if t.name not in exclude and t.active < t.max_channels and t.tokens > 0]
    for failing in (False, True):
        usable = sorted((t for t in candidates if t.failing is failing), key=lambda t: (t.priority, t.active))
        if usable:
            return usable[0].name
    return None
