"""A contacts CSV made ready for the import: the file read, normalised and merged, chunk by chunk, into
COPY data for the store (engine.store.contacts_import), and the frames that carry it from the worker
process that does this CPU-bound work (engine.contacts_worker) to the importing one.
"""

from __future__ import annotations

import csv
import io
import json
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from engine.domain.contacts import clean_field, clean_group_name, search_key
from engine.domain.contacts_csv import ContactsReader, RefusedRow
from engine.errors import InvalidInput

CONTACT_COLUMNS: Final = (
    "societe", "nom", "prenom", "societe_key", "nom_key", "prenom_key", "e164", "number_type", "is_mobile"
)  # fmt: skip
MEMBERSHIP_COLUMNS: Final = ("e164", "name_key")
# Rows of the file per chunk, at most: the database writes one while the worker prepares the following
# ones (chunk_sizes: smaller chunks first).
ROWS_PER_CHUNK: Final = 32_000


@dataclass(frozen=True, slots=True)
class ImportChunk:
    """Consecutive rows of the file ready for COPY (CSV, every field quoted: '' stays '', not NULL)."""

    contacts_csv: bytes  # one line per distinct number of the chunk: CONTACT_COLUMNS
    memberships_csv: bytes  # one line per distinct (number, group key) of the chunk: MEMBERSHIP_COLUMNS
    new_groups: dict[str, str]  # groups first met in this chunk: key → the name as first written
    # Some numbers were already in an earlier chunk: their contact exists by now and gets this chunk's
    # fields as an update, exactly as a merge in memory would have given them.
    repeats: bool
    # Consents given in the file (issue 18), the last row's for a number: (e164, ISO date, source, proof).
    consents: tuple[tuple[str, str, str, str], ...] = ()


class ImportPreparer:
    """The file as a sequence of ImportChunks, one per call (CPU-bound: the worker process makes the calls).

    Rows sharing a number are merged: a later row's non-empty société, nom or prénom replaces the earlier
    one, as a second import would; the groups of all the rows are joined. Calls must not overlap.
    """

    def __init__(
        self, data: bytes, *, allow_international: bool, rows_per_chunk: int = ROWS_PER_CHUNK
    ) -> None:
        reader = ContactsReader(data, allow_international=allow_international)
        self._chunks = reader.chunks(chunk_sizes(rows_per_chunk))
        self._numbers: set[str] = set()
        self._groups: set[str] = set()
        # Sociétés, prénoms and groups repeat across rows: each distinct cell is cleaned and folded once
        # (raw cell → the value as stored, its search key; the three fields share one length limit).
        self._fields: dict[str, tuple[str, str]] = {}
        self._group_names: dict[str, tuple[str, str]] = {}
        self._refused: list[RefusedRow] = []
        self.duplicates = 0

    @property
    def numbers(self) -> int:
        """Distinct numbers met so far."""
        return len(self._numbers)

    @property
    def refused(self) -> tuple[RefusedRow, ...]:
        return tuple(sorted(self._refused, key=lambda entry: entry.row))

    def next_chunk(self) -> ImportChunk | None:
        chunk = next(self._chunks, None)
        if chunk is None:
            return None
        self._refused.extend(chunk.refused)
        contacts: dict[str, list[str]] = {}  # e164 → the COPY fields; dicts keep the file order
        new_groups: dict[str, str] = {}
        memberships: dict[tuple[str, str], None] = {}
        consents: dict[str, tuple[str, str, str, str]] = {}
        repeats = False
        fields, group_names = self._fields, self._group_names
        for row in chunk.rows:
            try:
                societe, societe_key = fields.get(row.societe) or self._field(row.societe, "societe")
                nom, nom_key = fields.get(row.nom) or self._field(row.nom, "nom")
                prenom, prenom_key = fields.get(row.prenom) or self._field(row.prenom, "prenom")
                group = None
                if row.group is not None:
                    group = group_names.get(row.group) or self._group_name(row.group)
            except InvalidInput as exc:
                self._refused.append(RefusedRow(row.row, exc.code, exc.message_fr, row.number.e164))
                continue
            number = row.number
            e164 = number.e164
            known = contacts.get(e164)
            if known is None:
                if e164 in self._numbers:
                    self.duplicates += 1
                    repeats = True
                else:
                    self._numbers.add(e164)
                contacts[e164] = [
                    societe,
                    nom,
                    prenom,
                    societe_key,
                    nom_key,
                    prenom_key,
                    e164,
                    number.type,
                    "t" if number.is_mobile else "f",
                ]
            else:
                self.duplicates += 1
                for index, (value, key) in enumerate(
                    ((societe, societe_key), (nom, nom_key), (prenom, prenom_key))
                ):
                    if value:
                        known[index], known[index + 3] = value, key
            if row.consent is not None:
                given = row.consent
                consents[e164] = (e164, given.at.isoformat(), given.source, given.proof)
            if group is not None:
                name, group_key = group
                if group_key not in self._groups:
                    self._groups.add(group_key)
                    new_groups[group_key] = name
                memberships[e164, group_key] = None
        return ImportChunk(
            contacts_csv=_csv(contacts.values()),
            memberships_csv=_csv(memberships),
            new_groups=new_groups,
            repeats=repeats,
            consents=tuple(consents.values()),
        )

    def _field(self, raw: str, field: str) -> tuple[str, str]:
        """A société, nom or prénom as stored and its search key (InvalidInput as clean_field)."""
        value = clean_field(raw, field)
        entry = self._fields[raw] = (value, search_key(value))
        return entry

    def _group_name(self, raw: str) -> tuple[str, str]:
        name = clean_group_name(raw)
        entry = self._group_names[raw] = (name, search_key(name))
        return entry


def chunk_sizes(rows_per_chunk: int) -> Iterator[int]:
    """Rows per chunk: a small first chunk (the database starts writing early), then chunks that grow
    while the database is busy with the earlier ones, up to rows_per_chunk.

    PostgreSQL writes a row in ~1.5 times what the worker takes to prepare it: the chunk after S
    rows may hold S / 2 more rows (plus the first chunk's head start) and still be ready when the
    database wants it. 100,000 rows, 32,000 at most: 2,000, 3,000, 4,500 ... 22,781, 32,000, 32,000.
    """
    first = max(rows_per_chunk // 16, 1)
    size, written = first, 0
    while True:
        yield size
        written += size
        size = min(rows_per_chunk, first + written // 2)


def prepare_import(data: bytes, *, allow_international: bool) -> list[ImportChunk]:
    """The whole file's chunks at once, in this process (an import has a worker process do it)."""
    preparer = ImportPreparer(data, allow_international=allow_international)
    return list(iter(preparer.next_chunk, None))


def _csv(rows: Iterable[Iterable[object]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the preparation counted, once every chunk is out."""

    numbers: int  # distinct numbers
    duplicates: int  # rows merged into an earlier row with the same number
    refused: tuple[RefusedRow, ...]  # by row


# --- frames: the worker process's output --------------------------------------------------------------
# A frame: the length of a JSON header (4 bytes, big-endian), the header, then the blobs it announces.
#   {"kind": "chunk", "contacts": n, "memberships": m, "new_groups": {...}, "repeats": bool} + n + m bytes
#   {"kind": "end", "numbers": ..., "duplicates": ..., "refused": [[row, code, message_fr, input], ...]}
#   {"kind": "invalid", "code": ..., "detail": ..., "message_fr": ...}   the file is refused
#   {"kind": "error", "detail": "<traceback>"}                            a bug: the import fails
FRAME_HEADER: Final = struct.Struct(">I")


def frame(header: dict[str, Any], *blobs: bytes) -> bytes:
    encoded = json.dumps(header, ensure_ascii=False).encode()
    return b"".join((FRAME_HEADER.pack(len(encoded)), encoded, *blobs))


def chunk_frame(chunk: ImportChunk) -> bytes:
    header = {
        "kind": "chunk",
        "contacts": len(chunk.contacts_csv),
        "memberships": len(chunk.memberships_csv),
        "new_groups": chunk.new_groups,
        "repeats": chunk.repeats,
        "consents": chunk.consents,
    }
    return frame(header, chunk.contacts_csv, chunk.memberships_csv)


def end_frame(preparer: ImportPreparer) -> bytes:
    refused = [[r.row, r.code, r.message_fr, r.input] for r in preparer.refused]
    return frame(
        {"kind": "end", "numbers": preparer.numbers, "duplicates": preparer.duplicates, "refused": refused}
    )


def refusal_frame(refusal: InvalidInput) -> bytes:
    return frame(
        {"kind": "invalid", "code": refusal.code, "detail": str(refusal), "message_fr": refusal.message_fr}
    )


def error_frame(detail: str) -> bytes:
    return frame({"kind": "error", "detail": detail})


def chunk_from(header: dict[str, Any], contacts_csv: bytes, memberships_csv: bytes) -> ImportChunk:
    return ImportChunk(
        contacts_csv=contacts_csv,
        memberships_csv=memberships_csv,
        new_groups=dict(header["new_groups"]),
        repeats=bool(header["repeats"]),
        consents=tuple((e, at, src, proof) for e, at, src, proof in header.get("consents", ())),
    )


def prepared_from(header: dict[str, Any]) -> Prepared:
    return Prepared(
        numbers=int(header["numbers"]),
        duplicates=int(header["duplicates"]),
        refused=tuple(RefusedRow(int(row), code, fr, text) for row, code, fr, text in header["refused"]),
    )


def refusal_from(header: dict[str, Any]) -> InvalidInput:
    return InvalidInput(header["code"], header["detail"], message_fr=header["message_fr"])
