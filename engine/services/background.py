"""Work a service starts and does not wait for (e-mails, reset links): each task kept referenced until it
ends (the event loop holds only weak references), and ``settled()`` waits for what was started so far."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settled(self) -> None:
        """Wait for the work started so far (and for what it starts meanwhile)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
