"""Retry policy of a send: whether, and when, a recipient is called again after an attempt ended.

Retryability comes from the outcome table only (engine.domain.outcomes.OUTCOMES).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.domain.outcomes import OUTCOMES, Outcome
from engine.errors import InvalidInput

# A recipient is called at most 1 + MAX_EXTRA_ATTEMPTS times: beyond that, calling again is harassment.
MAX_EXTRA_ATTEMPTS = 10

BAD_RETRY_POLICY_FR = (
    f"Le nombre de rappels doit être compris entre 0 et {MAX_EXTRA_ATTEMPTS}, "
    "et l'intervalle entre deux appels doit être positif."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How many extra attempts a recipient may get (manual default: none), and how far apart."""

    extra_attempts: int = 0
    interval_s: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.extra_attempts, bool) or not 0 <= self.extra_attempts <= MAX_EXTRA_ATTEMPTS:
            raise InvalidInput(
                "bad_retry_policy",
                f"extra_attempts must be within 0..{MAX_EXTRA_ATTEMPTS}, got {self.extra_attempts!r}",
                message_fr=BAD_RETRY_POLICY_FR,
            )
        if not math.isfinite(self.interval_s) or self.interval_s < 0:
            raise InvalidInput(
                "bad_retry_policy",
                f"interval_s must be a finite number >= 0, got {self.interval_s!r}",
                message_fr=BAD_RETRY_POLICY_FR,
            )

    @property
    def max_attempts(self) -> int:
        return 1 + self.extra_attempts


def next_attempt(outcome: Outcome, attempts_made: int, policy: RetryPolicy, ended_at: float) -> float | None:
    """Time of the recipient's next attempt, or None when `outcome` is its final one.

    `attempts_made` counts the attempts that reached the network so far, this one included (>= 1); an
    attempt moved to another trunk by failover should not be counted (the callee's phone never rang).
    `ended_at` is when this attempt ended, in the same clock as the returned time (epoch seconds).
    """
    if attempts_made < 1:
        raise ValueError(f"attempts_made must be >= 1, got {attempts_made}")
    if not OUTCOMES[outcome].retryable:
        return None
    if attempts_made >= policy.max_attempts:
        return None
    return ended_at + policy.interval_s


def is_final(outcome: Outcome, attempts_made: int, policy: RetryPolicy) -> bool:
    """True when no further attempt will be made for this recipient after this outcome."""
    return next_attempt(outcome, attempts_made, policy, 0.0) is None
