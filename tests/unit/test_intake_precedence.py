"""The refusal precedence of http.php and e-mail requests (issue 18): 87, 88, 89, 90, 82, 91, 86/84, 85,
94, 95, 98, 99, 83 — and the commercial codes 98/99."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.domain.intake import CODE_PRECEDENCE, COMMERCIAL_CODES_FR, commercial_refusals, first_refusal

ISSUE_ORDER = ["87", "88", "89", "90", "82", "91", "86", "84", "85", "94", "95", "98", "99", "83"]


def test_the_order_is_the_issues_with_96_where_it_is_answered_today() -> None:
    assert [c for c in CODE_PRECEDENCE if c != "96"] == ISSUE_ORDER
    assert CODE_PRECEDENCE.index("95") < CODE_PRECEDENCE.index("96") < CODE_PRECEDENCE.index("98")


@given(st.sets(st.sampled_from(CODE_PRECEDENCE), min_size=1))
def test_the_first_in_the_table_wins(failed: set[str]) -> None:
    answer = first_refusal(failed)
    assert answer in failed
    assert all(CODE_PRECEDENCE.index(answer) <= CODE_PRECEDENCE.index(c) for c in failed)  # type: ignore[arg-type]


@pytest.mark.parametrize(("earlier", "later"), list(itertools.pairwise(ISSUE_ORDER)))
def test_each_neighbour_pair(earlier: str, later: str) -> None:
    assert first_refusal([later, earlier]) == earlier


def test_nothing_failed_and_unknown_codes() -> None:
    assert first_refusal([]) is None
    with pytest.raises(ValueError, match="97"):
        first_refusal(["84", "97"])


@pytest.mark.parametrize(
    ("presents", "callable_", "expected"),
    [(True, True, set()), (False, True, {"98"}), (True, False, {"99"}), (False, False, {"98", "99"})],
)
def test_commercial_codes(presents: bool, callable_: bool, expected: set[str]) -> None:
    assert (
        commercial_refusals("commercial", presents_usable_number=presents, every_recipient_callable=callable_)
        == expected
    )
    assert not commercial_refusals(
        "information", presents_usable_number=presents, every_recipient_callable=callable_
    )


def test_a_commercial_request_failing_everything_late_gets_98_before_credits() -> None:
    failed = commercial_refusals("commercial", presents_usable_number=False, every_recipient_callable=False)
    assert first_refusal({*failed, "83"}) == "98"
    assert first_refusal({*failed, "94"}) == "94"  # an emetteur given but not the account's comes first
    assert set(COMMERCIAL_CODES_FR) == {"98", "99"}


@pytest.mark.parametrize("presents", [True, False])
def test_a_commercial_send_naming_no_company_fails_98(presents: bool) -> None:
    """No company name to announce (L221-16): the call would not identify who calls — 98, before 99."""
    failed = commercial_refusals(
        "commercial", presents_usable_number=presents, every_recipient_callable=False, names_company=False
    )
    assert failed == {"98", "99"} and first_refusal(failed) == "98"
    assert not commercial_refusals(
        "information", presents_usable_number=presents, every_recipient_callable=True, names_company=False
    )
