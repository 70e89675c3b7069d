"""Who a commercial send may call and from when: stop lists, consent, the 60-day silence after a refusal,
at most 4 attempts in any 30 calendar days, then calling hours — each boundary to the microsecond, and a
simulated dialer that obeys the verdicts never breaks the law over months."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.domain.areas import GUYANE, METROPOLE, REUNION, Area, area_of
from engine.domain.callhours import Postponed, is_allowed, next_allowed
from engine.domain.commercial import (
    CAP_PERIOD_DAYS,
    COOLDOWN_DAYS,
    MAX_ATTEMPTS,
    Consent,
    Excluded,
    History,
    Verdict,
    cap_until,
    check,
    cooldown_until,
    legal_cap,
)
from engine.domain.outcomes import Outcome
from engine.domain.retries import RetryPolicy, decide

PROPERTY = settings(max_examples=5 * settings().max_examples)
TINY = timedelta(microseconds=1)
LONG_AGO = Consent(given_at=datetime(2020, 1, 1, tzinfo=UTC))
AREAS = [METROPOLE, REUNION, GUYANE]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def at_local(area: Area, day: date, clock: time) -> datetime:
    (zone,) = area.zones
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def local_day(area: Area, at: datetime) -> date:
    (zone,) = area.zones
    return at.astimezone(zone).date()


def commercial(area: Area, at: datetime, history: History, consent: Consent = LONG_AGO) -> Verdict | None:
    return check("commercial", area, at, stop_listed=False, consent=consent, history=history)


# --- The rules as the law words them, counted day by day (independent of the implementation) ---------


def spec_cap_ok(area: Area, attempts: list[datetime], at: datetime) -> bool:
    """Fewer than 4 attempts on the 30 calendar days ending with `at`'s day."""
    day = local_day(area, at)
    days = [local_day(area, a) for a in attempts if a <= at]
    return sum(1 for d in days if day - timedelta(days=CAP_PERIOD_DAYS - 1) <= d <= day) < MAX_ATTEMPTS


def spec_cooldown_ok(area: Area, refusals: list[datetime], at: datetime) -> bool:
    """No refusal whose 60 full calendar days (counted from the day after it) are still running."""
    day = local_day(area, at)
    return all(day > local_day(area, r) + timedelta(days=COOLDOWN_DAYS) for r in refusals if r <= at)


# --- Cap ---------------------------------------------------------------------------------------------

# Attempts placed over the 70 days before `at`.
history_offsets = st.lists(st.integers(min_value=0, max_value=70 * 24 * 3600), max_size=12)
anchors = st.datetimes(min_value=datetime(2026, 3, 1), max_value=datetime(2035, 10, 1)).map(  # noqa: DTZ001
    lambda d: d.replace(tzinfo=UTC)
)


@PROPERTY
@given(st.sampled_from(AREAS), anchors, history_offsets)
def test_cap_until_is_the_first_instant_the_cap_allows(area: Area, at: datetime, offsets: list[int]) -> None:
    attempts = [at - timedelta(seconds=s) for s in offsets]
    until = cap_until(area, attempts, at)
    assert (until is None) == spec_cap_ok(area, attempts, at)
    if until is not None:
        assert until > at
        assert spec_cap_ok(area, attempts, until)
        assert not spec_cap_ok(area, attempts, until - TINY)
        (zone,) = area.zones
        assert until.astimezone(zone).time() == time(0)  # a calendar day starts at local midnight


@PROPERTY
@given(st.sampled_from(AREAS), anchors, st.lists(st.integers(0, 90 * 24 * 3600), min_size=1, max_size=4))
def test_cooldown_until_is_the_first_instant_after_sixty_full_days(
    area: Area, at: datetime, offsets: list[int]
) -> None:
    refusals = [at - timedelta(seconds=s) for s in offsets]
    until = cooldown_until(area, refusals, at)
    assert (until is None) == spec_cooldown_ok(area, refusals, at)
    if until is not None:
        assert spec_cooldown_ok(area, refusals, until)
        assert not spec_cooldown_ok(area, refusals, until - TINY)
        # Calendar days, not hours: 60 full days lie between the refusal's day and the day calls resume
        # (a refusal at 23:59 before the spring change is followed by 60 days minus 59 minutes).
        assert local_day(area, until) == local_day(area, max(refusals)) + timedelta(days=COOLDOWN_DAYS + 1)
        assert until - max(refusals) > timedelta(days=COOLDOWN_DAYS, hours=-1)


def test_the_fifth_attempt_waits_for_the_first_to_leave_the_30_days() -> None:
    # Four attempts on Monday 2 March 2026 (Paris): the 30 days are 2 … 31 March; 1 April is free.
    monday = date(2026, 3, 2)
    attempts = [at_local(METROPOLE, monday, time(h)) for h in (10, 11, 14, 15)]
    history = History(attempts=attempts)
    last_blocked = at_local(METROPOLE, date(2026, 3, 31), time(19, 59, 59))  # Tuesday, day 30
    verdict = commercial(METROPOLE, last_blocked, history)
    assert verdict == Verdict(Excluded.cap_reached, at_local(METROPOLE, date(2026, 4, 1), time(10)))
    assert verdict.label_fr == "plafond de 4 appels atteint"
    assert commercial(METROPOLE, at_local(METROPOLE, date(2026, 4, 1), time(10)), history) is None
    # Three attempts leave room for a fourth the same day.
    assert (
        commercial(METROPOLE, at_local(METROPOLE, monday, time(16)), History(attempts=attempts[:3])) is None
    )


def test_the_cap_counts_local_days_overseas() -> None:
    # 21:00 UTC on Monday 2 March 2026 is already Tuesday 01:00 in Réunion.
    attempts = [utc(2026, 3, 2, 6), utc(2026, 3, 2, 7), utc(2026, 3, 2, 10), utc(2026, 3, 2, 21)]
    # In Réunion the latest attempt counts on 3 March: the fourth-latest (2 March) frees 1 April.
    assert cap_until(REUNION, attempts, utc(2026, 3, 3, 6)) == at_local(REUNION, date(2026, 4, 1), time(0))


def test_a_refusal_silences_the_number_for_sixty_full_days() -> None:
    refused = at_local(METROPOLE, date(2026, 3, 2), time(19, 30))  # Monday
    history = History(attempts=[refused], refusals=[refused])
    # Day 0 is 2 March; days 1–60 run to 1 May (a holiday: Fête du Travail); calls resume Monday 4 May.
    still = at_local(METROPOLE, date(2026, 5, 1), time(23, 59, 59, 999999))
    verdict = commercial(METROPOLE, still, history)
    assert verdict == Verdict(Excluded.refused, at_local(METROPOLE, date(2026, 5, 4), time(10)))
    assert verdict.label_fr == "opposition"
    assert cooldown_until(METROPOLE, [refused], still) == at_local(METROPOLE, date(2026, 5, 2), time(0))
    assert commercial(METROPOLE, at_local(METROPOLE, date(2026, 5, 4), time(10)), history) is None


def test_refusal_comes_before_the_cap_and_waits_for_both() -> None:
    day = date(2026, 3, 2)
    attempts = [at_local(METROPOLE, day, time(10, m)) for m in range(4)]
    history = History(attempts=attempts, refusals=attempts[-1:])
    verdict = commercial(METROPOLE, at_local(METROPOLE, day, time(11)), history)
    assert verdict is not None
    assert verdict.reason is Excluded.refused
    assert verdict.until == at_local(METROPOLE, date(2026, 5, 4), time(10))


# --- Stop list, consent, purpose ---------------------------------------------------------------------

MONDAY_11 = at_local(METROPOLE, date(2026, 3, 2), time(11))


def test_a_stop_listed_number_is_never_called_whatever_the_purpose() -> None:
    for purpose in ("information", "commercial"):
        verdict = check(purpose, METROPOLE, MONDAY_11, stop_listed=True, consent=LONG_AGO)  # type: ignore[arg-type]
        assert verdict == Verdict(Excluded.stop_listed, None)
        assert verdict.label_fr == "liste d'opposition"
        assert verdict.final


def test_information_sends_ignore_consent_hours_and_caps() -> None:
    sunday_night = at_local(METROPOLE, date(2026, 3, 1), time(23))
    crowded = History(
        attempts=[sunday_night - timedelta(hours=h) for h in range(10)], refusals=[sunday_night]
    )
    assert check("information", METROPOLE, sunday_night, stop_listed=False, history=crowded) is None


@pytest.mark.parametrize(
    "consent",
    [
        None,
        Consent(given_at=MONDAY_11 + TINY),  # given after the call would be placed
        Consent(given_at=utc(2025, 1, 1), withdrawn_at=MONDAY_11),  # withdrawn at that very instant
        Consent(given_at=utc(2025, 1, 1), withdrawn_at=utc(2025, 6, 1)),
    ],
)
def test_without_valid_consent_a_commercial_send_skips_the_number(consent: Consent | None) -> None:
    verdict = check("commercial", METROPOLE, MONDAY_11, stop_listed=False, consent=consent)
    assert verdict == Verdict(Excluded.no_consent, None)
    assert verdict.label_fr == "sans consentement"


def test_consent_valid_until_the_instant_it_is_withdrawn() -> None:
    consent = Consent(given_at=utc(2025, 1, 1), withdrawn_at=MONDAY_11 + TINY)
    assert check("commercial", METROPOLE, MONDAY_11, stop_listed=False, consent=consent) is None


def test_a_wait_that_outlasts_the_consent_is_final() -> None:
    # Monday 13:30: the call would wait for 14:00, but consent is withdrawn at 13:45.
    lunch = at_local(METROPOLE, date(2026, 3, 2), time(13, 30))
    consent = Consent(
        given_at=utc(2025, 1, 1), withdrawn_at=at_local(METROPOLE, date(2026, 3, 2), time(13, 45))
    )
    verdict = check("commercial", METROPOLE, lunch, stop_listed=False, consent=consent)
    assert verdict == Verdict(Excluded.no_consent, None)


def test_calling_hours_come_last_with_their_own_labels() -> None:
    friday_night = at_local(METROPOLE, date(2026, 5, 1), time(11))  # Fête du Travail, a Friday
    verdict = commercial(METROPOLE, friday_night, History())
    assert verdict == Verdict(Postponed.holiday, at_local(METROPOLE, date(2026, 5, 4), time(10)))
    assert verdict.label_fr == "jour férié"
    saturday = commercial(METROPOLE, at_local(METROPOLE, date(2026, 5, 2), time(11)), History())
    assert saturday is not None
    assert saturday.label_fr == "hors plage horaire"


def test_unknown_purpose_and_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="purpose"):
        check("prospection", METROPOLE, MONDAY_11, stop_listed=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aware"):
        check("commercial", METROPOLE, datetime(2026, 3, 2, 11), stop_listed=False)  # noqa: DTZ001


# --- A dialer that follows the verdicts never breaks the law ------------------------------------------


@PROPERTY
@given(
    st.sampled_from(AREAS),
    anchors,
    st.lists(st.tuples(st.integers(min_value=1, max_value=6 * 3600), st.booleans()), min_size=5, max_size=40),
)
def test_a_dialer_obeying_the_verdicts_keeps_every_rule(
    area: Area, start: datetime, steps: list[tuple[int, bool]]
) -> None:
    """Call as soon as allowed, wait a drawn time, sometimes hear a refusal; then audit the whole log."""
    attempts: list[datetime] = []
    refusals: list[datetime] = []
    at = start
    for gap_s, refused in steps:
        verdict = commercial(area, at, History(attempts=attempts, refusals=refusals))
        if verdict is not None:
            assert verdict.until is not None and verdict.until > at
            # Nothing was allowed earlier than `until`: the verdict holds a microsecond before it.
            assert commercial(area, verdict.until - TINY, History(attempts, refusals)) is not None
            at = verdict.until
            continue
        attempts.append(at)
        if refused and len(refusals) < 2:
            refusals.append(at)
        at += timedelta(seconds=gap_s)
    for i, call in enumerate(attempts):
        assert is_allowed(area, call)
        assert spec_cap_ok(area, attempts[:i], call)
        assert spec_cooldown_ok(area, [r for r in refusals if r < call], call)
        window_start = local_day(area, call) - timedelta(days=CAP_PERIOD_DAYS - 1)
        in_window = [a for a in attempts if window_start <= local_day(area, a) <= local_day(area, call)]
        assert len(in_window) <= MAX_ATTEMPTS


# --- Row 1 of the retry table --------------------------------------------------------------------------


def test_the_retry_table_moves_a_retry_into_the_next_window() -> None:
    ended = at_local(METROPOLE, date(2026, 3, 2), time(12, 50))
    history = History(attempts=[ended])
    cap = legal_cap(METROPOLE, stop_listed=False, consent=LONG_AGO, history=history)
    policy = RetryPolicy(extra_attempts=2, interval_s=600)
    decision = decide(Outcome.no_answer, 1, policy, ended.timestamp(), legal=cap)
    assert decision.rule == "legal_cap"
    assert decision.at == at_local(METROPOLE, date(2026, 3, 2), time(14)).timestamp()
    # Inside the window, the send's own timing stands.
    early = at_local(METROPOLE, date(2026, 3, 2), time(10, 30))
    cap = legal_cap(METROPOLE, stop_listed=False, consent=LONG_AGO, history=History(attempts=[early]))
    assert decide(Outcome.busy, 1, policy, early.timestamp(), legal=cap).rule == "cause_timing"


def test_the_retry_table_stops_for_good_on_a_stop_list_or_a_lost_consent() -> None:
    ended = at_local(METROPOLE, date(2026, 3, 2), time(11))
    policy = RetryPolicy(extra_attempts=2, interval_s=600)
    for stop_listed, consent in ((True, LONG_AGO), (False, None)):
        cap = legal_cap(METROPOLE, stop_listed=stop_listed, consent=consent, history=History([ended]))
        decision = decide(Outcome.no_answer, 1, policy, ended.timestamp(), legal=cap)
        assert (decision.at, decision.rule) == (None, "legal_cap")


def test_numbers_map_to_their_area_for_the_verdict() -> None:
    # A Réunion mobile at 15:00 UTC on a Monday: 19:00 there, allowed; Paris is at 16:00, allowed too;
    # at 16:30 UTC Réunion has closed (20:30) while Paris calls on.
    reunion = area_of("+262692123456")
    assert commercial(reunion, utc(2026, 3, 2, 15), History()) is None
    late = commercial(reunion, utc(2026, 3, 2, 16, 30), History())
    assert late is not None
    assert late.until == next_allowed(reunion, utc(2026, 3, 2, 16, 30)) == utc(2026, 3, 3, 6)
    assert commercial(area_of("+33612345678"), utc(2026, 3, 2, 16, 30), History()) is None


def test_only_what_happened_by_the_instant_counts() -> None:
    # Four attempts on 2 March 2026 from 14:00: at 11:00 that day none had happened yet.
    attempts = [at_local(METROPOLE, date(2026, 3, 2), time(14, m)) for m in range(4)]
    refusals = attempts[-1:]
    morning = at_local(METROPOLE, date(2026, 3, 2), time(11))
    assert commercial(METROPOLE, morning, History(attempts=attempts, refusals=refusals)) is None
    assert cap_until(METROPOLE, attempts, morning) is None
    assert cooldown_until(METROPOLE, refusals, morning) is None


# --- Numbers spread over several zones: every zone's calendar days must agree ---------------------------

AUSTRALIA = area_of("+61412345678")


def spec_in_every_zone(
    rule: Callable[[Area, list[datetime], datetime], bool], area: Area, instants: list[datetime], at: datetime
) -> bool:
    return all(rule(Area(area.key, (zone,), area.calendars), instants, at) for zone in area.zones)


@PROPERTY
@given(anchors, history_offsets)
def test_cap_and_cooldown_hold_in_every_zone_of_a_spread_number(at: datetime, offsets: list[int]) -> None:
    instants = [at - timedelta(seconds=s) for s in offsets]
    for until_of, rule in ((cap_until, spec_cap_ok), (cooldown_until, spec_cooldown_ok)):
        until = until_of(AUSTRALIA, instants, at)
        assert (until is None) == spec_in_every_zone(rule, AUSTRALIA, instants, at)
        if until is not None:
            assert spec_in_every_zone(rule, AUSTRALIA, instants, until)
