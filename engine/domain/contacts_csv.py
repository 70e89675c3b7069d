"""Contacts CSV as Excel writes it ("CSV (séparateur: point-virgule)"): bytes in, normalised rows out.

Row numbers are the spreadsheet's row numbers (the header, when there is one, is row 1), so a customer
can find a refused row in Excel.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import sys
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

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
    # Consent to commercial automated calls (issue 18): its date, where it was given, its proof.
    "consentement": "consent_at",
    "dateconsentement": "consent_at",
    "datedeconsentement": "consent_at",
    "dateduconsentement": "consent_at",
    "consentementle": "consent_at",
    "optin": "consent_at",
    "dateoptin": "consent_at",
    "sourceconsentement": "consent_source",
    "sourceduconsentement": "consent_source",
    "origineconsentement": "consent_source",
    "origineduconsentement": "consent_source",
    "preuveconsentement": "consent_proof",
    "preuveduconsentement": "consent_proof",
    "preuve": "consent_proof",
}
CONSENT_DATE_FR: Final = (
    "Date de consentement illisible : écrivez-la JJ/MM/AAAA (ou JJ/MM/AAAA HH:MM, heure de Paris)."
)
CONSENT_WITHOUT_DATE_FR: Final = "Source ou preuve de consentement sans date de consentement."
PARIS: Final = ZoneInfo("Europe/Paris")
_CONSENT_FORMATS: Final = ("%d/%m/%Y", "%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%y", "%d-%m-%Y")
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
    consent: ImportedConsent | None = None


@dataclass(frozen=True, slots=True)
class ImportedConsent:
    """A consent given in the file (issue 18): when, where (may be ''), its proof (may be '')."""

    at: datetime
    source: str
    proof: str


def parse_consent_date(text: str) -> datetime:
    """A consent date as a French spreadsheet writes it (05/01/2026, 05/01/2026 14:30) or ISO 8601; a time
    without zone is Paris time. ValueError when it is none of these."""
    value = " ".join(text.split())
    for pattern in _CONSENT_FORMATS:
        try:
            return datetime.strptime(value, pattern).replace(tzinfo=PARIS)
        except ValueError:
            continue
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=PARIS)


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
    reader = ContactsReader(data, allow_international=allow_international)
    rows: list[ContactRow] = []
    refused: list[RefusedRow] = []
    for chunk in reader.chunks(itertools.repeat(sys.maxsize)):
        rows.extend(chunk.rows)
        refused.extend(chunk.refused)
    return ContactsFile(tuple(rows), tuple(refused), reader.has_header)


@dataclass(frozen=True, slots=True)
class ContactsChunk:
    """Consecutive rows of the file: the importable ones and the refused ones."""

    rows: tuple[ContactRow, ...]
    refused: tuple[RefusedRow, ...]


class ContactsReader:
    """A contacts CSV checked up front (encoding, header, phone column), then read and normalised in chunks.

    The checks read only as far as they need (the header, the first phone number), so an import can
    start writing the first chunk at once and write each chunk while the next one is read and normalised.
    A CSV syntax error further down surfaces with the chunk that holds it.
    """

    def __init__(self, data: bytes, *, allow_international: bool = False) -> None:
        self._reader = csv.reader(io.StringIO(_decode(data), newline=""), delimiter=";", quotechar='"')
        self._records: list[list[str]] = []
        records = self._records_from(0)
        first = next((index for index, cells in records if not _blank(cells)), None)
        if first is None:
            raise InvalidInput(
                "empty_file", "the contacts file has no rows", message_fr="Le fichier est vide."
            )
        columns = _header_columns(self._records[first])
        self.has_header = columns is not None
        bare_list = False
        if columns is None:
            columns = {name: [index] for index, name in enumerate(HEADERLESS_COLUMNS)}
            if all(_blank(cells[1:]) for _, cells in self._records_from(0)):
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
        body = (cells for _, cells in self._records_from(start))
        if not _looks_like_contacts(body, phone_columns, bare_list=bare_list):
            raise _not_csv("no row has anything like a phone number in the phone column")
        self._start = start
        self._columns = columns
        self._allow_international = allow_international

    def chunks(self, sizes: Iterable[int]) -> Iterator[ContactsChunk]:
        """The rows in file order, normalised in chunks of the given sizes (at least one row each).

        The file ends the chunks: ``sizes`` must not run out first (itertools.repeat is the usual end).
        """
        start = self._start
        for size in sizes:
            if not self._read_to(start + 1):
                return
            stop = start + max(size, 1)
            self._read_to(stop)
            stop = min(stop, len(self._records))
            yield _build(
                self._records,
                range(start, stop),
                self._columns,
                allow_international=self._allow_international,
            )
            start = stop
        raise ValueError("the chunk sizes ran out before the file")

    def _read_to(self, count: int) -> bool:
        """Read records until there are count of them; False when the file ends before."""
        records = self._records
        if len(records) < count:
            try:
                records.extend(itertools.islice(self._reader, count - len(records)))
            except csv.Error as exc:
                raise _not_csv(f"CSV syntax error: {exc}") from exc
        return len(records) >= count

    def _records_from(self, start: int) -> Iterator[tuple[int, list[str]]]:
        """(index, cells) from record start on, reading the file as far as the caller goes."""
        index = start
        while self._read_to(index + 1):
            yield index, self._records[index]
            index += 1


def _build(
    records: list[list[str]], rows_range: range, columns: dict[str, list[int]], *, allow_international: bool
) -> ContactsChunk:
    """Normalise records[rows_range]: the rows with their numbers, and the refused ones."""
    societe, nom, prenom, groupe = (
        columns.get(name, [-1])[0] for name in ("societe", "nom", "prenom", "groupe")
    )
    consent_at, consent_source, consent_proof = (
        columns.get(name, [-1])[0] for name in ("consent_at", "consent_source", "consent_proof")
    )
    first_phone, *other_phones = columns["telephone"]  # e.g. "Téléphone;Portable": the first one filled in
    rows: list[ContactRow] = []
    refused: list[RefusedRow] = []
    for index in rows_range:
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
        consent_text, source, proof = (
            cells[i].strip() if 0 <= i < width else "" for i in (consent_at, consent_source, consent_proof)
        )
        consent = None
        if consent_text:
            try:
                consent = ImportedConsent(parse_consent_date(consent_text), source, proof)
            except ValueError:
                refused.append(RefusedRow(row, "consent_date", CONSENT_DATE_FR, consent_text))
                continue
        elif source or proof:
            refused.append(RefusedRow(row, "consent_without_date", CONSENT_WITHOUT_DATE_FR, source or proof))
            continue
        rows.append(
            ContactRow(
                row,
                cells[societe].strip() if 0 <= societe < width else "",
                cells[nom].strip() if 0 <= nom < width else "",
                cells[prenom].strip() if 0 <= prenom < width else "",
                result,
                group or None,
                consent,
            )
        )
    return ContactsChunk(tuple(rows), tuple(refused))


def _blank(cells: list[str]) -> bool:
    """An empty line, or a row of empty cells (";;;;" is how Excel writes an empty row)."""
    return not "".join(cells).strip()


def decode_text(data: bytes) -> str:
    """A customer's uploaded text file as text (see _decode); InvalidInput ``not_csv`` when it is none."""
    return _decode(data)


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


def _looks_like_contacts(records: Iterable[list[str]], phone_columns: list[int], *, bare_list: bool) -> bool:
    """Whether the phone column holds phone numbers: any of them in a CSV, most of them in a bare list."""

    def has_phone(cells: list[str]) -> bool:
        return any(_looks_like_phone(cells[i]) for i in phone_columns if i < len(cells))

    if bare_list:
        phones = filled = 0
        for cells in records:
            phones += has_phone(cells)
            filled += not _blank(cells)
        return phones * 2 >= filled
    empty = True
    for cells in records:
        empty = False
        if has_phone(cells):
            return True
    return empty


def _not_csv(detail: str) -> InvalidInput:
    return InvalidInput("not_csv", detail, message_fr=NOT_CSV_FR)
