"""Public holidays: the computus, the rules, and the vendored 2026–2035 table agree; each area gets its
own days and only those."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
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
)
from engine.domain.holidays import (
    TABLE_YEARS,
    Calendar,
    computed_holidays,
    easter_sunday,
    holiday_name,
    holidays_in,
    table_holidays,
)

# Written out, not computed: the Easter Sundays of the table's years.
EASTER = {
    2026: date(2026, 4, 5),
    2027: date(2027, 3, 28),
    2028: date(2028, 4, 16),
    2029: date(2029, 4, 1),
    2030: date(2030, 4, 21),
    2031: date(2031, 4, 13),
    2032: date(2032, 3, 28),
    2033: date(2033, 4, 17),
    2034: date(2034, 4, 9),
    2035: date(2035, 3, 25),
}


def test_easter_sundays_of_the_table_years() -> None:
    assert {year: easter_sunday(year) for year in TABLE_YEARS} == EASTER


@pytest.mark.parametrize(
    ("year", "easter"),
    [
        (1818, date(1818, 3, 22)),
        (1943, date(1943, 4, 25)),
        (2000, date(2000, 4, 23)),
        (2019, date(2019, 4, 21)),
    ],
)
def test_easter_at_the_extremes_of_the_computus(year: int, easter: date) -> None:
    # 22 March and 25 April are the earliest and latest possible Easter Sundays.
    assert easter_sunday(year) == easter


@given(st.integers(min_value=1583, max_value=9999))
def test_easter_is_a_sunday_between_22_march_and_25_april(year: int) -> None:
    easter = easter_sunday(year)
    assert easter.weekday() == 6
    assert date(year, 3, 22) <= easter <= date(year, 4, 25)


def test_the_vendored_table_is_what_the_rules_compute() -> None:
    assert table_holidays() == tuple(h for year in TABLE_YEARS for h in computed_holidays(year))


def test_the_table_covers_2026_to_2035_only() -> None:
    years = {h.day.year for h in table_holidays()}
    assert years == set(range(2026, 2036))


def test_national_list_of_2026() -> None:
    assert holidays_in(2026, [Calendar.national]) == {
        date(2026, 1, 1): "Jour de l'an",
        date(2026, 4, 6): "Lundi de Pâques",
        date(2026, 5, 1): "Fête du Travail",
        date(2026, 5, 8): "Victoire 1945",
        date(2026, 5, 14): "Ascension",
        date(2026, 5, 25): "Lundi de Pentecôte",
        date(2026, 7, 14): "Fête nationale",
        date(2026, 8, 15): "Assomption",
        date(2026, 11, 1): "Toussaint",
        date(2026, 11, 11): "Armistice 1918",
        date(2026, 12, 25): "Noël",
    }


@pytest.mark.parametrize("year", TABLE_YEARS)
def test_every_area_has_the_eleven_national_days(year: int) -> None:
    national = holidays_in(year, [Calendar.national])
    assert len(national) == 11
    for area in (METROPOLE, GUADELOUPE, MARTINIQUE, GUYANE, REUNION, MAYOTTE, SAINT_PIERRE):
        assert national.items() <= holidays_in(year, area.calendars).items()


# Each area's own days in 2027 (beyond the national list).
OWN_DAYS_2027 = {
    "metropole": {date(2027, 3, 26): "Vendredi saint", date(2027, 12, 26): "Saint-Étienne"},
    "guadeloupe": {
        date(2027, 3, 4): "Mi-Carême",
        date(2027, 3, 26): "Vendredi saint",
        date(2027, 5, 27): "Abolition de l'esclavage",
        date(2027, 5, 28): "Abolition de l'esclavage",  # Saint-Martin
        date(2027, 7, 21): "Fête de Victor Schœlcher",
        date(2027, 10, 9): "Abolition de l'esclavage",  # Saint-Barthélemy
    },
    "martinique": {
        date(2027, 3, 26): "Vendredi saint",
        date(2027, 5, 22): "Abolition de l'esclavage",
        date(2027, 7, 21): "Fête de Victor Schœlcher",
    },
    "guyane": {date(2027, 6, 10): "Abolition de l'esclavage"},
    "reunion": {date(2027, 12, 20): "Abolition de l'esclavage"},
    "mayotte": {date(2027, 4, 27): "Abolition de l'esclavage"},
    "saint_pierre_et_miquelon": {},
}


@pytest.mark.parametrize(
    "area", [METROPOLE, GUADELOUPE, MARTINIQUE, GUYANE, REUNION, MAYOTTE, SAINT_PIERRE], ids=lambda a: a.key
)
def test_each_area_gets_its_own_days_and_no_other(area: Area) -> None:
    national = holidays_in(2027, [Calendar.national])
    own = {day: name for day, name in holidays_in(2027, area.calendars).items() if day not in national}
    assert own == OWN_DAYS_2027[area.key]


def test_alsace_moselle_days_are_not_overseas_days() -> None:
    for area in (GUYANE, REUNION, MAYOTTE, SAINT_PIERRE):
        assert holiday_name(date(2027, 12, 26), area.calendars) is None
        assert holiday_name(date(2027, 3, 26), area.calendars) is None


def test_years_outside_the_table_are_computed_by_the_same_rules() -> None:
    assert holiday_name(date(2036, 4, 14), METROPOLE.calendars) == "Lundi de Pâques"  # Easter 2036: 13 April
    assert holiday_name(date(2025, 12, 26), METROPOLE.calendars) == "Saint-Étienne"
    assert holiday_name(date(2036, 4, 15), METROPOLE.calendars) is None


@given(st.dates(min_value=date(2026, 1, 1), max_value=date(2035, 12, 31)))
def test_a_day_is_a_holiday_exactly_when_the_rules_say_so(day: date) -> None:
    computed = computed_holidays(day.year)
    for area in (METROPOLE, GUADELOUPE, MARTINIQUE, GUYANE, REUNION, MAYOTTE, SAINT_PIERRE):
        expected = any(h.day == day and h.calendar in area.calendars for h in computed)
        assert (holiday_name(day, area.calendars) is not None) == expected


def test_whit_monday_and_ascension_follow_easter() -> None:
    for year, easter in EASTER.items():
        days = holidays_in(year, [Calendar.national])
        assert days[easter + timedelta(days=1)] == "Lundi de Pâques"
        assert days[easter + timedelta(days=39)] == "Ascension"
        assert days[easter + timedelta(days=50)] == "Lundi de Pentecôte"
