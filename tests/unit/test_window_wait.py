"""What a running commercial send says while the law holds its calls (issue 18: "the send's estimate says
so"): why and until when, for metropolitan numbers, in the customer's words."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.domain.accounts import PARIS
from engine.domain.callhours import Postponed
from engine.domain.sends import SendStatus, window_wait, window_wait_fr


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def test_inside_the_window_nothing_waits() -> None:
    assert window_wait("commercial", SendStatus.running, 5, paris(2026, 12, 4, 12, 59, 59)) is None


def test_the_lunch_break_waits_until_14h_the_same_day() -> None:
    now = paris(2026, 12, 4, 13, 0)  # a Friday
    wait = window_wait("commercial", SendStatus.running, 5, now)
    assert wait is not None and wait.reason is Postponed.outside_hours
    assert wait.until == paris(2026, 12, 4, 14, 0).astimezone(UTC)
    note = window_wait_fr(wait, now)
    assert "hors plage horaire" in note and "reprise aujourd'hui à 14h00" in note


def test_friday_evening_waits_for_monday_10h() -> None:
    now = paris(2026, 12, 4, 20, 0)
    wait = window_wait("commercial", SendStatus.running, 1, now)
    assert wait is not None and wait.until == paris(2026, 12, 7, 10, 0).astimezone(UTC)
    assert "reprise le 07/12/2026 à 10h00 (heure de Paris" in window_wait_fr(wait, now)


def test_christmas_names_the_holiday_and_skips_the_alsace_moselle_26th() -> None:
    now = paris(2029, 12, 25, 11, 0)  # a Tuesday; the 26th is Saint-Étienne for metropolitan numbers
    wait = window_wait("commercial", SendStatus.running, 1, now)
    assert wait is not None and wait.reason is Postponed.holiday
    assert wait.until == paris(2029, 12, 27, 10, 0).astimezone(UTC)
    assert "jour férié — Noël" in window_wait_fr(wait, now)


@pytest.mark.parametrize(
    ("purpose", "status", "pending"),
    [
        ("information", SendStatus.running, 3),
        ("commercial", SendStatus.paused, 3),
        ("commercial", SendStatus.completed, 0),
        ("commercial", SendStatus.running, 0),  # the last calls are in progress: nothing waits
    ],
)
def test_only_a_running_commercial_send_with_numbers_left_waits(
    purpose: str, status: SendStatus, pending: int
) -> None:
    assert window_wait(purpose, status, pending, paris(2026, 12, 4, 21, 0)) is None  # type: ignore[arg-type]
