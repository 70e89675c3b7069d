"""The dialer's clock: the wall clock, moved by VOCALCAST_CLOCK_OFFSET_S (tests stand at any instant,
e.g. a Friday at 12:59:30 for the calling hours of commercial sends). Deferred starts, due calls,
retries and the law's gating read it; the rows' own timestamps (created_at...) stay the database's."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass
class Clock:
    offset_s: float = 0.0  # a test may move it while the engine runs

    def time(self) -> float:
        return time.time() + self.offset_s

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)
