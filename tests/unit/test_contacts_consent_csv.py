"""Consent columns of the contacts CSV (issue 18): which headers, which date forms, which rows refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.domain.contacts_csv import parse_consent_date, parse_contacts_csv


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("05/01/2026", datetime(2026, 1, 4, 23, 0, tzinfo=UTC)),  # Paris midnight, winter
        ("05/07/2026 14:30", datetime(2026, 7, 5, 12, 30, tzinfo=UTC)),  # summer time
        (" 05/01/2026  14:30:15 ", datetime(2026, 1, 5, 13, 30, 15, tzinfo=UTC)),
        ("05/01/26", datetime(2026, 1, 4, 23, 0, tzinfo=UTC)),
        ("2026-01-05", datetime(2026, 1, 4, 23, 0, tzinfo=UTC)),
        ("2026-01-05T10:00:00+00:00", datetime(2026, 1, 5, 10, 0, tzinfo=UTC)),
    ],
)
def test_consent_dates_in_french_or_iso_form(text: str, utc: datetime) -> None:
    assert parse_consent_date(text) == utc


@pytest.mark.parametrize("text", ["31/02/2026", "demain", "2026-13-01", "5 janvier 2026"])
def test_unreadable_consent_dates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_consent_date(text)


def test_consent_headers_are_read_in_any_spelling() -> None:
    data = (
        "Téléphone;CONSENTEMENT;Origine du consentement;Preuve du consentement\r\n"
        "0612345678;05/01/2026;salon;bulletin signé\r\n"
        "0698765432;;;\r\n"
        "0611111111;;;une preuve sans date\r\n"
    ).encode("cp1252")
    parsed = parse_contacts_csv(data)
    first, second = parsed.rows
    assert first.consent is not None
    assert (first.consent.at, first.consent.source, first.consent.proof) == (
        datetime(2026, 1, 4, 23, 0, tzinfo=UTC),
        "salon",
        "bulletin signé",
    )
    assert second.consent is None
    assert [(r.row, r.code, r.input) for r in parsed.refused] == [
        (4, "consent_without_date", "une preuve sans date")
    ]
