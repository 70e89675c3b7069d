"""The trunk pool's pacing (engine/services/dialing/trunkpool.py): a failover, or a call whose tokens a
failover took meanwhile, waits for its trunk's token AND the engine's — on a clock the test drives."""

import asyncio

import pytest

from engine.domain.trunks import Trunk
from engine.services.dialing import trunkpool
from engine.services.dialing.trunkpool import BURST_S, TrunkPool


class Clock:
    """time.monotonic and asyncio.sleep of the pool: a sleep moves the clock on (each sleeper's wait
    passes in turn, so time only runs ahead of the real one: pacing is never flattered)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await _real_sleep(0)


_real_sleep = asyncio.sleep


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(trunkpool.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(trunkpool.asyncio, "sleep", clock.sleep)
    return clock


def per_second(times: list[float]) -> int:
    """The most calls in any one-second window starting at a call."""
    ordered = sorted(times)
    return max(sum(1 for t in ordered if start <= t < start + 1.0) for start in ordered)


async def test_concurrent_failovers_keep_the_trunks_pace(clock: Clock) -> None:
    pool = TrunkPool(max_channels=1000, max_cps=0, now=clock.now)
    pool.refresh([Trunk(name="live", host="127.0.0.1", max_channels=500, max_cps=40)], clock.now)
    placed: list[float] = []

    async def failover() -> None:
        await pool.wait_for_token("live")
        placed.append(clock.now)

    await asyncio.gather(*(failover() for _ in range(100)))
    assert len(placed) == 100
    assert per_second(placed) <= 40 + max(2, 40 * BURST_S)
    assert max(placed) - min(placed) >= (100 - 40 * BURST_S) / 40 - 0.01  # not all at once


async def test_failovers_keep_the_engines_pace_too(clock: Clock) -> None:
    pool = TrunkPool(max_channels=1000, max_cps=10, now=clock.now)
    pool.refresh(
        [Trunk(name="a", host="127.0.0.1", max_cps=40), Trunk(name="b", host="127.0.0.2", max_cps=40)],
        clock.now,
    )
    placed: list[float] = []

    async def failover(name: str) -> None:
        await pool.wait_for_token(name)
        placed.append(clock.now)

    await asyncio.gather(*(failover("ab"[i % 2]) for i in range(60)))
    assert per_second(placed) <= 10 + 2


async def test_a_claimed_call_whose_token_went_to_a_failover_waits_for_the_next(clock: Clock) -> None:
    pool = TrunkPool(max_channels=1000, max_cps=0, now=clock.now)
    pool.refresh([Trunk(name="live", host="127.0.0.1", max_cps=1)], clock.now)
    assert pool.take("live", clock.now)  # the burst's two tokens: this one ...
    await pool.wait_for_token("live")  # ... and a failover's
    assert not pool.take("live", clock.now)  # claimed in the same cycle: no token left, it must wait
    assert pool.trunks["live"].active == 2  # its channel is held all the same
    before = clock.now
    await pool.wait_for_token("live")
    assert clock.now - before == pytest.approx(1.0)


def test_per_second_counts_a_window_of_one_second() -> None:
    assert per_second([0.0, 0.5, 0.99, 1.0]) == 3
