"""How a customer command runs: the services on a small pool of their own, for one call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from engine.services import Services, open_services
from engine.settings import Settings

T = TypeVar("T")


def run_with_services(fn: Callable[[Services], Awaitable[T]]) -> T:
    """Open the services on the instance's database, run ``fn``, close them."""
    settings = Settings.from_env()

    async def run() -> T:
        async with open_services(settings) as services:
            return await fn(services)

    return asyncio.run(run())
