"""Token buckets and trunk choice: never faster than the limit, failing trunks only as a last resort."""

from __future__ import annotations

import pytest

from engine.domain.pacing import TokenBucket, TrunkLoad, pick_trunk


def test_bucket_never_gives_more_than_rate_times_time_plus_burst() -> None:
    bucket = TokenBucket(20.0, 4.0, now=0.0)
    taken = 0
    t = 0.0
    while t < 10.0:
        while bucket.take(t):
            taken += 1
        t += 0.05
    assert taken <= 4 + 20 * 10
    assert taken >= 20 * 10 - 2  # and keeps the pace while work is waiting


def test_bucket_wait_and_validation() -> None:
    bucket = TokenBucket(2.0, 1.0, now=0.0)
    assert bucket.take(0.0)
    assert not bucket.take(0.0)
    assert bucket.wait_s(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5)
    with pytest.raises(ValueError):
        TokenBucket(0)


def load(name: str, priority: int, active: int = 0, tokens: int = 5, failing: bool = False) -> TrunkLoad:
    return TrunkLoad(name, priority, active, 10, tokens, failing)


def test_pick_trunk_by_priority_room_tokens_and_health() -> None:
    assert pick_trunk([load("b", 20), load("a", 10)]) == "a"
    assert pick_trunk([load("a", 10, active=10), load("b", 20)]) == "b"  # full
    assert pick_trunk([load("a", 10, tokens=0), load("b", 20)]) == "b"  # no token this tick
    assert pick_trunk([load("a", 10, failing=True), load("b", 20)]) == "b"  # refused calls recently
    assert pick_trunk([load("a", 10, failing=True)]) == "a"  # still better than not calling
    assert pick_trunk([load("a", 10)], exclude=frozenset({"a"})) is None
    assert pick_trunk([]) is None
