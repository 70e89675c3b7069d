"""Contacts CSV as Excel writes it ("CSV (séparateur: point-virgule)"): bytes in, normalised rows out.

Row numbers are the spreadsheet's row numbers (the header, when there is one, is row 1), so a customer
can find a refused row in Excel.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from engine.domain.numbers import Number, Refusal, normalize
from engine.errors import InvalidInput

# Column order when the file has no header row.
HEADERLESS_COLUMNS: Final = ("societe", "nom", "prenom", "telephone", "groupe")

MISSING_PHONE_FR: Final = "Numéro de téléphone manquant."
NOT_CSV_FR: Final = (
    "Ce fichier n'est pas un fichier CSV de contacts. Enregistrez-le depuis Excel au format "
    "« CSV (séparateur: point-virgule) », colonnes Société;Nom;Prénom;Téléphone;Groupe."
)

# Header names, compared without case, accents, spaces or punctuation ("Tél." → "tel").
_HEADER_NAMES: Final = {
    "societe": "societe",
    "entreprise": "societe",
    "raisonsociale": "societe",
    "nom": "nom",
    "nomdefamille": "nom",
    "prenom": "prenom",
    "groupe": "groupe",
    "groupes": "groupe",
}
_PHONE_HEADER: Final = re.compile(
    r"(?:n|no|num|numero)?(?:de)?(?:tel|telephone|portable|mobile|gsm|numero)"
    r"(?:portable|mobile|fixe|domicile|bureau|pro|perso|\d)?"
)
# C0 controls other than tab, line feed, carriage return: never in a text export, always in binaries.
_BINARY_CONTROLS: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MIN_PHONE_DIGITS: Final = 6


@dataclass(frozen=True, slots=True)
class ContactRow:
    """One imported contact; only the number is mandatory, the other fields may be empty strings."""

    row: int
    societe: str
    nom: str
    prenom: str
    number: Number
    group: str | None


@dataclass(frozen=True, slots=True)
class RefusedRow:
    """A row that cannot be imported, with the stable code and the French reason."""

    row: int
    code: str
    message_fr: str
    input: str


@dataclass(frozen=True, slots=True)
class ContactsFile:
    """The parsed file: importable rows, refused rows, and whether row 1 was a header."""

    rows: tuple[ContactRow, ...]
    refused: tuple[RefusedRow, ...]
    has_header: bool


def parse_contacts_csv(data: bytes, *, allow_international: bool = False) -> ContactsFile:
    """Parse and normalise a contacts CSV; raises InvalidInput (``not_csv``, ...) for unusable files."""
    text = _decode(data)
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=";", quotechar='"'))
    except csv.Error as exc:
        raise _not_csv(f"CSV syntax error: {exc}") from exc
    first = next((index for index, cells in enumerate(records) if not _blank(cells)), None)
    if first is None:
        raise InvalidInput("empty_file", "the contacts file has no rows", message_fr="Le fichier est vide.")

    columns = _header_columns(records[first])
    has_header = columns is not None
    bare_list = False
    if columns is None:
        columns = {name: [index] for index, name in enumerate(HEADERLESS_COLUMNS)}
        if all(_blank(cells[1:]) for cells in records):
            # A single column of numbers (maybe with trailing semicolons), or a text file without any.
            columns, bare_list = {"telephone": [0]}, True
        start = first
    else:
        start = first + 1
    phone_columns = columns.get("telephone")
    if not phone_columns:
        raise InvalidInput(
            "no_phone_column",
            "the header row has no phone column",
            message_fr="La ligne d'en-tête n'a pas de colonne Téléphone (ou Tél, Portable, Mobile).",
        )
    if not _looks_like_contacts(records[start:], phone_columns, bare_list=bare_list):
        raise _not_csv("no row has anything like a phone number in the phone column")
    rows, refused = _build(records, start, columns, phone_columns, allow_international)
    return ContactsFile(rows, refused, has_header)


def _build(
    records: list[list[str]],
    start: int,
    columns: dict[str, list[int]],
    phone_columns: list[int],
    allow_international: bool,
) -> tuple[tuple[ContactRow, ...], tuple[RefusedRow, ...]]:
    societe, nom, prenom, groupe = (
        columns.get(name, [-1])[0] for name in ("societe", "nom", "prenom", "groupe")
    )
    first_phone, *other_phones = phone_columns  # e.g. "Téléphone;Portable": the first one filled in
    rows: list[ContactRow] = []
    refused: list[RefusedRow] = []
    for index in range(start, len(records)):
        cells = records[index]
        row = index + 1
        width = len(cells)
        phone = cells[first_phone].strip() if first_phone < width else ""
        if not phone and other_phones:
            phone = next((cells[i].strip() for i in other_phones if i < width and cells[i].strip()), "")
        if not phone:
            if not _blank(cells):
                refused.append(RefusedRow(row, "missing_phone", MISSING_PHONE_FR, ""))
            continue
        result = normalize(phone, allow_international=allow_international)
        if isinstance(result, Refusal):
            refused.append(RefusedRow(row, result.code, result.message_fr, phone))
            continue
        group = cells[groupe].strip() if 0 <= groupe < width else ""
        rows.append(
            ContactRow(
                row,
                cells[societe].strip() if 0 <= societe < width else "",
                cells[nom].strip() if 0 <= nom < width else "",
                cells[prenom].strip() if 0 <= prenom < width else "",
                result,
                group or None,
            )
        )
    return tuple(rows), tuple(refused)


def _blank(cells: list[str]) -> bool:
    """An empty line, or a row of empty cells (";;;;" is how Excel writes an empty row)."""
    return not "".join(cells).strip()


def _decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) when it decodes, else cp1252, Excel's "ANSI" on French Windows."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
        candidates: tuple[str, ...] = ("utf-8",)
    else:
        candidates = ("utf-8", "cp1252")
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _BINARY_CONTROLS.search(text):
            break
        return text
    raise _not_csv("binary content or unknown text encoding")


def _header_columns(cells: list[str]) -> dict[str, list[int]] | None:
    """Column indexes by field name if these cells are a header row, else None."""
    columns: dict[str, list[int]] = {}
    for index, cell in enumerate(cells):
        folded = _fold(cell)
        name = "telephone" if _PHONE_HEADER.fullmatch(folded) else _HEADER_NAMES.get(folded)
        if name is not None:
            columns.setdefault(name, []).append(index)
    if not columns or any(_looks_like_phone(cell) for cell in cells):
        return None
    return columns


def _fold(cell: str) -> str:
    decomposed = unicodedata.normalize("NFKD", cell.casefold())
    return "".join(char for char in decomposed if char.isalnum() and not unicodedata.combining(char))


def _looks_like_phone(value: str) -> bool:
    return sum(char.isdigit() for char in value) >= _MIN_PHONE_DIGITS and not any(c.isalpha() for c in value)


def _looks_like_contacts(records: list[list[str]], phone_columns: list[int], *, bare_list: bool) -> bool:
    """Whether the phone column holds phone numbers: any of them in a CSV, most of them in a bare list."""
    values = (cells[i] for cells in records for i in phone_columns if i < len(cells))
    if bare_list:
        return sum(_looks_like_phone(value) for value in values) * 2 >= sum(not _blank(c) for c in records)
    return not records or any(_looks_like_phone(value) for value in values)


def _not_csv(detail: str) -> InvalidInput:
    return InvalidInput("not_csv", detail, message_fr=NOT_CSV_FR)
