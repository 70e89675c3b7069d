"""The trunk pool: what the dialer knows of each usable trunk right now — its calls in progress, its pace
(token buckets, and the engine-wide one), and its recent failures — and which trunk takes the next call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass

from engine.domain.pacing import TokenBucket, TrunkLoad, pick_trunk
from engine.domain.trunks import Trunk

BURST_S = 0.1  # how much unused pacing a trunk may save up, in seconds of its rate (at least 2 calls)
FAILING_TRUNK_S = 30.0  # a trunk that refused calls before ringing is avoided this long


def bucket(rate: float, now: float) -> TokenBucket:
    """A token bucket that saves up at most BURST_S worth of calls (at least two, so a cycle that comes a
    little late loses no pace): in any second a trunk limited to N calls per second places at most
    N + max(2, N x BURST_S) (a bucket of N allowed 2N)."""
    return TokenBucket(rate, max(2.0, rate * BURST_S), now=now)


@dataclass
class TrunkState:
    trunk: Trunk
    bucket: TokenBucket
    active: int = 0
    failing_until: float = 0.0
    answered: int = 0
    ended: int = 0

    def load(self, now: float) -> TrunkLoad:
        t = self.trunk
        return TrunkLoad(
            t.name,
            t.priority,
            self.active,
            t.max_channels,
            self.bucket.available(now),
            failing=now < self.failing_until,
        )


class TrunkPool:
    def __init__(self, *, max_channels: int, max_cps: float, now: float) -> None:
        self.trunks: dict[str, TrunkState] = {}
        self.max_channels = max_channels  # engine-wide
        self._global = bucket(max_cps, now) if max_cps > 0 else None

    @property
    def active(self) -> int:
        return sum(t.active for t in self.trunks.values())

    def refresh(self, trunks: Iterable[Trunk], now: float) -> None:
        """The usable trunks as configured now; each keeps its counts and pace across refreshes."""
        current = self.trunks
        fresh: dict[str, TrunkState] = {}
        for trunk in trunks:
            state = current.get(trunk.name)
            if state is None:
                state = TrunkState(trunk, bucket(trunk.max_cps, now))
            else:
                state.trunk = trunk
                if state.bucket.rate != trunk.max_cps:
                    state.bucket = bucket(trunk.max_cps, now)
            fresh[trunk.name] = state
        # A removed trunk keeps its state while calls still run on it (their counts must come back).
        for name, state in current.items():
            if name not in fresh and state.active:
                fresh[name] = state
        self.trunks = fresh

    def free_slots(self, now: float) -> int:
        """New calls the engine may place right now, all trunks together."""
        free = self.max_channels - self.active
        if self._global is not None:
            free = min(free, self._global.available(now))
        return max(0, free)

    def token_wait_s(self, now: float) -> float | None:
        """How long until the next token of a trunk with a free channel (or of the engine), if waiting."""
        waits = [t.bucket.wait_s(now) for t in self.trunks.values() if t.active < t.trunk.max_channels]
        if self._global is not None:
            waits.append(self._global.wait_s(now))
        positive = [w for w in waits if w > 0]
        return min(positive) if positive else None

    def plan(self, slots: int, now: float) -> list[str]:
        """The trunk of each of the next calls, up to ``slots``, each chosen given what the previous ones
        took; fewer when no trunk can take more right now."""
        loads = {name: t.load(now) for name, t in self.trunks.items()}
        chosen: list[str] = []
        for _ in range(slots):
            trunk = pick_trunk(list(loads.values()))
            if trunk is None:
                break
            load = loads[trunk]
            loads[trunk] = dataclasses.replace(load, active=load.active + 1, tokens=load.tokens - 1)
            chosen.append(trunk)
        return chosen

    def take(self, trunk: str, now: float) -> None:
        """A call placed on ``trunk``: a channel and a token of it (and of the engine)."""
        state = self.trunks[trunk]
        state.bucket.take(now)
        if self._global is not None:
            self._global.take(now)
        state.active += 1

    def take_slot(self, trunk: str) -> None:
        """A call already in progress on ``trunk`` (adopted): its channel only."""
        state = self.trunks.get(trunk)
        if state is not None:
            state.active += 1

    def release_slot(self, trunk: str) -> None:
        state = self.trunks.get(trunk)
        if state is not None and state.active > 0:
            state.active -= 1

    def mark_failing(self, trunk: str, now: float) -> None:
        state = self.trunks.get(trunk)
        if state is not None:
            state.failing_until = now + FAILING_TRUNK_S

    def failover_target(self, tried: frozenset[str], now: float) -> str | None:
        """Any other trunk with a free channel (its pace is kept by waiting for its token)."""
        loads = [dataclasses.replace(t.load(now), tokens=1) for t in self.trunks.values()]
        return pick_trunk(loads, exclude=tried)

    async def wait_for_token(self, trunk: str) -> None:
        """Wait until ``trunk`` may place a call, then take its token (a failover keeps the trunk's pace)."""
        state = self.trunks[trunk]
        await asyncio.sleep(state.bucket.wait_s(time.monotonic()))
        state.bucket.take(time.monotonic())

    def stats(self, now: float) -> dict[str, dict[str, object]]:
        return {
            name: {
                "active": t.active,
                "max_channels": t.trunk.max_channels,
                "max_cps": t.trunk.max_cps,
                "failing": now < t.failing_until,
                "answer_rate": round(t.answered / t.ended, 3) if t.ended else None,
            }
            for name, t in self.trunks.items()
        }
