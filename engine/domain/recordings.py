"""Rules of the recording line (the IVR customers call to record a message): whose failures count
together, how much a code check slows down when everyone together guesses too much, and which calls
need one of the few places for unknown callers while they do."""

from __future__ import annotations

from typing import Final

from engine.domain.numbers import mask_number

ANONYMOUS: Final = "anonymous"  # every hidden number: one key, which is never blocked (can_be_locked_out)
GLOBAL_WINDOW_S: Final = 60.0
# Each multiple of the global limit adds this much wait before a code check, up to the ceiling
# (VOCALCAST_IVR_THROTTLE_MAX_S, 10 s by default: at 10 times the limit a channel checks at most one code
# every 10 s, and a customer still gets in).
THROTTLE_STEP_S: Final = 1.0
# A place for an unknown caller's call is a lease renewed before every code the call types: it covers the
# longest wait between two renewals (the code prompt, every digit of a code at the digit timeout, the
# slowed check) with this margin, and a crashed engine's places come back when it runs out.
PLACE_MARGIN_S: Final = 30.0
_MAX_KEY_LENGTH: Final = 64
_DIGITS: Final = frozenset("0123456789")


def caller_key(caller_id: str | None) -> str:
    """The key failures are counted under: E.164 when the number is recognisably French or
    international (0612345678, +33612345678, 0033612345678 and 33612345678 are one caller)."""
    raw = (caller_id or "").strip()
    digits = "".join(char for char in raw if char in _DIGITS)
    if not digits:
        return ANONYMOUS
    if raw.startswith("+"):
        key = "+" + digits
    elif digits.startswith("00") and len(digits) > 4:
        key = "+" + digits[2:]
    elif len(digits) == 10 and digits[0] == "0":
        key = "+33" + digits[1:]
    elif len(digits) == 11 and digits.startswith("33"):
        key = "+" + digits
    else:
        key = digits
    return key[:_MAX_KEY_LENGTH]


def can_be_locked_out(caller: str) -> bool:
    """Whether a caller's own wrong codes can block it. Hidden numbers are not one caller: blocking the
    key they share would let one stranger lock out every customer who hides its number, so a hidden
    caller is held by the per-call limit and the global budget (slowed like any unknown caller) only."""
    return caller != ANONYMOUS


def throttle_delay_s(recent_failures: int, failures_per_min: int, max_s: float) -> float:
    """Wait before a code check, given every caller's wrong codes in the last minute (at most max_s)."""
    if not budget_spent(recent_failures, failures_per_min):
        return 0.0
    return min(max_s, THROTTLE_STEP_S * recent_failures / failures_per_min)


def budget_spent(recent_failures: int, failures_per_min: int) -> bool:
    """Whether every caller's wrong codes in the last minute reach the line's guess budget (the alert)."""
    return failures_per_min > 0 and recent_failures >= failures_per_min


def needs_a_place(recent_failures: int, failures_per_min: int, *, caller: str, known: bool) -> bool:
    """Whether a call must hold one of the places for unknown callers before its next code check: only
    while the guess budget is spent, and never for a caller number that typed a right code before (a
    hidden number is never known: it may be anyone). A call refused a place hears that the line is busy
    — it was never checked, so it spends nothing and blocks nobody."""
    if not budget_spent(recent_failures, failures_per_min):
        return False
    return caller == ANONYMOUS or not known


def place_lease_s(digit_timeout_s: float, code_max_digits: int, throttle_max_s: float) -> float:
    """How long a place is held without a renewal: the code prompt and a whole code typed at the digit
    timeout, then the slowest check (``throttle_max_s``), with the margin."""
    return PLACE_MARGIN_S + code_max_digits * digit_timeout_s + throttle_max_s


def masked_caller(caller: str) -> str:
    """A caller key as logs may show it."""
    return caller if caller == ANONYMOUS else mask_number(caller)
