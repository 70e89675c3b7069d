"""Token buckets and the adaptive pace: never faster than the limit, slower when Asterisk struggles."""

from __future__ import annotations

import pytest

from engine.domain.pacing import AdaptivePace, TokenBucket


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


def test_adaptive_pace_cuts_on_trouble_and_grows_back() -> None:
    pace = AdaptivePace(20.0, now=0.0, step_cps=2.0, decrease=0.5, slow_s=1.0, hold_s=1.0)
    pace.observe(0.1, latency_s=0.05, overloaded=False)
    assert pace.current(0.1) == 20.0
    pace.observe(0.2, latency_s=2.0, overloaded=False)  # slow: cut
    assert pace.current(0.2) == 10.0
    pace.observe(0.3, latency_s=0.0, overloaded=True)  # within the hold: one signal, not two
    assert pace.current(0.3) == 10.0
    pace.observe(1.2, latency_s=0.0, overloaded=True)  # the hold after the first cut is over
    assert pace.current(1.2) == 5.0
    assert pace.current(4.2) == pytest.approx(5.0 + 2.0 * 2.0)  # grows after the hold, 2 calls/s per second
    assert pace.current(100.0) == 20.0  # never above the ceiling
    for t in range(200, 260):
        pace.observe(float(t), latency_s=0.0, overloaded=True)
    assert pace.current(260.0) >= 1.0  # never below the floor
