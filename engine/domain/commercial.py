"""Who a commercial send may call, and from when (article L34-5 of the CPCE, articles L223-1 and D223-9 of
the Code de la consommation): consent, stop lists, the cap of 4 attempts per number per 30 days, the
60-day silence after a refusal, and the calling hours — one verdict per recipient, with its French label.

The order, first that applies wins: stop list ("liste d'opposition", every purpose, for good), no valid
consent ("sans consentement", for good until consent is recorded), a refusal within 60 days
("opposition"), the cap ("plafond de 4 appels atteint"), then calling hours ("jour férié", "hors plage
horaire", engine.domain.callhours). `until` is the first instant every temporary rule allows.

Days are calendar days in the called person's local time (all zones of a foreign number). The cap: at most
4 attempts in any 30 consecutive calendar days, so an attempt on day D counts until day D+29 included.
The refusal: "soixante jours calendaires révolus à compter de ce refus" — the refusal's own day does not
count, 60 full days follow, calls may resume on day D+61.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Final, Literal

from engine.domain.areas import Area
from engine.domain.callhours import Postponed, next_allowed, postponement
from engine.domain.outcomes import Outcome
from engine.domain.retries import LegalCap

Purpose = Literal["information", "commercial"]
PURPOSES: Final[tuple[Purpose, ...]] = ("information", "commercial")

MAX_ATTEMPTS: Final = 4
CAP_PERIOD_DAYS: Final = 30
COOLDOWN_DAYS: Final = 60


class Excluded(StrEnum):
    """Why a recipient is left out of a commercial send (for good or until a date)."""

    stop_listed = "stop_listed"
    no_consent = "no_consent"
    refused = "refused"
    cap_reached = "cap_reached"

    @property
    def label_fr(self) -> str:
        return _LABELS_FR[self]


_LABELS_FR: Final = {
    Excluded.stop_listed: "liste d'opposition",
    Excluded.no_consent: "sans consentement",
    Excluded.refused: "opposition",
    Excluded.cap_reached: f"plafond de {MAX_ATTEMPTS} appels atteint",
}


@dataclass(frozen=True, slots=True)
class Consent:
    """A recorded consent: from when, and when it was withdrawn (None: still given)."""

    given_at: datetime
    withdrawn_at: datetime | None = None

    def valid_at(self, at: datetime) -> bool:
        return self.given_at <= at and (self.withdrawn_at is None or at < self.withdrawn_at)


@dataclass(frozen=True, slots=True)
class History:
    """What the account (the advertiser) did to one number: its commercial attempts (retries included)
    and the refusals heard (opt-out key, SIP 603). Only instants at or before the checked one count."""

    attempts: Sequence[datetime] = field(default_factory=tuple)
    refusals: Sequence[datetime] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Not callable at the checked instant: why (one of both enums), and from when (None: not by waiting)."""

    reason: Excluded | Postponed
    until: datetime | None

    @property
    def label_fr(self) -> str:
        return self.reason.label_fr

    @property
    def final(self) -> bool:
        return self.until is None


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("instants must be timezone-aware")
    return at.astimezone(UTC)


def _start_of(day: date, area: Area) -> datetime:
    """The first instant of local day `day` in every zone of the area (the latest of their midnights)."""
    return max(datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC) for zone in area.zones)


def _days(instants: Sequence[datetime], at: datetime, area: Area) -> list[tuple[date, ...]]:
    """Each past instant's local day in every zone of the area."""
    return [tuple(_aware(i).astimezone(z).date() for z in area.zones) for i in instants if _aware(i) <= at]


def cooldown_until(area: Area, refusals: Sequence[datetime], at: datetime) -> datetime | None:
    """When the last refusal's 60 days are over (None: no refusal stops a call at `at`)."""
    at = _aware(at)
    days = _days(refusals, at, area)
    if not days:
        return None
    # The latest local day of the refusal, in whichever zone is furthest ahead.
    last = max(max(d) for d in days)
    until = _start_of(last + timedelta(days=COOLDOWN_DAYS + 1), area)
    return until if until > at else None


def cap_until(area: Area, attempts: Sequence[datetime], at: datetime) -> datetime | None:
    """When a new attempt fits the cap again (None: it fits at `at`).

    An attempt on day X is allowed when fewer than MAX_ATTEMPTS attempts fall on days X-29 … X; with
    attempts sorted latest first, that holds from the day after the MAX_ATTEMPTS-th latest's window.
    """
    at = _aware(at)
    days = _days(attempts, at, area)
    if len(days) < MAX_ATTEMPTS:
        return None
    latest_first = sorted((max(d) for d in days), reverse=True)
    until = _start_of(latest_first[MAX_ATTEMPTS - 1] + timedelta(days=CAP_PERIOD_DAYS), area)
    return until if until > at else None


def check(
    purpose: Purpose,
    area: Area,
    at: datetime,
    *,
    stop_listed: bool,
    consent: Consent | None = None,
    history: History | None = None,
) -> Verdict | None:
    """None when the recipient may be called at `at` under the send's purpose; else the first rule that
    stops it and the first instant every temporary rule allows (engine.domain.callhours included)."""
    at = _aware(at)
    if purpose not in PURPOSES:
        raise ValueError(f"unknown send purpose {purpose!r}")
    if stop_listed:
        return Verdict(Excluded.stop_listed, None)
    if purpose == "information":
        return None
    if consent is None or not consent.valid_at(at):
        return Verdict(Excluded.no_consent, None)
    history = history or History()
    cooldown = cooldown_until(area, history.refusals, at)
    cap = cap_until(area, history.attempts, at)
    reason: Excluded | Postponed
    if cooldown is not None or cap is not None:
        reason = Excluded.refused if cooldown is not None else Excluded.cap_reached
        until = next_allowed(area, max(u for u in (cooldown, cap) if u is not None))
    else:
        postponed = postponement(area, at)
        if postponed is None:
            return None
        reason, until = postponed.reason, postponed.until
    if until is not None and consent.withdrawn_at is not None and consent.withdrawn_at <= until:
        return Verdict(Excluded.no_consent, None)  # by the time the call could be placed, consent is gone
    return Verdict(reason, until)


def legal_cap(area: Area, *, stop_listed: bool, consent: Consent | None, history: History) -> LegalCap:
    """Row 1 of the retry table (engine.domain.retries) for one recipient of a commercial send: the
    instant the law allows a retry wanted at `wanted` (epoch seconds), or None when it never will.
    `history` must already hold the attempt that just ended (and its refusal, on a 603)."""

    def allowed(outcome: Outcome, wanted: float) -> float | None:
        del outcome  # the law looks at the history, not at how the last call ended
        at = datetime.fromtimestamp(wanted, UTC)
        verdict = check("commercial", area, at, stop_listed=stop_listed, consent=consent, history=history)
        if verdict is None:
            return wanted
        if verdict.until is None:
            return None
        return verdict.until.timestamp()

    return allowed
