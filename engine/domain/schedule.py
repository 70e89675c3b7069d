"""Deferred sends: the manual's `HHMMDDMMYYYY` (Europe/Paris wall-clock time), parsed to UTC and back.

A trailing `s` asks to cancel the deferred send planned at that time (manual: "153012092014s").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from engine.errors import InvalidInput

PARIS = ZoneInfo("Europe/Paris")

_DEFERRED = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{4})([sS]?)")

_MONTHS_FR = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)

BAD_DEFERRED_FR = (
    "Le format d'envoi en différé n'est pas valide : indiquez heure, minute, jour, mois et année "
    "(HHMMJJMMAAAA, par exemple 153012092030 pour le 12 septembre 2030 à 15h30)."
)
DEFERRED_PAST_FR = "La date d'envoi en différé est déjà passée."


@dataclass(frozen=True, slots=True)
class Deferred:
    """A parsed deferred start: when (aware, UTC), and whether the request cancels that deferred send."""

    at_utc: datetime
    cancel: bool = False


def _bad(text: str, why: str) -> InvalidInput:
    return InvalidInput("bad_deferred", f"invalid deferred time {text!r}: {why}", message_fr=BAD_DEFERRED_FR)


def parse_deferred(text: str, now_utc: datetime) -> Deferred:
    """Parse `HHMMDDMMYYYY[s]`, read as Paris wall-clock time.

    Raises InvalidInput `bad_deferred` for a malformed or impossible date/time, including a time inside
    the spring DST gap (it never happens on a Paris clock); an ambiguous autumn time means its first
    occurrence (summer time). Raises `deferred_past` for a start time whose minute is over.
    A cancel request (`s`) is never refused for being past: the time only identifies the send, and
    whether it can still be cancelled is the dialer's decision (a running send can be cancelled too).
    """
    if now_utc.tzinfo is None:
        raise ValueError("now_utc must be timezone-aware")
    # Surrounding blanks are tolerated (e-mail subjects, pasted URLs); blanks inside are not.
    stripped = text.strip()
    match = _DEFERRED.fullmatch(stripped)
    if match is None:
        raise _bad(text, "expected 12 digits HHMMDDMMYYYY, optionally followed by 's'")
    hour, minute, day, month, year = (int(group) for group in match.groups()[:5])
    cancel = match.group(6) != ""
    try:
        # 24:00 is refused by datetime itself (hour must be 0..23), as are 31/02, 29/02 of common years
        # and year 0000.
        local = datetime(year, month, day, hour, minute, tzinfo=PARIS, fold=0)
    except ValueError as exc:
        raise _bad(text, str(exc)) from exc
    at_utc = local.astimezone(UTC)
    # A wall-clock time inside the spring gap does not survive the round trip (02:30 comes back as 03:30).
    if at_utc.astimezone(PARIS).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise _bad(text, "this local time does not exist in Europe/Paris (daylight saving time gap)")
    if not cancel and at_utc < now_utc.astimezone(UTC).replace(second=0, microsecond=0):
        # The format has minute resolution: a time within the current minute means "now", not the past.
        raise InvalidInput(
            "deferred_past",
            f"deferred time {text!r} ({at_utc.isoformat()}) is already past",
            message_fr=DEFERRED_PAST_FR,
        )
    return Deferred(at_utc=at_utc, cancel=cancel)


def format_deferred(at_utc: datetime, *, cancel: bool = False) -> str:
    """The manual's `HHMMDDMMYYYY` (Paris time) for an aware instant; seconds are dropped.

    An instant in the second occurrence of an autumn hour formats to the same text as the first one
    (the format cannot tell them apart), so it does not round-trip.
    """
    if at_utc.tzinfo is None:
        raise ValueError("at_utc must be timezone-aware")
    local = at_utc.astimezone(PARIS)
    return local.strftime("%H%M%d%m") + f"{local.year:04d}" + ("s" if cancel else "")


def describe_deferred_fr(at_utc: datetime) -> str:
    """French display of a deferred start in Paris time, e.g. "12 septembre 2030 à 15h30"."""
    if at_utc.tzinfo is None:
        raise ValueError("at_utc must be timezone-aware")
    local = at_utc.astimezone(PARIS)
    day = "1er" if local.day == 1 else str(local.day)
    return f"{day} {_MONTHS_FR[local.month - 1]} {local.year} à {local.hour}h{local.minute:02d}"
