"""Calling hours (D223-9): Monday–Friday 10:00–13:00 and 14:00–20:00 in the callee's local time, never on
a holiday of their area — at every edge: the second before and after each window bound, DST change days,
midnight overseas, holidays on weekends."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine.domain.areas import (
    GUADELOUPE,
    GUYANE,
    MARTINIQUE,
    MAYOTTE,
    METROPOLE,
    REUNION,
    SAINT_PIERRE,
    Area,
    area_of,
)
from engine.domain.callhours import Postponed, is_allowed, next_allowed, postponement
from engine.domain.data.holidays_2026_2035 import HOLIDAYS
from engine.domain.holidays import holiday_name

PROPERTY = settings(max_examples=5 * settings().max_examples)
AREAS = [METROPOLE, GUADELOUPE, MARTINIQUE, GUYANE, REUNION, MAYOTTE, SAINT_PIERRE]
ONE_SECOND = timedelta(seconds=1)
TINY = timedelta(microseconds=1)

areas = st.sampled_from(AREAS)
# hypothesis takes naive bounds and draws naive datetimes; each draw is then read as UTC.
FIRST, LAST = datetime(2026, 1, 1), datetime(2035, 12, 24)  # noqa: DTZ001
instants = st.datetimes(min_value=FIRST, max_value=LAST).map(lambda d: d.replace(tzinfo=UTC))


def local(area: Area, day: date, clock: time) -> datetime:
    (zone,) = area.zones
    return datetime.combine(day, clock, tzinfo=zone)


# --- An independent reading of the rule, straight from the vendored table --------------------------

_DAYS_OFF = {(date.fromisoformat(day), calendar) for day, calendar, _ in HOLIDAYS}


def spec_allowed(area: Area, at: datetime) -> bool:
    for zone in area.zones:
        wall = at.astimezone(zone)
        if wall.isoweekday() > 5 or any((wall.date(), c.value) in _DAYS_OFF for c in area.calendars):
            return False
        minutes = wall.hour * 60 + wall.minute
        if not (600 <= minutes < 780 or 840 <= minutes < 1200):
            return False
    return True


@PROPERTY
@given(areas, instants)
def test_allowed_is_the_rule_read_from_the_table(area: Area, at: datetime) -> None:
    assert is_allowed(area, at) == spec_allowed(area, at)


# --- Window bounds -----------------------------------------------------------------------------------

working_days = st.dates(min_value=date(2026, 1, 1), max_value=date(2035, 12, 24))


@PROPERTY
@given(areas, working_days)
def test_the_second_on_each_side_of_every_bound(area: Area, day: date) -> None:
    assume(day.weekday() < 5 and spec_allowed(area, local(area, day, time(11))))
    inside = [time(10), time(12, 59, 59), time(14), time(19, 59, 59)]
    outside = [time(9, 59, 59), time(13), time(13, 59, 59), time(20), time(0), time(23, 59, 59)]
    for clock in inside:
        assert is_allowed(area, local(area, day, clock)), clock
    for clock in outside:
        assert not is_allowed(area, local(area, day, clock)), clock
    # Microseconds count too: the windows are half-open.
    assert is_allowed(area, local(area, day, time(12, 59, 59, 999999)))
    assert is_allowed(area, local(area, day, time(19, 59, 59, 999999)))
    # The next allowed instant from the lunch break is 14:00 sharp, from 20:00 a later day's 10:00.
    assert next_allowed(area, local(area, day, time(13))) == local(area, day, time(14))
    after_close = next_allowed(area, local(area, day, time(20)))
    assert after_close is not None
    (zone,) = area.zones
    assert after_close.astimezone(zone).time() == time(10)
    assert after_close.astimezone(zone).date() > day


# --- next_allowed: the first allowed instant, nothing allowed before it -------------------------------


@PROPERTY
@given(areas, instants, st.floats(min_value=0, max_value=1, exclude_max=True))
def test_next_allowed_is_the_first_allowed_instant(area: Area, at: datetime, fraction: float) -> None:
    found = next_allowed(area, at)
    assert found is not None
    assert found >= at
    assert is_allowed(area, found)
    if is_allowed(area, at):
        assert found == at
    else:
        assert not is_allowed(area, found - TINY)
        between = min(at + (found - at) * fraction, found - TINY)  # timedelta * float rounds
        assert not is_allowed(area, between)
        # A call always waits for a window to open: 10:00 or 14:00 sharp, local time.
        (zone,) = area.zones
        assert found.astimezone(zone).time() in {time(10), time(14)}


@PROPERTY
@given(areas, instants)
def test_postponement_says_why_and_until_when(area: Area, at: datetime) -> None:
    postponed = postponement(area, at)
    assert (postponed is None) == is_allowed(area, at)
    if postponed is not None:
        assert postponed.until == next_allowed(area, at)
        (zone,) = area.zones
        day = at.astimezone(zone).date()
        weekday_holiday = day.weekday() < 5 and not spec_allowed(area, local(area, day, time(11)))
        assert postponed.reason is (Postponed.holiday if weekday_holiday else Postponed.outside_hours)
        assert postponed.label_fr == ("jour férié" if weekday_holiday else "hors plage horaire")
        assert (postponed.holiday_fr is not None) == weekday_holiday


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        is_allowed(METROPOLE, datetime(2026, 3, 2, 11))  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="aware"):
        next_allowed(METROPOLE, datetime(2026, 3, 2, 11))  # noqa: DTZ001


# --- Daylight saving time in Paris -------------------------------------------------------------------

PARIS = ZoneInfo("Europe/Paris")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_the_window_follows_the_spring_change() -> None:
    # Sunday 29 March 2026, 02:00 CET → 03:00 CEST. Friday 10:00 is 09:00 UTC, Monday 10:00 is 08:00 UTC.
    assert is_allowed(METROPOLE, utc(2026, 3, 27, 9))
    assert not is_allowed(METROPOLE, utc(2026, 3, 27, 9) - ONE_SECOND)
    assert is_allowed(METROPOLE, utc(2026, 3, 27, 18, 59, 59))
    assert not is_allowed(METROPOLE, utc(2026, 3, 27, 19))  # 20:00 CET
    assert next_allowed(METROPOLE, utc(2026, 3, 27, 19)) == utc(2026, 3, 30, 8)  # Monday 10:00 CEST
    assert not is_allowed(METROPOLE, utc(2026, 3, 30, 8) - ONE_SECOND)
    assert is_allowed(METROPOLE, utc(2026, 3, 30, 17, 59, 59))
    assert not is_allowed(METROPOLE, utc(2026, 3, 30, 18))  # 20:00 CEST
    # During the change itself (Sunday 02:30 UTC), the next call is Monday 10:00 CEST.
    assert next_allowed(METROPOLE, utc(2026, 3, 29, 1, 30)) == utc(2026, 3, 30, 8)


def test_the_window_follows_the_autumn_change() -> None:
    # Sunday 25 October 2026, 03:00 CEST → 02:00 CET.
    assert is_allowed(METROPOLE, utc(2026, 10, 23, 17, 59, 59))
    assert not is_allowed(METROPOLE, utc(2026, 10, 23, 18))  # Friday 20:00 CEST
    assert next_allowed(METROPOLE, utc(2026, 10, 23, 18)) == utc(2026, 10, 26, 9)  # Monday 10:00 CET
    assert not is_allowed(METROPOLE, utc(2026, 10, 26, 9) - ONE_SECOND)
    assert next_allowed(METROPOLE, utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 26, 9)


dst_weeks = st.sampled_from(
    [date(2026, 3, 26), date(2026, 10, 22), date(2030, 3, 28), date(2031, 10, 23), date(2035, 3, 22)]
)


@PROPERTY
@given(dst_weeks, st.integers(min_value=0, max_value=6 * 24 * 3600))
def test_around_dst_changes_the_wall_clock_decides(start: date, offset_s: int) -> None:
    at = datetime.combine(start, time(0), tzinfo=PARIS).astimezone(UTC) + timedelta(seconds=offset_s)
    found = next_allowed(METROPOLE, at)
    assert found is not None
    wall = found.astimezone(PARIS)
    assert wall.weekday() < 5
    assert found == at or wall.time() in {time(10), time(14)}
    assert is_allowed(METROPOLE, at) == spec_allowed(METROPOLE, at)


# --- Overseas: local time, local midnight, local holidays -------------------------------------------


def test_guyane_calls_after_paris_has_closed() -> None:
    # Friday 5 June 2026, 22:00 UTC: 00:00 Saturday in Paris, 19:00 in Cayenne (UTC−3).
    guyane_mobile = area_of("+594694201234")
    assert guyane_mobile is GUYANE
    assert is_allowed(GUYANE, utc(2026, 6, 5, 22, 59, 59))
    assert not is_allowed(METROPOLE, utc(2026, 6, 5, 22, 59, 59))
    assert not is_allowed(GUYANE, utc(2026, 6, 5, 23))  # 20:00 Cayenne
    assert next_allowed(GUYANE, utc(2026, 6, 5, 23)) == utc(2026, 6, 8, 13)  # Monday 10:00 Cayenne


def test_reunion_local_midnight_comes_before_utc_midnight() -> None:
    # Réunion is UTC+4: Tuesday 2 June 2026 20:00 UTC is Wednesday 00:00 there.
    assert not is_allowed(REUNION, utc(2026, 6, 2, 20))
    assert next_allowed(REUNION, utc(2026, 6, 2, 19, 59, 59)) == utc(2026, 6, 3, 6)  # Wed 10:00
    assert next_allowed(REUNION, utc(2026, 6, 2, 20)) == utc(2026, 6, 3, 6)
    # Mayotte is an hour behind Réunion.
    assert next_allowed(MAYOTTE, utc(2026, 6, 2, 20)) == utc(2026, 6, 3, 7)


def test_an_overseas_holiday_follows_the_local_date() -> None:
    # Monday 20 December 2027, Réunion's abolition day, starts at 19 December 20:00 UTC.
    at = utc(2027, 12, 19, 21)  # Monday 01:00 in Réunion, still Sunday in UTC
    postponed = postponement(REUNION, at)
    assert postponed is not None
    assert postponed.reason is Postponed.holiday
    assert postponed.holiday_fr == "Abolition de l'esclavage"
    assert postponed.until == utc(2027, 12, 21, 6)  # Tuesday 10:00 Réunion
    # The same instant is an ordinary Monday morning nowhere else: Paris waits for Monday 10:00 only.
    assert next_allowed(METROPOLE, at) == utc(2027, 12, 20, 9)


@pytest.mark.parametrize(
    ("area", "day", "name"),
    [
        (GUADELOUPE, date(2026, 5, 27), "Abolition de l'esclavage"),
        (GUADELOUPE, date(2026, 5, 28), "Abolition de l'esclavage"),  # Saint-Martin, same numbers
        (GUADELOUPE, date(2026, 10, 9), "Abolition de l'esclavage"),  # Saint-Barthélemy
        (MARTINIQUE, date(2026, 5, 22), "Abolition de l'esclavage"),
        (MARTINIQUE, date(2026, 7, 21), "Fête de Victor Schœlcher"),
        (GUYANE, date(2026, 6, 10), "Abolition de l'esclavage"),
        (MAYOTTE, date(2026, 4, 27), "Abolition de l'esclavage"),
        (METROPOLE, date(2026, 4, 3), "Vendredi saint"),
        (METROPOLE, date(2026, 5, 14), "Ascension"),
    ],
)
def test_each_area_stops_on_its_own_weekday_holidays(area: Area, day: date, name: str) -> None:
    assert day.weekday() < 5
    at = local(area, day, time(11))
    postponed = postponement(area, at)
    assert postponed is not None
    assert (postponed.reason, postponed.holiday_fr) == (Postponed.holiday, name)
    # Areas whose calendars do not hold that day call as usual.
    for other in AREAS:
        if holiday_name(day, other.calendars) is None:
            assert is_allowed(other, local(other, day, time(11))), other.key
        else:
            assert not is_allowed(other, local(other, day, time(11))), other.key


def test_a_holiday_on_a_weekend_is_just_a_weekend() -> None:
    # 15 August 2026 is a Saturday, 1 November a Sunday, 26 December (Alsace-Moselle) a Saturday.
    for day in (date(2026, 8, 15), date(2026, 11, 1), date(2026, 12, 26)):
        postponed = postponement(METROPOLE, local(METROPOLE, day, time(11)))
        assert postponed is not None
        assert postponed.reason is Postponed.outside_hours
        assert postponed.holiday_fr is None
    # Christmas 2026 is a Friday and Saint-Étienne a Saturday: Thursday evening waits for Monday.
    assert next_allowed(METROPOLE, local(METROPOLE, date(2026, 12, 24), time(20))) == local(
        METROPOLE, date(2026, 12, 28), time(10)
    )
    # A Monday holiday after a weekend: Friday evening before Whit Monday 2026 waits for Tuesday.
    assert next_allowed(METROPOLE, local(METROPOLE, date(2026, 5, 22), time(20))) == local(
        METROPOLE, date(2026, 5, 26), time(10)
    )


# --- Foreign numbers ---------------------------------------------------------------------------------


def test_a_foreign_number_is_read_in_its_own_zone_with_french_holidays() -> None:
    new_york = area_of("+12125551234")
    assert [z.key for z in new_york.zones] == ["America/New_York"]
    # Monday 2 March 2026 10:00 in New York is 15:00 UTC.
    assert next_allowed(new_york, utc(2026, 3, 2, 12)) == utc(2026, 3, 2, 15)
    assert not is_allowed(new_york, utc(2026, 5, 14, 16))  # Ascension


def test_a_number_spread_over_zones_must_fit_all_of_them() -> None:
    australia = area_of("+61412345678")
    assert len(australia.zones) > 1
    found = next_allowed(australia, utc(2026, 3, 2))
    assert found is not None
    for zone in australia.zones:
        wall = found.astimezone(zone)
        assert time(10) <= wall.time() < time(20), zone.key
    # Zones ten hours apart or more share no window: never allowed, and said so.
    russia = area_of("+79161234567")
    assert next_allowed(russia, utc(2026, 3, 2)) is None
    postponed = postponement(russia, utc(2026, 3, 2, 9))
    assert postponed is not None
    assert postponed.until is None
