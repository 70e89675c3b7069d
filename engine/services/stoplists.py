"""Stop lists ("listes d'opposition"): an account's (its customer imports one, clear or hashed numbers;
the opt-out key and call-backs add to it) and the operator's own. A number on either is never called
again by the sends concerned, whatever their purpose (engine/store/stoplists.py)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from uuid import UUID

from engine.domain.contacts_csv import decode_text
from engine.domain.numbers import Number, normalize
from engine.domain.stoplists import Source, as_hash
from engine.store import stoplists as store
from engine.store.db import Database
from engine.store.stoplists import Entry


@dataclass(frozen=True, slots=True)
class StopListImport:
    """What an import did: numbers new on the list, lines read, and the lines that were no number."""

    added: int
    read: int
    refused: list[tuple[int, str]] = field(default_factory=list)  # (line, text)


def parse_entries(text: str) -> tuple[list[Entry], list[tuple[int, str]], int]:
    """One number per line (the first column of a CSV, ',' or ';'): a phone number in any form we read,
    or the SHA-256 of its E.164 form in hex. A header line is refused like any other non-number."""
    entries: list[Entry] = []
    refused: list[tuple[int, str]] = []
    read = 0
    for line_no, row in enumerate(csv.reader(io.StringIO(text.replace(";", ","))), start=1):
        value = row[0].strip() if row else ""
        if not value:
            continue
        read += 1
        hashed = as_hash(value)
        if hashed is not None:
            entries.append(Entry(hashed))
            continue
        number = normalize(value, allow_international=True)
        if isinstance(number, Number):
            entries.append(Entry.of(number.e164))
        else:
            refused.append((line_no, value[:100]))
    return entries, refused, read


class StopLists:
    def __init__(self, db: Database, *, stop_key: str | None = None) -> None:
        self._db = db
        self._stop_key = stop_key  # the server secret: an erased number is on the list by its keyed hash

    async def import_text(self, account_id: UUID | None, text: str, *, source: Source) -> StopListImport:
        """Add the numbers of ``text`` to the account's list (``account_id`` None: the operator's), and
        leave them out of the sends under way."""
        entries, refused, read = parse_entries(text)
        if account_id is None:
            added = await store.add_operator(self._db, entries, source=source)
        else:
            added = await store.add(self._db, account_id, entries, source=source)
        return StopListImport(added, read, refused)

    async def import_file(self, account_id: UUID, data: bytes) -> StopListImport:
        """A customer's own file (CSV or one number a line, UTF-8 or cp1252; clear or hashed numbers) onto
        the account's list (issue 18); InvalidInput ``not_csv`` when it is not text."""
        return await self.import_text(account_id, decode_text(data), source="import")

    async def remove(self, account_id: UUID, e164: str) -> bool:
        """Take a number off the account's list (the customer's decision: a new consent, a mistake)."""
        return await store.remove(self._db, account_id, e164, key=self._stop_key)
