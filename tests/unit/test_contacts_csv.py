"""Contacts CSV as Excel writes it: encodings, line ends, quoting, headers, refusals, unusable files."""

from __future__ import annotations

import codecs
import zipfile
from io import BytesIO

import pytest

from engine.domain.contacts_csv import parse_contacts_csv
from engine.errors import InvalidInput


def excel_export(
    rows: list[list[str]], *, encoding: str = "cp1252", bom: bool = False, eol: str = "\r\n"
) -> bytes:
    """What Excel's "CSV (séparateur: point-virgule)" writes: ';', quotes only where needed, CRLF."""

    def cell(value: str) -> str:
        if any(char in value for char in ';"\r\n'):
            return '"' + value.replace('"', '""') + '"'
        return value

    text = "".join(";".join(cell(value) for value in row) + eol for row in rows)
    return (codecs.BOM_UTF8 if bom else b"") + text.encode(encoding)


ROWS = [
    ["Société", "Nom", "Prénom", "Téléphone", "Groupe"],
    ["Boulangerie Lefèvre", "Lefèvre", "Hélène", "06 12 34 56 78", "Clients fidèles"],
    ["Garage de l'Étang; SARL", "Müller", "Jérôme", "01.72.36.01.70", ""],
    ["", "Dupré", "Zoé", "612345679", "Équipe « été »"],
]


def summary(data: bytes) -> list[tuple[int, str, str, str, str, str | None]]:
    parsed = parse_contacts_csv(data)
    return [(r.row, r.societe, r.nom, r.prenom, r.number.e164, r.group) for r in parsed.rows]


EXPECTED = [
    (2, "Boulangerie Lefèvre", "Lefèvre", "Hélène", "+33612345678", "Clients fidèles"),
    (3, "Garage de l'Étang; SARL", "Müller", "Jérôme", "+33172360170", None),
    (4, "", "Dupré", "Zoé", "+33612345679", "Équipe « été »"),
]


@pytest.mark.parametrize(
    ("encoding", "bom", "eol"),
    [("cp1252", False, "\r\n"), ("cp1252", False, "\n"), ("utf-8", True, "\r\n"), ("utf-8", False, "\n")],
    ids=["cp1252-crlf", "cp1252-lf", "utf8-bom-crlf", "utf8-lf"],
)
def test_excel_exports_in_every_encoding_and_line_end(encoding: str, bom: bool, eol: str) -> None:
    data = excel_export(ROWS, encoding=encoding, bom=bom, eol=eol)
    assert summary(data) == EXPECTED
    assert parse_contacts_csv(data).has_header


def test_cp1252_bytes_really_are_cp1252() -> None:
    data = excel_export(ROWS)
    assert b"Lef\xe8vre" in data  # è in cp1252, not UTF-8
    assert b"\xab" in data  # «


def test_header_in_any_order_case_and_accents_with_extra_columns() -> None:
    rows = [
        ["TEL.", "groupe", "PRENOM", "E-mail", "nom", "SOCIETE"],
        ["06 12 34 56 78", "Clients", "Hélène", "h@example.fr", "Lefèvre", "ACME"],
    ]
    parsed = parse_contacts_csv(excel_export(rows))
    assert parsed.has_header
    (row,) = parsed.rows
    assert (row.row, row.societe, row.nom, row.prenom, row.number.e164, row.group) == (
        2,
        "ACME",
        "Lefèvre",
        "Hélène",
        "+33612345678",
        "Clients",
    )


@pytest.mark.parametrize(
    "name", ["Téléphone", "Tél", "Tél.", "tel", "Portable", "MOBILE", "Numéro de téléphone"]
)
def test_phone_header_names(name: str) -> None:
    parsed = parse_contacts_csv(excel_export([["Nom", name], ["Martin", "0612345678"]]))
    assert [r.number.e164 for r in parsed.rows] == ["+33612345678"]
    assert parsed.rows[0].nom == "Martin"


def test_second_phone_column_is_used_when_the_first_is_empty() -> None:
    rows = [
        ["Nom", "Téléphone", "Portable"],
        ["A", "01 72 36 01 70", "06 12 34 56 78"],
        ["B", "", "0612345679"],
    ]
    parsed = parse_contacts_csv(excel_export(rows))
    assert [r.number.e164 for r in parsed.rows] == ["+33172360170", "+33612345679"]


def test_without_header_the_order_is_societe_nom_prenom_telephone_groupe() -> None:
    data = excel_export(ROWS[1:])
    parsed = parse_contacts_csv(data)
    assert not parsed.has_header
    assert [(r.row, r.societe, r.number.e164, r.group) for r in parsed.rows] == [
        (1, "Boulangerie Lefèvre", "+33612345678", "Clients fidèles"),
        (2, "Garage de l'Étang; SARL", "+33172360170", None),
        (3, "", "+33612345679", "Équipe « été »"),
    ]


def test_empty_lines_empty_rows_and_trailing_semicolons() -> None:
    text = (
        "Société;Nom;Prénom;Téléphone;Groupe;;\r\n"
        "\r\n"
        ";;;;;;\r\n"
        "ACME;Martin;Paul;06 12 34 56 78;;;\r\n"
        ";Durand;;0612345679\r\n"
        "\r\n"
    ).encode("cp1252")
    parsed = parse_contacts_csv(text)
    assert [(r.row, r.nom, r.number.e164, r.group) for r in parsed.rows] == [
        (4, "Martin", "+33612345678", None),
        (5, "Durand", "+33612345679", None),
    ]
    assert parsed.refused == ()


def test_quoted_fields_with_semicolons_quotes_and_line_breaks_keep_excel_row_numbers() -> None:
    rows = [
        ["Société", "Nom", "Prénom", "Téléphone"],
        ['Les "Trois; Frères"', "Nom\r\nsur deux lignes", "Léa", "06 12 34 56 78"],
        ["B", "Petit", "Jean", "0612345679"],
    ]
    parsed = parse_contacts_csv(excel_export(rows))
    assert [(r.row, r.societe, r.nom) for r in parsed.rows] == [
        (2, 'Les "Trois; Frères"', "Nom\r\nsur deux lignes"),
        (3, "B", "Petit"),
    ]


def test_refused_rows_carry_row_number_code_and_french_reason() -> None:
    rows = [
        ["Nom", "Téléphone"],
        ["ok", "06 12 34 56 78"],
        ["lettres", "06 12 34 56 78 poste 12"],
        ["court", "06 12 34"],
        ["surtaxé", "0899 12 34 56"],
        ["vide", ""],
        ["étranger", "+44 20 7946 0958"],
        ["Excel scientifique", "3,36123E+10"],  # Excel rewrote a long number: lossy, refused
    ]
    parsed = parse_contacts_csv(excel_export(rows))
    assert [r.row for r in parsed.rows] == [2]
    assert [(r.row, r.code, r.input) for r in parsed.refused] == [
        (3, "letters", "06 12 34 56 78 poste 12"),
        (4, "too_short", "06 12 34"),
        (5, "premium", "0899 12 34 56"),
        (6, "missing_phone", ""),
        (7, "international", "+44 20 7946 0958"),
        (8, "letters", "3,36123E+10"),
    ]
    assert all(r.message_fr for r in parsed.refused)
    international = parse_contacts_csv(excel_export(rows), allow_international=True)
    assert "+442079460958" in {r.number.e164 for r in international.rows}


def test_a_single_column_of_numbers_is_a_valid_file() -> None:
    parsed = parse_contacts_csv(b"06 12 34 56 78\r\n0612345679;\r\n612345680;;\r\n0800 FLOWERS\r\n")
    assert [r.number.e164 for r in parsed.rows] == ["+33612345678", "+33612345679", "+33612345680"]
    assert [(r.row, r.code) for r in parsed.refused] == [(4, "letters")]
    assert all((r.societe, r.nom, r.prenom, r.group) == ("", "", "", None) for r in parsed.rows)


def test_duplicates_inside_the_file_are_all_returned_for_the_store_to_merge() -> None:
    rows = [["Nom", "Téléphone", "Groupe"], ["A", "0612345678", "G1"], ["A", "06 12 34 56 78", "G2"]]
    parsed = parse_contacts_csv(excel_export(rows))
    assert [(r.number.e164, r.group) for r in parsed.rows] == [("+33612345678", "G1"), ("+33612345678", "G2")]


def _xlsx() -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        _xlsx(),  # the .xlsx itself instead of a CSV export
        bytes(range(256)) * 4,
        b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x01" * 40,
        "Société\tNom\tTéléphone\r\nACME\tMartin\t0612345678\r\n".encode("utf-16"),  # Excel "Texte Unicode"
        b"Bonjour,\nceci est une lettre et pas une liste de contacts.\nCordialement.\n",
        b"def main():\n    return 0; # not contacts\n",
        b"Dupont,Jean,0612345678\nMartin,Paul,0612345679\n",  # comma-separated: not Excel's French CSV
    ],
    ids=["xlsx", "random-bytes", "png", "utf16", "prose", "source-code", "comma-csv"],
)
def test_not_a_csv_is_refused_with_a_clear_error(data: bytes) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_contacts_csv(data)
    assert raised.value.code == "not_csv"
    assert "CSV" in raised.value.message_fr


def test_header_without_phone_column() -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_contacts_csv(excel_export([["Société", "Nom", "Prénom"], ["ACME", "Martin", "Paul"]]))
    assert raised.value.code == "no_phone_column"
    assert "Téléphone" in raised.value.message_fr


@pytest.mark.parametrize("data", [b"", b"\r\n\r\n", b";;;;\r\n;;\r\n", codecs.BOM_UTF8])
def test_empty_file(data: bytes) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_contacts_csv(data)
    assert raised.value.code == "empty_file"


def test_header_only_file_imports_nothing() -> None:
    parsed = parse_contacts_csv(b"Soci\xe9t\xe9;Nom;Pr\xe9nom;T\xe9l\xe9phone;Groupe\r\n")
    assert parsed.has_header
    assert (parsed.rows, parsed.refused) == ((), ())


def test_a_hundred_thousand_rows() -> None:
    lines = ["Société;Nom;Prénom;Téléphone;Groupe"]
    for i in range(100_000):
        phone = f"06 {i // 1_000_000 + 12:02d} {i // 10_000 % 100:02d} {i // 100 % 100:02d} {i % 100:02d}"
        lines.append(f"Société {i % 50};Lefèvre{i};Hélène;{phone};Groupe {i % 7}")
    lines.append("Dernière;Ligne;Fausse;0800 FLOWERS;")
    parsed = parse_contacts_csv("\r\n".join(lines).encode("cp1252"))
    assert len(parsed.rows) == 100_000
    assert len({r.number.e164 for r in parsed.rows}) == 100_000
    assert parsed.rows[-1].row == 100_001
    assert parsed.rows[-1].nom == "Lefèvre99999"
    assert [(r.row, r.code) for r in parsed.refused] == [(100_002, "letters")]
