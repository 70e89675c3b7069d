"""Pasted lists: separators, blank entries, per-line report, duplicates, the size limit."""

from __future__ import annotations

import pytest

from engine.domain.recipients import DEFAULT_MAX_NUMBERS, parse_paste
from engine.errors import InvalidInput


def test_one_number_per_line_in_any_format() -> None:
    report = parse_paste("06 12 34 56 78\n01.72.36.01.70\n612345679\n+33 6 12 34 56 80\n")
    assert [n.e164 for n in report.numbers] == [
        "+33612345678",
        "+33172360170",
        "+33612345679",
        "+33612345680",
    ]
    assert [entry.line for entry in report.lines] == [1, 2, 3, 4]
    assert report.refused == ()
    assert report.duplicates == ()


def test_spaces_inside_a_number_are_not_separators() -> None:
    report = parse_paste("1 45 67 89 03")
    assert [n.e164 for n in report.numbers] == ["+33145678903"]
    assert report.lines[0].input == "1 45 67 89 03"


def test_semicolons_commas_and_tabs_separate_numbers_on_one_line() -> None:
    report = parse_paste("06 12 34 56 78; 06 12 34 56 79,0612345680\t06 12 34 56 81")
    assert [n.e164 for n in report.numbers] == [
        "+33612345678",
        "+33612345679",
        "+33612345680",
        "+33612345681",
    ]
    assert {entry.line for entry in report.lines} == {1}


def test_blank_lines_and_empty_entries_are_skipped_but_line_numbers_stay_true() -> None:
    report = parse_paste("\n\n06 12 34 56 78\r\n   \r\n;;\t,\n0612345679\n\n")
    assert [(entry.line, entry.input) for entry in report.lines] == [(3, "06 12 34 56 78"), (6, "0612345679")]


def test_refusals_are_reported_with_their_code_and_french_reason() -> None:
    report = parse_paste("06 12 34 56 78\n0800 FLOWERS\n0899 12 34 56\n112\n+44 20 7946 0958")
    refused = {entry.line: entry.refusal for entry in report.refused}
    assert {line: r.code for line, r in refused.items() if r} == {
        2: "letters",
        3: "premium",
        4: "emergency",
        5: "international",
    }
    assert all(r and r.message_fr for r in refused.values())
    assert [n.e164 for n in report.numbers] == ["+33612345678"]


def test_international_numbers_need_the_option() -> None:
    report = parse_paste("+44 20 7946 0958", allow_international=True)
    assert [(n.e164, n.type) for n in report.numbers] == [("+442079460958", "international")]


def test_duplicates_collapse_to_the_first_occurrence() -> None:
    report = parse_paste("06 12 34 56 78\n0612345679\n+33 6 12 34 56 78\n612345678;0612345679")
    assert [n.e164 for n in report.numbers] == ["+33612345678", "+33612345679"]
    assert [(entry.line, entry.duplicate_of) for entry in report.duplicates] == [(3, 1), (4, 1), (4, 2)]
    assert all(entry.number is not None and not entry.accepted for entry in report.duplicates)
    assert [entry.accepted for entry in report.lines] == [True, True, False, False, False]


def test_overseas_numbers_are_french_and_kept() -> None:
    report = parse_paste("0262 21 34 56\n0692 12 34 56\n+262 692 12 34 56")
    assert [(n.e164, n.type) for n in report.numbers] == [
        ("+262262213456", "overseas"),
        ("+262692123456", "overseas"),
    ]
    assert report.lines[2].duplicate_of == 2


def test_the_limit_counts_distinct_accepted_numbers() -> None:
    numbers = [f"06{i:08d}" for i in range(12_000_000, 12_000_010)]
    # Refusals and duplicates do not count towards the limit.
    text = "\n".join([*numbers, *numbers, "0800 FLOWERS", "112"])
    assert len(parse_paste(text, max_numbers=10).numbers) == 10
    with pytest.raises(InvalidInput) as raised:
        parse_paste(text + "\n0612345678", max_numbers=10)
    assert raised.value.code == "too_many"
    assert "10" in raised.value.message_fr


def test_default_limit_is_ten_thousand() -> None:
    assert DEFAULT_MAX_NUMBERS == 10_000
    ten_thousand = "\n".join(f"06{i:08d}" for i in range(12_000_000, 12_010_000))
    report = parse_paste(ten_thousand)
    assert len(report.numbers) == 10_000
    with pytest.raises(InvalidInput) as raised:
        parse_paste(ten_thousand + "\n0798765432")
    assert raised.value.code == "too_many"
    assert (
        raised.value.message_fr
        == "Trop de numéros : un envoi accepte au plus 10\u00a0000 numéros différents."
    )


def test_empty_paste_gives_an_empty_report() -> None:
    report = parse_paste(" \n\n")
    assert report.lines == ()
    assert report.numbers == ()
