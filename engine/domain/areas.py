"""Where a called number is, as the law on commercial calls needs it: the time zone(s) its calling hours
are read in, and the holiday calendars that cover it.

French numbers are placed by their prefix (engine.domain.numbers gives the region: 0262/0263/0692/0693
Réunion, 0269/0639 Mayotte, 0590/0690/0691 Guadeloupe, 0594/0694 Guyane, 0596/0696/0697 Martinique,
0508 Saint-Pierre-et-Miquelon, the 07 09 overseas mobile blocks); every other +33 number is metropolitan,
mobiles and 09 included. A foreign number is read in every time zone phonenumbers gives its prefix (a
call must fit the window in all of them) with the metropolitan calendars: the advertiser's law is French.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as phone_timezones

from engine.domain.holidays import Calendar
from engine.domain.numbers import Refusal, normalize


@dataclass(frozen=True, slots=True)
class Area:
    """A number's legal whereabouts: the zones whose local time counts, the calendars whose days are off."""

    key: str
    zones: tuple[ZoneInfo, ...]
    calendars: frozenset[Calendar]


_METROPOLE_CALENDARS: Final = frozenset({Calendar.national, Calendar.alsace_moselle})


def _area(key: str, zone: str, *calendars: Calendar) -> Area:
    return Area(key, (ZoneInfo(zone),), frozenset({Calendar.national, *calendars}))


METROPOLE: Final = Area("metropole", (ZoneInfo("Europe/Paris"),), _METROPOLE_CALENDARS)
# +590 is shared by Guadeloupe, Saint-Barthélemy and Saint-Martin (same zone, UTC−4), and neither a mobile
# nor every fixed block tells the island: numbers of that plan get the three islands' days.
GUADELOUPE: Final = _area(
    "guadeloupe",
    "America/Guadeloupe",
    Calendar.guadeloupe,
    Calendar.saint_barthelemy,
    Calendar.saint_martin,
)
MARTINIQUE: Final = _area("martinique", "America/Martinique", Calendar.martinique)
GUYANE: Final = _area("guyane", "America/Cayenne", Calendar.guyane)
REUNION: Final = _area("reunion", "Indian/Reunion", Calendar.reunion)
MAYOTTE: Final = _area("mayotte", "Indian/Mayotte", Calendar.mayotte)
SAINT_PIERRE: Final = _area("saint_pierre_et_miquelon", "America/Miquelon")

# engine.domain.numbers' region codes (phonenumbers' regions, picked by our overseas prefix table).
AREAS_BY_REGION: Final[dict[str, Area]] = {
    "FR": METROPOLE,
    "GP": GUADELOUPE,
    "BL": GUADELOUPE,
    "MF": GUADELOUPE,
    "MQ": MARTINIQUE,
    "GF": GUYANE,
    "RE": REUNION,
    "YT": MAYOTTE,
    "PM": SAINT_PIERRE,
}


@functools.lru_cache(maxsize=65536)
def area_of(e164: str) -> Area:
    """The area of an E.164 number the engine accepted (ValueError for one it would refuse)."""
    number = normalize(e164, allow_international=True)
    if isinstance(number, Refusal):
        raise ValueError(f"not a callable number: {e164!r} ({number.code})")
    known = AREAS_BY_REGION.get(number.region)
    if known is not None:
        return known
    return Area(f"foreign:{number.region}", _foreign_zones(number.e164), _METROPOLE_CALENDARS)


def _foreign_zones(e164: str) -> tuple[ZoneInfo, ...]:
    names = phone_timezones.time_zones_for_number(phonenumbers.parse(e164))
    known = sorted(name for name in names if name != phone_timezones.UNKNOWN_TIMEZONE)
    return tuple(ZoneInfo(name) for name in known) or METROPOLE.zones
