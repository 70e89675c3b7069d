"""Property tests: any formatting of a valid number gives one E.164; the fast path equals the full path."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine.domain.numbers import (
    _OVERSEAS_PREFIXES,
    Number,
    _normalize_fast,
    normalize,
    normalize_reference,
)

# Fifteen times the profile's budget (tests/conftest.py): 1,500 examples in `make test`.
PROPERTY = settings(max_examples=15 * settings().max_examples)

SEPARATORS = st.sampled_from([" ", " ", ".", "-", "/", "", "\u00a0", "\u202f", "\t", "  ", " - "])
DIGIT = st.sampled_from("0123456789")

# Five-digit starts of allocated overseas blocks (phonenumbers 9.0.43), so that most draws are valid.
OVERSEAS_STARTS = [
    "26221",
    "26310",
    "69212",
    "69301",
    "26960",
    "63901",
    "63940",
    "59012",
    "69000",
    "69122",
    "59027",
    "59410",
    "69420",
    "59630",
    "69620",
    "69712",
    "26881",
    "26891",
    "70921",
    "70901",
    "70911",
    "70930",
    "70935",
]
OVERSEAS_COUNTRY = {"RE": "262", "YT": "262", "GP": "590", "GF": "594", "MQ": "596", "PM": "508"}


def digits(count: int) -> st.SearchStrategy[str]:
    return st.lists(DIGIT, min_size=count, max_size=count).map("".join)


@st.composite
def spaced(draw: st.DrawFn, head: str, body: str) -> str:
    """Write ``head`` then ``body`` with random separators cut into the digits."""
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(body) - 1)), max_size=6))) if len(body) > 1 else []
    pieces, start = [], 0
    for cut in [*cuts, len(body)]:
        pieces.append(body[start:cut])
        start = cut
    text = pieces[0]
    for piece in pieces[1:]:
        text += draw(SEPARATORS) + piece
    gap = draw(st.sampled_from(["", " ", ".", "\u00a0"])) if head else ""
    return draw(st.sampled_from(["", " ", "  "])) + head + gap + text + draw(st.sampled_from(["", " ", "\t"]))


metropolitan_nsn = st.builds(lambda first, rest: first + rest, st.sampled_from("123456799"), digits(8))
overseas_nsn = st.builds(lambda start, rest: start + rest, st.sampled_from(OVERSEAS_STARTS), digits(4))
saint_pierre_nsn = st.builds(
    lambda start, rest: "508" + start + rest, st.sampled_from(["41", "55"]), digits(4)
)
valid_nsn = st.one_of(metropolitan_nsn, overseas_nsn, saint_pierre_nsn)


@st.composite
def formatted_valid_number(draw: st.DrawFn) -> tuple[str, Number]:
    nsn = draw(valid_nsn)
    canonical = normalize_reference("0" + nsn)
    assume(isinstance(canonical, Number))
    assert isinstance(canonical, Number)
    heads: list[tuple[str, str]] = [
        ("0", nsn),
        ("", nsn),
        ("+33", nsn),
        ("+33 (0)", nsn),
        ("+33", "0" + nsn),
        ("0033", nsn),
        ("0033 (0)", nsn),
        ("33", nsn),
        ("(0)", nsn),
    ]
    if canonical.type == "overseas":
        country = OVERSEAS_COUNTRY.get(canonical.region, "590")
        national = canonical.e164[1 + len(country) :]
        heads += [(f"+{country}", national), (f"00{country}", national), (f"+{country} (0)", national)]
    head, body = draw(st.sampled_from(heads))
    return draw(spaced(head, body)), canonical


@PROPERTY
@given(formatted_valid_number())
def test_any_formatting_of_a_valid_number_gives_the_same_e164(case: tuple[str, Number]) -> None:
    raw, canonical = case
    assert normalize(raw) == canonical
    assert normalize_reference(raw) == canonical


# Digit strings of every shape the issue lists, right and wrong lengths included.
any_body = st.one_of(
    metropolitan_nsn,
    overseas_nsn,
    saint_pierre_nsn,
    st.builds(lambda prefix, rest: prefix + rest, st.sampled_from(sorted(_OVERSEAS_PREFIXES)), digits(4)),
    st.builds(lambda second, rest: "8" + second + rest, DIGIT, digits(7)),
    st.integers(0, 14).flatmap(digits),
    st.builds(lambda body, extra: body + extra, metropolitan_nsn, st.integers(1, 3).flatmap(digits)),
    st.builds(lambda body, cut: body[:cut], metropolitan_nsn, st.integers(1, 8)),
)
any_head = st.sampled_from(
    [
        "",
        "",
        "0",
        "0",
        "+33",
        "0033",
        "33",
        "+33 (0)",
        "+330",
        "+262",
        "+590",
        "+594",
        "+596",
        "+508",
        "00262",
        "262",
    ]
)
noise = st.sampled_from(["", "", "", "", "#", "a", "+", "*", ";", "(", "é", "\u0663"])


@st.composite
def any_shape(draw: st.DrawFn) -> str:
    text = draw(spaced(draw(any_head), draw(any_body)))
    position = draw(st.integers(0, len(text)))
    return text[:position] + draw(noise) + text[position:]


@PROPERTY
@given(any_shape(), st.booleans())
def test_fast_path_equals_full_path(raw: str, allow_international: bool) -> None:
    assert normalize(raw, allow_international=allow_international) == normalize_reference(
        raw, allow_international=allow_international
    )


@PROPERTY
@given(
    st.one_of(metropolitan_nsn, overseas_nsn, saint_pierre_nsn),
    st.sampled_from(["0", "", "+33", "0033", "33"]),
)
def test_fast_path_takes_the_common_shapes(nsn: str, head: str) -> None:
    raw = head + " ".join(nsn[i : i + 2] for i in range(0, 9, 2))
    fast = _normalize_fast(raw, False)
    assert fast is not None
    assert fast == normalize_reference(raw)


def test_every_overseas_and_tariff_block_agrees_on_both_paths() -> None:
    """Deterministic sweep: each five-digit block where the range tables are finest, both paths agree."""
    heads = {prefix[:3] for prefix in _OVERSEAS_PREFIXES} | {"836", "808", "809", "700", "639"}
    checked = 0
    for head in sorted(heads):
        for block in range(100):
            for tail in ("0000", "5555", "9999"):
                nsn = f"{head}{block:02d}{tail}"
                for raw in ("0" + nsn, "+33" + nsn):
                    assert normalize(raw) == normalize_reference(raw), raw
                    checked += 1
    assert checked == len(heads) * 100 * 3 * 2


def test_every_three_digit_block_agrees_on_both_paths() -> None:
    for head in range(100, 1000):
        for tail in ("000000", "123456", "999999"):
            raw = f"0{head}{tail}"
            assert normalize(raw) == normalize_reference(raw), raw
