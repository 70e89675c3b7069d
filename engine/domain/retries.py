"""The retry table: whether, and when, a recipient is called again after an attempt ended — the one
place every retry rule lives, in one stated order of precedence.

The rows, first that decides wins:
1. **Legal caps** (commercial sends: calling hours, attempts per number per 30 days, cooldown after a
   refusal): a call the law forbids is never placed, whatever the send asked for.
2. **Our cut**: a call cut on our side (Asterisk, the engine's host or our media failed, not the callee;
   engine/domain/unobserved.py says which) is called again at once without using one of the
   recipient's attempts — unless its message had been heard to its end (then it is not a cut of ours).
3. **Abuse limits**: an answered call whose listener never confirmed (``not_confirmed``: free for the
   customer) is tried again at most once, so a greeting cannot broadcast for free.
4. **The send's policy**: only outcomes the outcome table calls retryable (engine.domain.outcomes), and
   at most ``1 + extra_attempts`` attempts (the manual's default: none).
5. **Timing by cause**: the send's interval, shortened or lengthened per cause by operator settings
   (a busy line is tried again sooner than an unanswered one).

A trunk's failure is not in this table: it never uses one of the recipient's attempts (the dialer moves
the call to another trunk, or back to the queue; see engine/services/dialing).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from engine.domain.outcomes import OUTCOMES, Outcome
from engine.errors import InvalidInput

# A recipient is called at most 1 + MAX_EXTRA_ATTEMPTS times: beyond that, calling again is harassment.
MAX_EXTRA_ATTEMPTS = 10
# An answered call that nobody confirmed (`*`) is tried again at most this many times.
MAX_NOT_CONFIRMED_RETRIES = 1

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


@dataclass(frozen=True, slots=True)
class RetryTiming:
    """Operator settings: each cause's share of the send's interval (1.0: the interval itself)."""

    busy: float = 0.5
    no_answer: float = 1.0
    other: float = 1.0

    def __post_init__(self) -> None:
        if not all(math.isfinite(f) and f > 0 for f in (self.busy, self.no_answer, self.other)):
            raise ValueError("retry timing factors must be positive")

    def factor(self, outcome: Outcome) -> float:
        if outcome is Outcome.busy:
            return self.busy
        if outcome is Outcome.no_answer:
            return self.no_answer
        return self.other


# Legal caps (row 1): given the attempt's outcome and the time it would be retried, the time the law
# allows (later, or the same), or None when the law forbids any further call. Commercial sends only.
LegalCap = Callable[[Outcome, float], float | None]


@dataclass(frozen=True, slots=True)
class RetryDecision:
    at: float | None  # when to call again (same clock as ended_at); None: this outcome is final
    rule: str  # the row that decided: legal_cap, our_cut, abuse_limit, send_policy, cause_timing

    @property
    def final(self) -> bool:
        return self.at is None


def decide(
    outcome: Outcome,
    attempts_made: int,
    policy: RetryPolicy,
    ended_at: float,
    *,
    timing: RetryTiming | None = None,
    not_confirmed_before: int = 0,
    legal: LegalCap | None = None,
    cut_on_our_side: bool = False,
) -> RetryDecision:
    """The retry table, applied to an attempt that just ended.

    `attempts_made` counts the attempts that reached the callee's side so far, this one included (>= 1);
    `not_confirmed_before` the recipient's earlier attempts that ended `not_confirmed`;
    `cut_on_our_side`: the unobserved rule's free retry (the attempt is given back: rule ``our_cut``).
    """
    if attempts_made < 1:
        raise ValueError(f"attempts_made must be >= 1, got {attempts_made}")
    if cut_on_our_side:
        allowed_now = legal(outcome, ended_at) if legal is not None else ended_at
        if allowed_now is None:
            return RetryDecision(None, "legal_cap")
        return RetryDecision(allowed_now, "our_cut")
    send_retries = OUTCOMES[outcome].retryable and attempts_made < policy.max_attempts
    wanted = (
        ended_at + policy.interval_s * (timing or RetryTiming()).factor(outcome) if send_retries else None
    )
    allowed = legal(outcome, wanted) if legal is not None and wanted is not None else wanted
    if wanted is not None and allowed is None:
        return RetryDecision(None, "legal_cap")
    if (
        wanted is not None
        and outcome is Outcome.not_confirmed
        and not_confirmed_before >= MAX_NOT_CONFIRMED_RETRIES
    ):
        return RetryDecision(None, "abuse_limit")
    if wanted is None or allowed is None:
        return RetryDecision(None, "send_policy")
    if allowed > wanted:
        return RetryDecision(allowed, "legal_cap")
    return RetryDecision(wanted, "cause_timing")


def next_attempt(outcome: Outcome, attempts_made: int, policy: RetryPolicy, ended_at: float) -> float | None:
    """Time of the recipient's next attempt under the send's policy alone, or None when final."""
    return decide(outcome, attempts_made, policy, ended_at, timing=RetryTiming(1.0, 1.0, 1.0)).at


def is_final(outcome: Outcome, attempts_made: int, policy: RetryPolicy) -> bool:
    """True when no further attempt will be made for this recipient after this outcome."""
    return next_attempt(outcome, attempts_made, policy, 0.0) is None
