"""Number normalisation: every accept/strip rule, every refusal code, overseas mapping, trunk formats."""

from __future__ import annotations

import pytest

from engine.domain.numbers import (
    REFUSAL_MESSAGES_FR,
    Number,
    Refusal,
    _normalize_fast,
    format_for_trunk,
    normalize,
    normalize_reference,
)

BOTH_PATHS = pytest.mark.parametrize("path", [normalize, normalize_reference], ids=["normalize", "reference"])


def accepted(raw: str, *, path=normalize, allow_international: bool = False) -> Number:
    result = path(raw, allow_international=allow_international)
    assert isinstance(result, Number), f"{raw!r} refused: {result}"
    return result


def refusal_code(raw: str, *, path=normalize, allow_international: bool = False) -> str:
    result = path(raw, allow_international=allow_international)
    assert isinstance(result, Refusal), f"{raw!r} accepted: {result}"
    assert result.message_fr == REFUSAL_MESSAGES_FR[result.code]
    return result.code


@BOTH_PATHS
@pytest.mark.parametrize(
    "raw",
    [
        "0612345678",
        "06 12 34 56 78",
        "06.12.34.56.78",
        "06-12-34-56-78",
        "06/12/34/56/78",
        "(06) 12 34 56 78",
        "(0)6 12 34 56 78",
        "0612 345 678",
        "06\u00a012\u00a034\u00a056\u00a078",  # non-breaking spaces, as Word and web pages paste them
        "06\u202f12\u202f34\u202f56\u202f78",  # narrow no-break space
        "06\t12\t34\t56\t78",
        "  06 12 34 56 78  ",
        "612345678",  # the manual: "et même sans le 0"
        "6 12 34 56 78",
        "+33612345678",
        "+33 6 12 34 56 78",
        "+33 (0)6 12 34 56 78",
        "+33 (0) 6 12 34 56 78",
        "+33 06 12 34 56 78",  # the trunk 0 kept after the country code
        "0033612345678",
        "0033 6 12 34 56 78",
        "0033 (0)6 12 34 56 78",
        "33612345678",  # Excel stored +33… as an integer and dropped the "+"
        "33 6 12 34 56 78",
        "\uff10\uff16\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18",  # full-width digits
        "\u0660\u0666\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668",  # Arabic-Indic digits
        '"06 12 34 56 78"',
        "06 12 34 56 78;",
        "06 12 34 56 78,",
        "06\u201312\u201334\u201356\u201378",  # en dashes
    ],
)
def test_every_accepted_spelling_of_one_mobile(raw: str, path) -> None:
    assert accepted(raw, path=path) == Number("+33612345678", "mobile", True, "FR")


@BOTH_PATHS
@pytest.mark.parametrize(
    ("raw", "e164", "kind"),
    [
        ("01 72 36 01 70", "+33172360170", "fixed"),
        ("1 45 67 89 03", "+33145678903", "fixed"),  # nine digits with spaces: one number
        ("02 99 12 34 56", "+33299123456", "fixed"),
        ("05 56 12 34 56", "+33556123456", "fixed"),
        ("07 81 23 45 67", "+33781234567", "mobile"),
        ("09 48 12 34 56", "+33948123456", "voip"),
        ("948123456", "+33948123456", "voip"),
    ],
)
def test_metropolitan_types(raw: str, e164: str, kind: str, path) -> None:
    number = accepted(raw, path=path)
    assert (number.e164, number.type, number.region) == (e164, kind, "FR")
    assert number.is_mobile is (kind == "mobile")


@BOTH_PATHS
@pytest.mark.parametrize(
    ("raw", "e164", "region", "is_mobile"),
    [
        ("0262 21 34 56", "+262262213456", "RE", False),  # the examples
        ("0692 12 34 56", "+262692123456", "RE", True),
        ("0590 12 34 56", "+590590123456", "GP", False),
        ("0263 10 12 34", "+262263101234", "RE", False),
        ("0693 01 12 34", "+262693011234", "RE", True),
        ("0269 60 12 34", "+262269601234", "YT", False),
        ("0639 01 23 45", "+262639012345", "YT", True),
        ("0639 40 12 34", "+262639401234", "YT", True),
        ("0690 00 12 34", "+590690001234", "GP", True),
        ("0691 22 34 56", "+590691223456", "GP", True),
        ("0590 27 12 34", "+590590271234", "BL", False),  # Saint-Barthélemy shares 0590 and +590
        ("0594 10 12 34", "+594594101234", "GF", False),
        ("0694 20 12 34", "+594694201234", "GF", True),
        ("0596 30 12 34", "+596596301234", "MQ", False),
        ("0696 20 12 34", "+596696201234", "MQ", True),
        ("0697 12 34 56", "+596697123456", "MQ", True),
        ("0508 41 23 45", "+508412345", "PM", False),  # 0508 + six digits
        ("0508 55 12 34", "+508551234", "PM", True),
        ("0268 81 23 45", "+262268812345", "RE", False),  # beyond the list, see numbers.py
        ("0268 91 23 45", "+262268912345", "YT", False),
        ("07 09 21 23 45", "+262709212345", "RE", True),
        ("07 09 01 23 45", "+590709012345", "GP", True),
        ("07 09 11 23 45", "+596709112345", "MQ", True),
        ("07 09 30 12 34", "+594709301234", "GF", True),
        ("07 09 35 12 34", "+262709351234", "YT", True),
        ("262 21 34 56", "+262262213456", "RE", False),  # nine-digit form
        ("+33 262 21 34 56", "+262262213456", "RE", False),  # +33 then an overseas block
        ("+262 262 21 34 56", "+262262213456", "RE", False),
        ("+262692123456", "+262692123456", "RE", True),
        ("00262 692 12 34 56", "+262692123456", "RE", True),
        ("262692123456", "+262692123456", "RE", True),  # Excel-stripped "+"
        ("+262 (0)692 12 34 56", "+262692123456", "RE", True),
        ("+590 690 00 12 34", "+590690001234", "GP", True),
        ("+594 594 10 12 34", "+594594101234", "GF", False),
        ("+596 696 20 12 34", "+596696201234", "MQ", True),
        ("+508 41 23 45", "+508412345", "PM", False),
    ],
)
def test_overseas_numbers_get_their_own_country_code(
    raw: str, e164: str, region: str, is_mobile: bool, path
) -> None:
    assert accepted(raw, path=path) == Number(e164, "overseas", is_mobile, region)


@BOTH_PATHS
@pytest.mark.parametrize(
    "raw",
    [
        "0639 12 34 56",  # 0639 12… is not an allocated Mayotte block (phonenumbers 9.0.43)
        "0691 12 34 56",
        "0596 12 34 56",
        "0508 12 34 56",
        "07 00 00 00 00",
        "07 09 99 12 34",
        "+33 0 12 34 56 78",
        "33012345678",
    ],
)
def test_unallocated_ranges_are_invalid(raw: str, path) -> None:
    assert refusal_code(raw, path=path) == "invalid"


@BOTH_PATHS
@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("0800 FLOWERS", "letters"),
        ("06 12 34 56 78 poste 12", "letters"),
        ("O6 12 34 56 78", "letters"),  # capital O for zero
        ("Tél : 06 12 34 56 78", "letters"),
        ("06 12 34 56 78 x12", "letters"),
        ("06 12 34 56 7", "too_short"),  # phonenumbers calls it "possible"
        ("0612", "too_short"),
        ("6123456", "too_short"),
        ("61234567", "too_short"),
        ("+33 6 12 34 56 7", "too_short"),
        ("3361234567", "too_short"),
        ("061234567890", "too_long"),
        ("06 12 34 56 78 9", "too_long"),
        ("0612345678/0698765432", "too_long"),  # two numbers glued by a slash
        ("6123456789", "too_long"),
        ("+33 6 12 34 56 78 9", "too_long"),
        ("336123456789", "too_long"),
        ("06 12 34 56 78 #", "invalid"),
        ("++33612345678", "invalid"),
        ("06*12*34*56*78", "invalid"),
        ("---", "invalid"),
        ("0899 12 34 56", "premium"),
        ("0890 71 00 00", "premium"),
        ("0810 12 34 56", "shared_cost"),
        ("0812 34 56 78", "shared_cost"),  # phonenumbers calls 081 2… premium; the issue says 08 1x
        ("0820 12 34 56", "shared_cost"),
        ("0825 12 34 56", "shared_cost"),
        ("0836 12 34 56", "premium"),  # outside 08 0x/1x/2x/9x: phonenumbers' type decides
        ("0844 12 34 56", "shared_cost"),
        ("0800 12 34 56", "special"),
        ("0 800 123 456", "special"),
        ("0806 12 34 56", "special"),
        ("3615", "special"),
        ("3949", "special"),
        ("118 712", "special"),
        ("118218", "special"),
        ("15", "emergency"),
        ("17", "emergency"),
        ("18", "emergency"),
        ("112", "emergency"),
        ("114", "emergency"),
        ("115", "emergency"),
        ("119", "emergency"),
        ("191", "emergency"),
        ("196", "emergency"),
        ("197", "emergency"),
        ("1", "too_short"),
        ("45", "too_short"),
        ("+44 20 7946 0958", "international"),
        ("0044 20 7946 0958", "international"),
        ("+32 470 12 34 56", "international"),
        ("+687 75 12 34", "international"),  # New Caledonia dials as a foreign country
        ("+999 123 456", "invalid"),
        ("+44 20 79", "too_short"),
    ],
)
def test_refusal_codes(raw: str, code: str, path) -> None:
    assert refusal_code(raw, path=path) == code


@BOTH_PATHS
def test_international_needs_the_account_option(path) -> None:
    number = accepted("+44 20 7946 0958", path=path, allow_international=True)
    assert number == Number("+442079460958", "international", False, "GB")
    mobile = accepted("+32 470 12 34 56", path=path, allow_international=True)
    assert (mobile.e164, mobile.type, mobile.is_mobile, mobile.region) == (
        "+32470123456",
        "international",
        True,
        "BE",
    )
    # The option never makes a bad French number acceptable.
    assert refusal_code("0899 12 34 56", path=path, allow_international=True) == "premium"
    assert accepted("06 12 34 56 78", path=path, allow_international=True).type == "mobile"


def test_every_refusal_code_has_a_french_message() -> None:
    assert set(REFUSAL_MESSAGES_FR) == {
        "letters",
        "too_short",
        "too_long",
        "invalid",
        "premium",
        "shared_cost",
        "special",
        "emergency",
        "international",
    }
    assert all(message.strip() for message in REFUSAL_MESSAGES_FR.values())


@pytest.mark.parametrize(
    "raw",
    [
        "06 12 34 56 78",
        "0612345678",
        "612345678",
        "33612345678",
        "+33612345678",
        "0033612345678",
        "0692123456",
    ],
)
def test_common_shapes_take_the_fast_path(raw: str) -> None:
    assert _normalize_fast(raw, False) == normalize_reference(raw)


@pytest.mark.parametrize(
    "raw", ["+33 (0)6 12 34 56 78", "0800 FLOWERS", "3615", "+44 20 7946 0958", "٠٦١٢٣٤٥٦٧٨"]
)
def test_unusual_shapes_fall_back_to_the_full_path(raw: str) -> None:
    assert _normalize_fast(raw, False) is None
    assert normalize(raw) == normalize_reference(raw)


@pytest.mark.parametrize(
    ("e164", "style", "expected"),
    [
        ("+33612345678", "e164", "+33612345678"),
        ("+33612345678", "national", "0612345678"),
        ("+33612345678", "international00", "0033612345678"),
        ("+33612345678", "digits", "33612345678"),
        ("+262692123456", "national", "0692123456"),
        ("+590590123456", "national", "0590123456"),
        ("+508412345", "national", "0508412345"),
        ("+262692123456", "international00", "00262692123456"),
        ("+442079460958", "national", "00442079460958"),
        ("+442079460958", "digits", "442079460958"),
    ],
)
def test_format_for_trunk(e164: str, style, expected: str) -> None:
    assert format_for_trunk(e164, style) == expected


def test_format_for_trunk_round_trips_through_normalize() -> None:
    for e164 in ("+33612345678", "+262692123456", "+590590271234", "+508412345"):
        for style in ("e164", "national", "international00"):
            result = normalize(format_for_trunk(e164, style))
            assert isinstance(result, Number)
            assert result.e164 == e164


@pytest.mark.parametrize(
    ("e164", "style"), [("0612345678", "national"), ("+33 6 12", "e164"), ("+33612345678", "sip")]
)
def test_format_for_trunk_rejects_bad_input(e164: str, style) -> None:
    with pytest.raises(ValueError, match=r"E\.164|style"):
        format_for_trunk(e164, style)
