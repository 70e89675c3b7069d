"""Calling hours of commercial sends (article D223-9 of the Code de la consommation): Monday to Friday,
10:00–13:00 and 14:00–20:00 in the called person's local time, never on a public holiday of their area.

Windows are half-open: 12:59:59.999 is inside, 13:00:00 is not; 20:00:00 is not. Every instant is an
aware datetime; answers are in UTC. The law speaks of the wall clock, so a window follows the area's
daylight saving time (10:00 Paris is 09:00 UTC in winter, 08:00 UTC in summer).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from engine.domain.areas import Area
from engine.domain.holidays import holiday_name

# [start, end) in local wall-clock time.
WINDOWS: Final = ((time(10), time(13)), (time(14), time(20)))
WORKING_WEEKDAYS: Final = range(5)  # Monday = 0 … Friday = 4
# A search for the next allowed instant gives up after this long (only foreign numbers spread over zones
# that never share a window can get there; French areas never come close: at most ~5 days off in a row).
SEARCH_HORIZON: Final = timedelta(days=400)


class Postponed(StrEnum):
    """Why a recipient cannot be called at an instant (the report's French label)."""

    outside_hours = "outside_hours"
    holiday = "holiday"

    @property
    def label_fr(self) -> str:
        return _LABELS_FR[self]


_LABELS_FR: Final = {Postponed.outside_hours: "hors plage horaire", Postponed.holiday: "jour férié"}


@dataclass(frozen=True, slots=True)
class Postponement:
    """A recipient that must wait: why, and the first instant it may be called (None: not within a year)."""

    reason: Postponed
    until: datetime | None
    holiday_fr: str | None = None  # the holiday's name, when that is the reason

    @property
    def label_fr(self) -> str:
        return self.reason.label_fr


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("instants must be timezone-aware")
    return at.astimezone(UTC)


def _day_off(area: Area, day: date) -> bool:
    return day.weekday() not in WORKING_WEEKDAYS or holiday_name(day, area.calendars) is not None


def _allowed_in(area: Area, zone: ZoneInfo, at: datetime) -> bool:
    local = at.astimezone(zone)
    if _day_off(area, local.date()):
        return False
    clock = local.time().replace(tzinfo=None)
    return any(start <= clock < end for start, end in WINDOWS)


def is_allowed(area: Area, at: datetime) -> bool:
    """May a commercial call to a number of `area` be placed at `at`?"""
    at = _aware(at)
    return all(_allowed_in(area, zone, at) for zone in area.zones)


def _local_instant(day: date, clock: time, zone: ZoneInfo) -> datetime:
    # fold=0: a wall-clock time inside a spring gap maps to the transition instant, the first instant
    # whose local time is at or after it; an ambiguous autumn time to its first occurrence.
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def _next_in(area: Area, zone: ZoneInfo, at: datetime, limit: datetime) -> datetime | None:
    """The first instant >= `at` inside a window of one zone, or None before `limit`."""
    day = at.astimezone(zone).date()
    while True:
        if not _day_off(area, day):
            for start, end in WINDOWS:
                opens, closes = _local_instant(day, start, zone), _local_instant(day, end, zone)
                if at < closes:
                    return max(at, opens)
        day += timedelta(days=1)
        if _local_instant(day, time(0), zone) > limit:
            return None


def next_allowed(area: Area, at: datetime) -> datetime | None:
    """The first instant at or after `at` when a number of `area` may be called (UTC), or None when no
    instant within SEARCH_HORIZON fits every zone of the area."""
    candidate = _aware(at)
    limit = candidate + SEARCH_HORIZON
    while candidate <= limit:
        later = candidate
        for zone in area.zones:
            found = _next_in(area, zone, candidate, limit)
            if found is None:
                return None
            later = max(later, found)
        if later == candidate:
            if is_allowed(area, candidate):
                return candidate
            later = candidate + timedelta(minutes=1)  # a zone whose window edge sits in a DST jump
        candidate = later
    return None


def postponement(area: Area, at: datetime) -> Postponement | None:
    """None when a call may be placed at `at`; else why not and until when.

    The reason is "jour férié" when a zone's local day is a holiday falling on a weekday (the holiday
    is what stops the call), "hors plage horaire" otherwise (night, lunch break, weekend — a holiday on
    a Saturday changes nothing).
    """
    at = _aware(at)
    if is_allowed(area, at):
        return None
    until = next_allowed(area, at)
    for zone in area.zones:
        day = at.astimezone(zone).date()
        name = holiday_name(day, area.calendars)
        if name is not None and day.weekday() in WORKING_WEEKDAYS:
            return Postponement(Postponed.holiday, until, holiday_fr=name)
    return Postponement(Postponed.outside_hours, until)


def _window_end(area: Area, at: datetime) -> datetime:
    """The end of the window `at` lies in (an allowed instant): the earliest end over the area's zones."""
    ends = []
    for zone in area.zones:
        local = at.astimezone(zone)
        clock = local.time().replace(tzinfo=None)
        end = next(end for start, end in WINDOWS if start <= clock < end)
        ends.append(_local_instant(local.date(), end, zone))
    return min(ends)


def after_calling_time(area: Area, start: datetime, seconds: float) -> datetime | None:
    """When `seconds` of calling time have passed from `start`, counting only the instants a number of
    `area` may be called (a send's estimate: 2 h of calls from Friday 19:00 end on Monday 11:00); None
    when that is beyond SEARCH_HORIZON."""
    at: datetime | None = _aware(start)
    left = max(0.0, seconds)
    limit = _aware(start) + SEARCH_HORIZON
    while True:
        at = next_allowed(area, at) if at is not None else None
        if at is None or at > limit:
            return None
        end = _window_end(area, at)
        span = (end - at).total_seconds()
        if span >= left:
            return at + timedelta(seconds=left)
        left -= span
        at = end
