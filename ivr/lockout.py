"""Personal-code guessing defence of the recording IVR: per-caller lockout and a global slow-down.

A caller number that types ``ivr_lockout_failures`` wrong codes within ``ivr_lockout_window_s`` is
blocked for ``ivr_lockout_s`` (the failure that reaches the limit blocks, not the one before). When
all callers together fail more than ``ivr_global_failures_per_min`` times a minute, every code check
waits longer, in proportion: guessing slows down for everyone, nobody is locked out.
"""

from __future__ import annotations

from typing import Final

import structlog

from engine.logs import mask_number
from engine.settings import Settings
from engine.store import ivr as store
from engine.store.db import Database

log = structlog.get_logger(__name__)

ANONYMOUS: Final = "anonymous"  # every hidden number shares one key: hiding it cannot dodge the lockout
GLOBAL_WINDOW_S: Final = 60.0
# Each multiple of the global limit adds this much wait before a code check, up to the ceiling: at
# 10 times the limit a channel checks at most one code every 10 s, and a customer still gets in.
THROTTLE_STEP_S: Final = 1.0
THROTTLE_MAX_S: Final = 10.0
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


def throttle_delay_s(recent_failures: int, failures_per_min: int) -> float:
    """Wait before a code check, given every caller's wrong codes in the last minute."""
    if failures_per_min <= 0 or recent_failures < failures_per_min:
        return 0.0
    return min(THROTTLE_MAX_S, THROTTLE_STEP_S * recent_failures / failures_per_min)


class Lockout:
    """The lockout rules applied to the failures stored in PostgreSQL (shared by engine processes)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._window_s = settings.ivr_lockout_window_s
        self._max_failures = settings.ivr_lockout_failures
        self._lockout_s = settings.ivr_lockout_s
        self._global_per_min = settings.ivr_global_failures_per_min

    async def is_blocked(self, caller: str) -> bool:
        return await store.blocked_until(self._db, caller) is not None

    async def record_failure(self, caller: str) -> bool:
        """Count a wrong code; True when this one blocked the caller."""
        count = await store.record_failure(
            self._db,
            caller,
            window_s=self._window_s,
            max_failures=self._max_failures,
            lockout_s=self._lockout_s,
        )
        if count.blocked:
            log.warning(
                "ivr.caller_blocked",
                caller=masked_caller(caller),
                failures=count.failures,
                until=count.blocked_until.isoformat() if count.blocked_until else None,
            )
        return count.blocked

    async def throttle_delay_s(self) -> float:
        recent = await store.recent_failures(self._db, window_s=GLOBAL_WINDOW_S)
        delay = throttle_delay_s(recent, self._global_per_min)
        if delay:
            log.warning("ivr.global_throttle", failures_last_min=recent, delay_s=delay)
        return delay

    async def purge(self) -> int:
        """Forget what no rule looks at any more (failures out of every window, ended blocks)."""
        return await store.purge(self._db, keep_s=max(self._window_s, GLOBAL_WINDOW_S))


def masked_caller(caller: str) -> str:
    """A caller key as logs may show it."""
    return caller if caller == ANONYMOUS else mask_number(caller)
