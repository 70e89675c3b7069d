"""Public holidays on which commercial calls are not placed (article D223-9 of the Code de la
consommation): the rules that make them, and the vendored 2026–2035 table the engine reads.

Within the table's years the table is the answer (a reviewer can read every date in
engine/domain/data/holidays_2026_2035.py); outside them the same rules compute the days, and a unit test
proves rules and table agree on every year of the table.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from engine.domain.data.holidays_2026_2035 import HOLIDAYS


class Calendar(StrEnum):
    """A list of public holidays; a number's area is covered by one or more of them."""

    national = "national"  # Code du travail L3133-1: every French number
    alsace_moselle = "alsace_moselle"  # L3134-13: every metropolitan number (a number does not tell the town)
    guadeloupe = "guadeloupe"
    martinique = "martinique"
    guyane = "guyane"
    reunion = "reunion"
    mayotte = "mayotte"
    saint_barthelemy = "saint_barthelemy"
    saint_martin = "saint_martin"


@dataclass(frozen=True, slots=True)
class Holiday:
    day: date
    calendar: Calendar
    name_fr: str


def easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous algorithm of Meeus, Jones and Butcher)."""
    if year < 1583:
        raise ValueError(f"the Gregorian computus starts in 1583, got {year}")
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return date(year, month, day + 1)


# (calendar, month, day, name) for fixed days; (calendar, days from Easter Sunday, name) for moving ones.
_FIXED: Final = (
    (Calendar.national, 1, 1, "Jour de l'an"),
    (Calendar.national, 5, 1, "Fête du Travail"),
    (Calendar.national, 5, 8, "Victoire 1945"),
    (Calendar.national, 7, 14, "Fête nationale"),
    (Calendar.national, 8, 15, "Assomption"),
    (Calendar.national, 11, 1, "Toussaint"),
    (Calendar.national, 11, 11, "Armistice 1918"),
    (Calendar.national, 12, 25, "Noël"),
    (Calendar.alsace_moselle, 12, 26, "Saint-Étienne"),
    (Calendar.mayotte, 4, 27, "Abolition de l'esclavage"),
    (Calendar.martinique, 5, 22, "Abolition de l'esclavage"),
    (Calendar.guadeloupe, 5, 27, "Abolition de l'esclavage"),
    (Calendar.saint_martin, 5, 28, "Abolition de l'esclavage"),
    (Calendar.guyane, 6, 10, "Abolition de l'esclavage"),
    (Calendar.guadeloupe, 7, 21, "Fête de Victor Schœlcher"),
    (Calendar.martinique, 7, 21, "Fête de Victor Schœlcher"),
    (Calendar.saint_barthelemy, 10, 9, "Abolition de l'esclavage"),
    (Calendar.reunion, 12, 20, "Abolition de l'esclavage"),
)
_MOVING: Final = (
    (Calendar.national, 1, "Lundi de Pâques"),
    (Calendar.national, 39, "Ascension"),
    (Calendar.national, 50, "Lundi de Pentecôte"),
    (Calendar.alsace_moselle, -2, "Vendredi saint"),
    (Calendar.guadeloupe, -2, "Vendredi saint"),
    (Calendar.martinique, -2, "Vendredi saint"),
    (Calendar.guadeloupe, -24, "Mi-Carême"),
)


def computed_holidays(year: int) -> tuple[Holiday, ...]:
    """Every calendar's holidays of one year, by the rules (sorted by day, then calendar)."""
    easter = easter_sunday(year)
    found = [Holiday(date(year, month, day), calendar, name) for calendar, month, day, name in _FIXED]
    found += [Holiday(easter + timedelta(days=offset), calendar, name) for calendar, offset, name in _MOVING]
    return tuple(sorted(found, key=lambda h: (h.day, h.calendar.value, h.name_fr)))


def table_holidays() -> tuple[Holiday, ...]:
    """The vendored table, as read."""
    return tuple(
        Holiday(date.fromisoformat(day), Calendar(calendar), name) for day, calendar, name in HOLIDAYS
    )


TABLE_YEARS: Final = range(2026, 2036)


def _index(holidays: Iterable[Holiday]) -> dict[date, dict[Calendar, str]]:
    index: dict[date, dict[Calendar, str]] = {}
    for holiday in holidays:
        index.setdefault(holiday.day, {})[holiday.calendar] = holiday.name_fr
    return index


_TABLE: Final = MappingProxyType(_index(table_holidays()))


@functools.lru_cache(maxsize=32)
def _computed_index(year: int) -> MappingProxyType[date, dict[Calendar, str]]:
    return MappingProxyType(_index(computed_holidays(year)))


def _day_index(year: int) -> MappingProxyType[date, dict[Calendar, str]]:
    return _TABLE if year in TABLE_YEARS else _computed_index(year)


def holiday_name(day: date, calendars: Iterable[Calendar]) -> str | None:
    """The French name of the holiday `day` is in any of `calendars` (national first), or None."""
    names = _day_index(day.year).get(day)
    if not names:
        return None
    wanted = set(calendars)
    for calendar in Calendar:  # a stable order: the national name wins when two calendars share a day
        if calendar in wanted and calendar in names:
            return names[calendar]
    return None


def holidays_in(year: int, calendars: Iterable[Calendar]) -> dict[date, str]:
    """One year's holidays for an area covered by `calendars`: day → name."""
    wanted = frozenset(calendars)
    index = _day_index(year)
    days = sorted(day for day, names in index.items() if day.year == year and wanted & names.keys())
    return {day: name for day in days if (name := holiday_name(day, wanted)) is not None}
