"""A contacts import worker that fails after its first chunk (python -m tests.support.contacts_worker_stub).

It writes the file's real first chunk, then, as CONTACTS_WORKER_STUB says: ``die`` exits with code 3
without a word; ``hang`` writes its pid to CONTACTS_WORKER_STUB_PID and sleeps (until it is killed).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from engine.domain.contacts_import import ImportPreparer, chunk_frame


def main() -> int:
    preparer = ImportPreparer(sys.stdin.buffer.read(), allow_international=False, rows_per_chunk=1)
    chunk = preparer.next_chunk()
    assert chunk is not None  # the tests give it a file with rows
    sys.stdout.buffer.write(chunk_frame(chunk))
    sys.stdout.buffer.flush()
    if os.environ.get("CONTACTS_WORKER_STUB") == "hang":
        Path(os.environ["CONTACTS_WORKER_STUB_PID"]).write_text(str(os.getpid()))
        time.sleep(600)
    return 3


if __name__ == "__main__":
    sys.exit(main())
