"""What the fuzz tests share: one seed, one time budget, and the files a request may leave behind.

- `VOCALCAST_FUZZ_SEED` replays a run: every fuzz test draws from it and prints it in each failure.
- `VOCALCAST_FUZZ_BUDGET_S` (default 120) caps the time all the fuzz tests of one pytest run spend
  generating and sending together: past it each stops drawing new cases (the cases already drawn are the
  same for a given seed, so a failure replays). `make fuzz` sets 0: no cap, every case of its counts.
- The counts (`VOCALCAST_FUZZ_HTTP`, `_MAIL`, `_CSV`, `_AUDIO`) are each test's; `make test` keeps them small,
  `make fuzz` runs the issue's full numbers.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path

from engine.media.paths import recording_spool
from engine.settings import Settings

SEED = int(os.environ.get("VOCALCAST_FUZZ_SEED", str(random.SystemRandom().randrange(2**32))))
BUDGET_S = float(os.environ.get("VOCALCAST_FUZZ_BUDGET_S", "120"))


def count(name: str, default: int) -> int:
    """How many cases a fuzz test draws (``VOCALCAST_FUZZ_<NAME>``)."""
    return int(os.environ.get(f"VOCALCAST_FUZZ_{name}", str(default)))


class _Budget:
    """Seconds spent by every fuzz test of this process; ``left()`` is False once BUDGET_S is spent."""

    def __init__(self) -> None:
        self.spent = 0.0
        self._since: float | None = None

    def __enter__(self) -> _Budget:
        self._since = time.monotonic()
        return self

    def __exit__(self, *_: object) -> None:
        if self._since is not None:
            self.spent += time.monotonic() - self._since
        self._since = None

    def left(self) -> bool:
        running = 0.0 if self._since is None else time.monotonic() - self._since
        return BUDGET_S <= 0 or self.spent + running < BUDGET_S


budget = _Budget()


def files_under(*roots: Path) -> Counter[Path]:
    """Every file below ``roots`` (directories that do not exist count as empty)."""
    found: Counter[Path] = Counter()
    for root in roots:
        if root.exists():
            found.update(path for path in root.rglob("*") if not path.is_dir())
    return found


def leftovers(settings: Settings, tmp: Path) -> Counter[Path]:
    """The files where an upload could leave some: the media dir, the temp dir the engine was given
    (``tmp``, private to the test: /tmp is shared with other runs) and Asterisk's recording spool."""
    return files_under(settings.media_dir, tmp, recording_spool(settings)[1])
