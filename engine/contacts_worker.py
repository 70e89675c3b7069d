"""The contacts import's worker process: ``python -m engine.contacts_worker [--rows-per-chunk N]
[--international]`` reads a contacts CSV on stdin and writes its chunks of COPY data, then its counts,
as frames on stdout (engine.domain.contacts_import).

Preparing a 100,000-row file costs ~1.2 s of CPU. In the server's process, even in a worker thread, it
held the interpreter (the GIL) while the event loop waited to drive PostgreSQL: the loop stalled up to
0.17 s at a time behind the csv module's long calls, and the import took 0.5 s longer than the same
writes with the chunks prepared beforehand. This module sits outside engine.services so that starting
it imports only the standard library and the domain (~50 ms, where engine.services' package imports
every service).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import BinaryIO

from engine.domain.contacts_import import (
    ROWS_PER_CHUNK,
    ImportPreparer,
    chunk_frame,
    end_frame,
    error_frame,
    refusal_frame,
)
from engine.errors import InvalidInput


def serve(source: BinaryIO, out: BinaryIO, *, allow_international: bool, rows_per_chunk: int) -> int:
    """The worker's job: the whole file from ``source``, its chunks then the counts as frames on ``out``."""
    try:
        preparer = ImportPreparer(
            source.read(), allow_international=allow_international, rows_per_chunk=rows_per_chunk
        )
        while (chunk := preparer.next_chunk()) is not None:
            out.write(chunk_frame(chunk))
            out.flush()  # the importing process writes this chunk while the next one is prepared
        out.write(end_frame(preparer))
    except InvalidInput as exc:
        out.write(refusal_frame(exc))
    except Exception:  # noqa: BLE001 - the importing process raises it; this process only reports it
        out.write(error_frame(traceback.format_exc()))
        return 1
    finally:
        out.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Prepare a contacts CSV (stdin) for the import (stdout).")
    parser.add_argument("--rows-per-chunk", type=int, default=ROWS_PER_CHUNK)
    parser.add_argument("--international", action="store_true", help="the account may call abroad")
    args = parser.parse_args(argv)
    return serve(
        sys.stdin.buffer,
        sys.stdout.buffer,
        allow_international=args.international,
        rows_per_chunk=args.rows_per_chunk,
    )


if __name__ == "__main__":
    sys.exit(main())
