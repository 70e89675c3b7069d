"""A commercial send's estimate counts calling time only (engine/domain/callhours.after_calling_time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from engine.domain.areas import METROPOLE, REUNION
from engine.domain.callhours import after_calling_time, is_allowed

PARIS = ZoneInfo("Europe/Paris")


def test_calling_time_skips_lunch_nights_weekends_and_holidays() -> None:
    friday_19 = datetime(2026, 12, 11, 19, tzinfo=PARIS)
    assert after_calling_time(METROPOLE, friday_19, 1800) == datetime(2026, 12, 11, 19, 30, tzinfo=PARIS)
    # One hour left on Friday, then Monday from 10:00: two hours end at 11:00 on Monday.
    assert after_calling_time(METROPOLE, friday_19, 7200) == datetime(2026, 12, 14, 11, tzinfo=PARIS)
    # 12:30 + 1 h: 30 min before lunch, 30 min after.
    noon = datetime(2026, 12, 14, 12, 30, tzinfo=PARIS)
    assert after_calling_time(METROPOLE, noon, 3600) == datetime(2026, 12, 14, 14, 30, tzinfo=PARIS)
    # Christmas (Friday) and the weekend: from Thursday 19:30, one hour ends on Monday 10:30.
    thursday = datetime(2026, 12, 24, 19, 30, tzinfo=PARIS)
    assert after_calling_time(METROPOLE, thursday, 3600) == datetime(2026, 12, 28, 10, 30, tzinfo=PARIS)
    # Réunion's own time: 30 min left on Monday at 19:30 there, the other 30 on Tuesday from 10:00.
    reunion = ZoneInfo("Indian/Reunion")
    ended = after_calling_time(REUNION, datetime(2026, 12, 14, 19, 30, tzinfo=reunion), 3600)
    assert ended == datetime(2026, 12, 15, 10, 30, tzinfo=reunion)
    # The end of a window is reached, not passed: 19:00 + 1 h is 20:00.
    assert after_calling_time(METROPOLE, friday_19, 3600) == datetime(2026, 12, 11, 20, tzinfo=PARIS)


@given(
    # hypothesis wants naive bounds when it adds the zone itself
    st.datetimes(
        min_value=datetime(2026, 1, 1),  # noqa: DTZ001
        max_value=datetime(2035, 6, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    st.floats(min_value=1, max_value=40 * 3600),
)
def test_calling_time_is_exactly_the_allowed_time_between(start: datetime, seconds: float) -> None:
    end = after_calling_time(METROPOLE, start, seconds)
    assert end is not None and end > start
    # Sampling by minute: the allowed minutes between start and end add up to the seconds asked.
    step = timedelta(minutes=1)
    allowed = 0.0
    at = start
    while at < end:
        span = min(step, end - at)
        if is_allowed(METROPOLE, at) and is_allowed(METROPOLE, at + span - timedelta(microseconds=1)):
            allowed += span.total_seconds()
        elif is_allowed(METROPOLE, at) or is_allowed(METROPOLE, at + span - timedelta(microseconds=1)):
            allowed += span.total_seconds() / 2  # a window edge inside this minute: ±30 s
        at += span
    assert abs(allowed - seconds) <= 60 * 4 + 1, (start, seconds, end, allowed)
