"""Presented numbers of automated calls (ARCEP 2022-1583): the reserved blocks, 08 but 089, 30/31 short
numbers; mobiles and every other French number refused with their reason."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.domain.data.presented_ranges import METROPOLITAN_BLOCKS, OVERSEAS_BLOCKS
from engine.domain.presented import MESSAGES_FR, Unusable, Usable, check_presented

digits = st.text(alphabet="0123456789", min_size=6, max_size=6)


@given(st.sampled_from(METROPOLITAN_BLOCKS), digits)
def test_every_metropolitan_block_is_usable(block: str, rest: str) -> None:
    number = block + rest
    assert check_presented(number) == Usable(number, "automated_block")
    assert check_presented(
        f"+33 {number[1]} {number[2:4]} {number[4:6]} {number[6:8]} {number[8:]}"
    ) == Usable(number, "automated_block")


@given(st.sampled_from(sorted(OVERSEAS_BLOCKS)), digits.map(lambda d: d[:5]))
def test_every_overseas_block_is_usable(block: str, rest: str) -> None:
    number = block + rest
    assert check_presented(number) == Usable(number, "automated_block")
    assert check_presented(number).e164 == "+33" + number[1:]  # type: ignore[union-attr]


@pytest.mark.parametrize("block", ["09470", "09471", "09472", "09473", "09474", "09460"])
def test_the_rest_of_0947_is_not_for_automated_calls(block: str) -> None:
    assert check_presented(block + "12345") == Unusable("not_automated")


def test_the_blocks_are_the_decisions_and_nothing_else() -> None:
    assert METROPOLITAN_BLOCKS == (
        "0162", "0163", "0270", "0271", "0377", "0378", "0424", "0425", "0568", "0569", "0948", "0949",
    )  # fmt: skip
    assert sorted(OVERSEAS_BLOCKS) == ["09475", "09476", "09477", "09478", "09479"]


@given(st.text(alphabet="0123456789", min_size=8, max_size=8))
def test_a_ten_digit_french_number_is_usable_exactly_when_its_prefix_is_allowed(rest: str) -> None:
    for head in ("01", "02", "03", "04", "05", "06", "07", "08", "09"):
        number = head + rest
        result = check_presented(number)
        usable = number.startswith(METROPOLITAN_BLOCKS) or number[:5] in OVERSEAS_BLOCKS
        usable = usable or (head == "08" and not number.startswith("089"))
        assert isinstance(result, Usable) == usable, number
        if head in {"06", "07"}:
            assert result == Unusable("mobile")
        elif number.startswith("089"):
            assert result == Unusable("premium")
        elif not usable:
            assert result == Unusable("not_automated")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0800 12 34 56", Usable("0800123456", "special")),
        ("0810123456", Usable("0810123456", "special")),
        ("0884123456", Usable("0884123456", "special")),
        ("0899123456", Unusable("premium")),
        ("0890123456", Unusable("premium")),
        ("3010", Usable("3010", "short")),
        ("3199", Usable("3199", "short")),
        ("3615", Unusable("not_automated")),
        ("3900", Unusable("not_automated")),
        ("06 12 34 56 78", Unusable("mobile")),
        ("+33 7 12 34 56 78", Unusable("mobile")),
        ("0639 01 23 45", Unusable("mobile")),  # Mayotte mobile
        ("+590 690 12 34 56", Unusable("mobile")),  # Guadeloupe mobile
        ("+262 262 12 34 56", Unusable("not_automated")),  # Réunion fixed line
        ("+508 41 23 45", Unusable("not_automated")),
        ("01 40 00 00 00", Unusable("not_automated")),
        ("09 70 12 34 56", Unusable("not_automated")),
        ("0033 1 62 12 34 56", Usable("0162123456", "automated_block")),
        ("33162123456", Usable("0162123456", "automated_block")),
        ("+33 (0)1 62 12 34 56", Usable("0162123456", "automated_block")),
        ("+33 0162123456", Usable("0162123456", "automated_block")),
        ("+32 2 123 45 67", Unusable("foreign")),
        ("+262 9478 12345", Unusable("invalid")),  # 09 numbers exist under +33 only
        ("", Unusable("invalid")),
        ("01 62 12 34 5", Unusable("invalid")),
        ("01 62 12 34 567", Unusable("invalid")),
        ("0062123456", Unusable("foreign")),  # 00 is the international prefix
        ("O162123456", Unusable("invalid")),
        ("٠١٦٢١٢٣٤٥٦", Unusable("invalid")),
    ],
)
def test_shapes_and_reasons(raw: str, expected: Usable | Unusable) -> None:
    assert check_presented(raw) == expected


def test_every_reason_has_a_french_message() -> None:
    for code in ("invalid", "foreign", "mobile", "premium", "not_automated"):
        assert Unusable(code).message_fr == MESSAGES_FR[code]  # type: ignore[arg-type]
    assert "2022-1583" in Unusable("not_automated").message_fr
    assert Usable("3010", "short").e164 is None
