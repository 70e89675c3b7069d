"""An account's daily spending cap (issue 17): the day's spending against the cap; its transfer caps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class DailySpending:
    cap: int | None  # None: no cap
    spent: int
    next_day: datetime  # when the day's spending starts again from 0

    @property
    def remaining(self) -> int | None:
        return None if self.cap is None else max(0, self.cap - self.spent)


@dataclass(frozen=True, slots=True)
class TransferLimits:
    """The account's own transfer caps; None follows the setting (VOCALCAST_TRANSFER_MAX_S,
    VOCALCAST_ACCOUNT_MAX_TRANSFERS)."""

    max_s: float | None
    max_simultaneous: int | None
