"""Results of ended calls, written in batches.

Calls placed together end together: their results would reach PostgreSQL as a burst of statements
just when the dialer claims the next recipients for the channels they freed. Every result that arrives
while a batch is being written goes into the next batch instead: one statement and one commit for the
burst, and a single result is written at once when the writer is idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from uuid import UUID

from engine.domain.retries import RetryTiming
from engine.errors import DatabaseUnavailable
from engine.store import Database
from engine.store import attempts as attempts_store
from engine.store.attempts import Recorded, Result

_Entry = tuple[Result, asyncio.Future[Recorded]]


class ResultWriter:
    def __init__(
        self,
        db: Database,
        timing: RetryTiming | None = None,
        *,
        clock: Callable[[], float] = time.time,
        stop_key: str | None = None,
    ) -> None:
        self._db = db
        self._stop_key = stop_key  # the server secret: erased numbers stay stop-listed by a keyed hash
        self._timing = timing
        self._clock = clock
        self._queue: list[_Entry] = []
        self._writing: asyncio.Task[None] | None = None
        # The node writing and its epoch (the dialer's membership; None: no check): a node fenced meanwhile
        # writes nothing (engine/store/attempts.py record_results, issue 19).
        self.holder: Callable[[], tuple[str, int] | None] | None = None

    async def record(self, item: Result) -> Recorded:
        """Write one result with the next batch; raises what writing it raised (DatabaseUnavailable...)."""
        future: asyncio.Future[Recorded] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._writing is None:
            self._writing = asyncio.create_task(self._write_batches(), name="result-writer")
        return await future

    async def close(self) -> None:
        if self._writing is not None:
            self._writing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writing

    async def _write_batches(self) -> None:
        batch: list[_Entry] = []
        try:
            while self._queue:
                batch, self._queue = _one_per_attempt(self._queue)
                await self._write(batch)
                batch = []
        finally:
            self._writing = None
            for _item, future in batch + self._queue:  # cancelled (the engine stops): nobody is left waiting
                future.cancel()
            self._queue = []

    async def _write(self, batch: list[_Entry]) -> None:
        try:
            recorded = await attempts_store.record_results(
                self._db,
                [item for item, _ in batch],
                timing=self._timing,
                now=self._clock(),
                stop_key=self._stop_key,
                holder=self.holder() if self.holder is not None else None,
            )
        except DatabaseUnavailable as exc:
            for _item, future in batch:
                _settle(future, exc=exc)
        except Exception as exc:  # noqa: BLE001 - handed to the callers, whose tasks log it
            if len(batch) == 1:
                _settle(batch[0][1], exc=exc)
                return
            # One result the database refuses must not keep the others of its batch from being written.
            for entry in batch:
                await self._write([entry])
        else:
            for (_item, future), result in zip(batch, recorded, strict=True):
                _settle(future, result=result)


def _one_per_attempt(
    queue: list[_Entry],
) -> tuple[list[_Entry], list[_Entry]]:
    """The next batch (an attempt's second result, from a racing reconciliation, waits for the next)."""
    batch: list[_Entry] = []
    later: list[_Entry] = []
    seen: set[UUID] = set()
    for entry in queue:
        attempt_id = entry[0].claim.attempt_id
        (later if attempt_id in seen else batch).append(entry)
        seen.add(attempt_id)
    return batch, later


def _settle(
    future: asyncio.Future[Recorded], *, result: Recorded | None = None, exc: BaseException | None = None
) -> None:
    if future.done():  # its caller was cancelled
        return
    if exc is not None:
        future.set_exception(exc)
    elif result is not None:
        future.set_result(result)
