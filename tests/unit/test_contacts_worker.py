"""The contacts import's worker process (engine.contacts_worker): what it writes on stdout is exactly
what preparing the file in-process gives — the chunks, the counts, the refusal of a bad file —
and a bug in it reaches the importing process instead of passing for the end of the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from io import BytesIO
from typing import Any

import pytest

from engine import contacts_worker
from engine.contacts_worker import serve
from engine.domain.contacts_import import (
    FRAME_HEADER,
    ImportChunk,
    ImportPreparer,
    chunk_from,
    prepared_from,
    refusal_from,
)
from engine.errors import InvalidInput
from tests.unit.test_contacts_csv import excel_export

EXPORT = excel_export(
    [
        ["Société", "Nom", "Prénom", "Téléphone", "Groupe"],
        ["Boulangerie Lefèvre", "Lefèvre", "Hélène", "06 12 34 56 78", "Clients fidèles"],
        ["Garage de l'Étang; SARL", "Müller", "Jérôme", "01.72.36.01.70", ""],
        ["", "Dupré", "Zoé", "612345679", "Équipe « été »"],
        ["", "Bad", "", "06 12 FLOWERS", ""],
        ["", "", "Hélène", "+33 6 12 34 56 78", "Presse"],  # the first row's number again
    ]
)


def frames(stream: bytes) -> list[tuple[dict[str, Any], list[bytes]]]:
    """The frames of a worker's output: each header with the blobs it announces."""
    source = BytesIO(stream)
    out = []
    while head := source.read(FRAME_HEADER.size):
        (size,) = FRAME_HEADER.unpack(head)
        header = json.loads(source.read(size))
        blobs = [source.read(header[name]) for name in ("contacts", "memberships") if name in header]
        out.append((header, blobs))
    return out


def served(data: bytes, rows_per_chunk: int) -> tuple[int, list[tuple[dict[str, Any], list[bytes]]]]:
    out = BytesIO()
    code = serve(BytesIO(data), out, allow_international=False, rows_per_chunk=rows_per_chunk)
    return code, frames(out.getvalue())


@pytest.mark.parametrize("rows_per_chunk", [1, 2, 1000])
def test_the_worker_writes_the_chunks_and_counts_of_the_file(rows_per_chunk: int) -> None:
    code, written = served(EXPORT, rows_per_chunk)

    in_process = ImportPreparer(EXPORT, allow_international=False, rows_per_chunk=rows_per_chunk)
    expected: list[ImportChunk] = list(iter(in_process.next_chunk, None))
    assert code == 0
    assert [h["kind"] for h, _ in written] == ["chunk"] * len(expected) + ["end"]
    assert [chunk_from(h, *blobs) for h, blobs in written[:-1]] == expected
    prepared = prepared_from(written[-1][0])
    assert (prepared.numbers, prepared.duplicates, prepared.refused) == (
        in_process.numbers,
        in_process.duplicates,
        in_process.refused,
    )
    assert (prepared.numbers, prepared.duplicates, [r.code for r in prepared.refused]) == (3, 1, ["letters"])


def test_a_file_that_is_not_a_contacts_csv_is_refused_as_in_process() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    code, written = served(png, 1000)

    with pytest.raises(InvalidInput) as in_process:
        ImportPreparer(png, allow_international=False)
    assert code == 0
    assert [h["kind"] for h, _ in written] == ["invalid"]
    refusal = refusal_from(written[0][0])
    assert (refusal.code, str(refusal), refusal.message_fr) == (
        in_process.value.code,
        str(in_process.value),
        in_process.value.message_fr,
    )


def test_a_bug_in_the_worker_is_reported_not_taken_for_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: ImportPreparer) -> ImportChunk | None:
        raise KeyError("boom")

    monkeypatch.setattr(contacts_worker.ImportPreparer, "next_chunk", broken)
    code, written = served(EXPORT, 1000)

    assert code == 1
    assert [h["kind"] for h, _ in written] == ["error"]
    assert "KeyError: 'boom'" in written[0][0]["detail"]


def test_the_worker_runs_as_a_module_on_stdin_and_stdout() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "engine.contacts_worker", "--rows-per-chunk", "2"],
        input=EXPORT,
        capture_output=True,
        timeout=60,
        check=True,
    )
    _, in_memory = served(EXPORT, 2)
    assert frames(result.stdout) == in_memory
    assert result.stderr == b""  # nothing for the server's log (no warning, no second import of a module)
