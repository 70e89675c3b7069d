"""Deferred start `HHMMDDMMYYYY` in Europe/Paris, DST edges included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.domain.schedule import Deferred, describe_deferred_fr, format_deferred, parse_deferred
from engine.errors import InvalidInput

NOW = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


def test_manual_example_in_summer_time() -> None:
    assert parse_deferred("153012092030", NOW) == Deferred(datetime(2030, 9, 12, 13, 30, tzinfo=UTC), False)


def test_winter_time_is_utc_plus_one() -> None:
    assert parse_deferred("090015012027", NOW).at_utc == datetime(2027, 1, 15, 8, 0, tzinfo=UTC)


def test_result_is_aware_utc() -> None:
    at = parse_deferred("153012092030", NOW).at_utc
    assert at.tzinfo is UTC


def test_trailing_s_means_cancel() -> None:
    assert parse_deferred("153012092030s", NOW) == Deferred(datetime(2030, 9, 12, 13, 30, tzinfo=UTC), True)
    assert parse_deferred("153012092030S", NOW).cancel


def test_surrounding_blanks_are_tolerated() -> None:
    assert parse_deferred(" 153012092030\n", NOW).at_utc == datetime(2030, 9, 12, 13, 30, tzinfo=UTC)


def test_spring_gap_does_not_exist() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_deferred("023029032026", NOW)
    assert info.value.code == "bad_deferred"
    assert "différé" in info.value.message_fr
    # Either side of the gap is fine.
    assert parse_deferred("015929032026", NOW).at_utc == datetime(2026, 3, 29, 0, 59, tzinfo=UTC)
    assert parse_deferred("030029032026", NOW).at_utc == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    with pytest.raises(InvalidInput):
        parse_deferred("020029032026", NOW)


def test_autumn_ambiguity_means_first_occurrence() -> None:
    assert parse_deferred("023025102026", NOW).at_utc == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    # 03:00 happens once, after the second 02:xx.
    assert parse_deferred("030025102026", NOW).at_utc == datetime(2026, 10, 25, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "s",
        "15301209203",  # 11 digits
        "1530120920300",  # 13 digits
        "1530 12092030",
        "15h012092030",
        "153012092030x",
        "153012092030ss",
        "１５３０１２０９２０３０",  # fullwidth digits: not ASCII
        "240012092030",  # 24:00
        "156012092030",  # minute 60
        "153031022030",  # 31/02
        "153029022027",  # 29/02 of a common year
        "153000092030",  # day 0
        "153012132030",  # month 13
        "153012090000",  # year 0
        "-53012092030",
    ],
)
def test_invalid_forms(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_deferred(text, NOW)
    assert info.value.code == "bad_deferred"
    assert info.value.message_fr
    assert text.strip() in str(info.value) or not text.strip()


def test_leap_day_is_valid() -> None:
    assert parse_deferred("120029022028", NOW).at_utc == datetime(2028, 2, 29, 11, 0, tzinfo=UTC)


def test_past_time_has_its_own_code() -> None:
    now = datetime(2030, 9, 12, 13, 31, tzinfo=UTC)  # 15:31 in Paris
    with pytest.raises(InvalidInput) as info:
        parse_deferred("153012092030", now)
    assert info.value.code == "deferred_past"
    assert info.value.message_fr
    with pytest.raises(InvalidInput) as info:
        parse_deferred("153012092014", NOW)
    assert info.value.code == "deferred_past"


def test_current_minute_is_not_past() -> None:
    now = datetime(2030, 9, 12, 13, 30, 59, 999_999, tzinfo=UTC)
    assert parse_deferred("153012092030", now).at_utc == datetime(2030, 9, 12, 13, 30, tzinfo=UTC)


def test_cancel_of_a_past_time_is_accepted() -> None:
    assert parse_deferred("153012092014s", NOW) == Deferred(datetime(2014, 9, 12, 13, 30, tzinfo=UTC), True)


def test_now_in_another_offset_is_compared_as_an_instant() -> None:
    paris_summer = timezone(timedelta(hours=2))
    now = datetime(2030, 9, 12, 15, 29, tzinfo=paris_summer)
    assert parse_deferred("153012092030", now).at_utc == datetime(2030, 9, 12, 13, 30, tzinfo=UTC)


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_deferred("153012092030", datetime(2026, 1, 1))  # noqa: DTZ001


def test_format_and_describe() -> None:
    at = datetime(2030, 9, 12, 13, 30, tzinfo=UTC)
    assert format_deferred(at) == "153012092030"
    assert format_deferred(at, cancel=True) == "153012092030s"
    assert describe_deferred_fr(at) == "12 septembre 2030 à 15h30"
    assert describe_deferred_fr(datetime(2027, 1, 1, 8, 5, tzinfo=UTC)) == "1er janvier 2027 à 9h05"
    # The second 02:30 of an autumn night formats like the first one (the format cannot tell them apart).
    assert format_deferred(datetime(2026, 10, 25, 1, 30, tzinfo=UTC)) == "023025102026"
    with pytest.raises(ValueError, match="aware"):
        format_deferred(datetime(2030, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="aware"):
        describe_deferred_fr(datetime(2030, 1, 1))  # noqa: DTZ001


# Naive bounds are what st.datetimes wants; the values get UTC attached below.
@given(st.datetimes(min_value=datetime(2027, 1, 1), max_value=datetime(2099, 12, 31)))  # noqa: DTZ001
def test_round_trip_on_whole_minutes(naive: datetime) -> None:
    at = naive.replace(second=0, microsecond=0, tzinfo=UTC)
    text = format_deferred(at)
    parsed = parse_deferred(text, NOW)
    # Every instant round-trips except the second occurrence of an autumn hour, which maps to the first.
    assert parsed.at_utc == at or parsed.at_utc == at - timedelta(hours=1)
    assert format_deferred(parsed.at_utc) == text
