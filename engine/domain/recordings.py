"""Rules of the recording line (the IVR customers call to record a message): whose failures count
together, and how much a code check slows down when everyone together guesses too much."""

from __future__ import annotations

from typing import Final

from engine.domain.numbers import mask_number

ANONYMOUS: Final = "anonymous"  # every hidden number: one key, which is never blocked (can_be_locked_out)
GLOBAL_WINDOW_S: Final = 60.0
# Each multiple of the global limit adds this much wait before a code check, up to the ceiling
# (VOCALCAST_IVR_THROTTLE_MAX_S, 10 s by default: at 10 times the limit a channel checks at most one code
# every 10 s, and a customer still gets in).
THROTTLE_STEP_S: Final = 1.0
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
    if failures_per_min <= 0 or recent_failures < failures_per_min:
        return 0.0
    return min(max_s, THROTTLE_STEP_S * recent_failures / failures_per_min)


def masked_caller(caller: str) -> str:
    """A caller key as logs may show it."""
    return caller if caller == ANONYMOUS else mask_number(caller)
