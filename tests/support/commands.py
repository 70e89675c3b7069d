"""Running the `vocalcast` commands in-process, as a shell would, and reading the store beside them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from engine.cli import main
from engine.settings import Settings
from engine.store import Database

T = TypeVar("T")


def with_db(settings: Settings, fn: Callable[[Database], Awaitable[T]]) -> T:
    """fn on a database of its own, from synchronous test code (the commands run their own loops)."""

    async def run() -> T:
        async with Database(settings.dsn, min_size=1, max_size=1) as db:
            return await fn(db)

    return asyncio.run(run())


def run_command(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`vocalcast argv...`: its exit code, standard output and standard error."""
    capsys.readouterr()
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err
