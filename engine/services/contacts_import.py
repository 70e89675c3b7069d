"""Importing a contacts CSV (onglet « Transfert »): prepared in a worker process, written in one transaction.

The file is checked as a whole, then normalised, merged and turned into COPY data chunk by chunk by a
process of its own (engine.contacts_worker), while the store writes the previous chunk in the import's
transaction (engine.store.contacts_import): the database and the preparation run side by side, and the
event loop only ships bytes. A failure anywhere imports nothing.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import structlog

from engine.domain.contacts_csv import RefusedRow
from engine.domain.contacts_import import (
    FRAME_HEADER,
    ROWS_PER_CHUNK,
    ImportChunk,
    ImportPreparer,
    Prepared,
    chunk_from,
    prepare_import,
    prepared_from,
    refusal_from,
)
from engine.errors import InvalidInput
from engine.settings import PROJECT_ROOT
from engine.store.contacts_import import NumberTakenMeanwhile, import_writer
from engine.store.db import Database

# What callers (the bench, the tests) import from here along with import_contacts_csv.
__all__ = [
    "MAX_IMPORT_BYTES",
    "ROWS_PER_CHUNK",
    "ImportChunk",
    "ImportPreparer",
    "ImportReport",
    "import_contacts_csv",
    "prepare_import",
    "report_json",
]

log = structlog.get_logger(__name__)

# About 500,000 rows of a typical export; bounds the memory one upload may take.
MAX_IMPORT_BYTES: Final = 32 * 1024 * 1024
# What the worker process runs (python -m ...).
_WORKER_MODULE: Final = "engine.contacts_worker"


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did: rows refused, contacts created, existing contacts met (updated, never doubled)."""

    imported: int  # new contacts
    updated: int  # rows whose number was already a contact: its non-empty fields were written to it
    refused: tuple[RefusedRow, ...]
    groups_created: int
    duplicates_in_file: int  # rows merged into an earlier row with the same number
    memberships_added: int = 0


async def import_contacts_csv(
    db: Database,
    account_id: UUID,
    data: bytes,
    *,
    allow_international: bool,
    rows_per_chunk: int = ROWS_PER_CHUNK,
) -> ImportReport:
    """Import an Excel CSV into the account's contacts; InvalidInput (``not_csv``, ...) imports nothing.

    The result never depends on rows_per_chunk (tests make it tiny to cross chunk boundaries).
    """
    if len(data) > MAX_IMPORT_BYTES:
        raise InvalidInput(
            "file_too_large",
            f"contacts file of {len(data)} bytes, at most {MAX_IMPORT_BYTES}",
            message_fr=f"Fichier trop volumineux ({MAX_IMPORT_BYTES // (1024 * 1024)} Mo au plus).",
        )
    try:
        report = await _import(db, account_id, data, allow_international, rows_per_chunk, plain_inserts=True)
    except NumberTakenMeanwhile:
        # A number of the file became a contact of the account (by hand) while it was being imported
        # into an account that had none: nothing was written; again, merging into existing contacts.
        log.info("contacts.import_restarted", account_id=str(account_id), reason="number_created_meanwhile")
        report = await _import(db, account_id, data, allow_international, rows_per_chunk, plain_inserts=False)
    log.info(
        "contacts.imported",
        account_id=str(account_id),
        imported=report.imported,
        updated=report.updated,
        refused=len(report.refused),
        groups_created=report.groups_created,
        duplicates_in_file=report.duplicates_in_file,
    )
    return report


async def _import(
    db: Database,
    account_id: UUID,
    data: bytes,
    allow_international: bool,
    rows_per_chunk: int,
    *,
    plain_inserts: bool,
) -> ImportReport:
    """One attempt, in one transaction, while a worker process prepares the file's chunks."""
    preparation = await _Preparation.start(
        data, allow_international=allow_international, rows_per_chunk=rows_per_chunk
    )
    try:
        # An unusable file (not_csv, no phone column...) is refused here, before anything is written.
        chunk = await preparation.next_chunk()
        async with import_writer(db, account_id, plain_inserts=plain_inserts) as writer:
            while chunk is not None:
                await writer.write(chunk)
                chunk = await preparation.next_chunk()
            await writer.finish()
    finally:
        await preparation.close()
    prepared = preparation.prepared
    return ImportReport(
        imported=writer.imported,
        updated=prepared.numbers - writer.imported,
        refused=prepared.refused,
        groups_created=writer.groups_created,
        duplicates_in_file=prepared.duplicates,
        memberships_added=writer.memberships_added,
    )


class _Preparation:
    """The worker process preparing one file (engine.contacts_worker): its chunks, then its counts.

    The process works ahead of the database: its frames are read as they come and queued here.
    """

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._ready: asyncio.Queue[ImportChunk | Exception | None] = asyncio.Queue()
        self._reading = asyncio.ensure_future(self._read())
        self._prepared: Prepared | None = None

    @classmethod
    async def start(cls, data: bytes, *, allow_international: bool, rows_per_chunk: int) -> _Preparation:
        options = ["--rows-per-chunk", str(rows_per_chunk)]
        if allow_international:
            options.append("--international")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            _WORKER_MODULE,
            *options,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            # python -m puts the working directory first on the path: the worker imports this very
            # engine package, wherever the server was started and whatever is installed.
            cwd=PROJECT_ROOT,
        )
        preparation = cls(process)
        try:
            assert process.stdin is not None  # noqa: S101 - asked for above
            process.stdin.write(data)
            await process.stdin.drain()
            process.stdin.close()
        except BaseException:
            await preparation.close()
            raise
        return preparation

    @property
    def prepared(self) -> Prepared:
        if self._prepared is None:
            raise RuntimeError("the contacts preparation is not over")
        return self._prepared

    async def next_chunk(self) -> ImportChunk | None:
        """The next chunk, None after the last one; raises what the worker refused or failed with."""
        chunk = await self._ready.get()
        if isinstance(chunk, Exception):
            raise chunk
        return chunk

    async def close(self) -> None:
        """Stop the worker if it still runs (the import failed or was cancelled) and reap it."""
        self._reading.cancel()
        if self._process.returncode is None:
            self._process.kill()
        await self._process.wait()

    async def _read(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None  # noqa: S101 - asked for in start()
        try:
            while True:
                (size,) = FRAME_HEADER.unpack(await stdout.readexactly(FRAME_HEADER.size))
                header: dict[str, Any] = json.loads(await stdout.readexactly(size))
                kind = header["kind"]
                if kind == "chunk":
                    contacts_csv = await stdout.readexactly(header["contacts"])
                    memberships_csv = await stdout.readexactly(header["memberships"])
                    self._ready.put_nowait(chunk_from(header, contacts_csv, memberships_csv))
                    continue
                if kind == "end":
                    self._prepared = prepared_from(header)
                    self._ready.put_nowait(None)
                elif kind == "invalid":
                    self._ready.put_nowait(refusal_from(header))
                else:
                    failure = f"the contacts preparation failed:\n{header['detail']}"
                    self._ready.put_nowait(RuntimeError(failure))
                return
        except asyncio.IncompleteReadError:
            code = await self._process.wait()
            failure = f"the contacts preparation process ended early (exit {code})"
            self._ready.put_nowait(RuntimeError(failure))


def report_json(report: ImportReport) -> dict[str, Any]:
    """The import report as the CLI (`contacts import --json`) and the API show it."""
    return {
        "imported": report.imported,
        "updated": report.updated,
        "refused": [
            {"row": r.row, "error": r.code, "message": r.message_fr, "input": r.input} for r in report.refused
        ],
        "groups_created": report.groups_created,
        "duplicates_in_file": report.duplicates_in_file,
        "memberships_added": report.memberships_added,
    }
