"""Background work of the engine process: every long-running loop runs under a supervisor that logs
what killed it and starts it again (with a growing pause), and every one-shot task logs its failure.
No exception is swallowed without a log line; cancellation always propagates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)

RESTART_FIRST_S = 0.5
RESTART_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0  # a loop that ran this long before failing starts again at once


class Supervisor:
    """Owns the engine's background tasks; ``close()`` cancels them and waits for them to end."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self.restarts: dict[str, int] = {}

    def keep_running(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run ``loop()`` until the engine stops; when it raises (or returns), log it and start it again."""
        self._add(self._supervise(name, loop), name)

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` once; a failure is logged (with its traceback), never lost."""
        self._add(self._once(name, coro), name)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _add(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _supervise(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        pause = RESTART_FIRST_S
        while True:
            started = time.monotonic()
            try:
                await loop()
                log.error("task.returned", task=name)
            except asyncio.CancelledError:
                raise
            except Exception:  # the boundary of a background loop: logged, then started again
                log.exception("task.failed", task=name, restart_in_s=pause)
            if time.monotonic() - started > HEALTHY_AFTER_S:
                pause = RESTART_FIRST_S
            self.restarts[name] = self.restarts.get(name, 0) + 1
            await asyncio.sleep(pause)
            pause = min(pause * 2, RESTART_MAX_S)

    async def _once(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:  # the boundary of a one-shot task
            log.exception("task.failed", task=name)
