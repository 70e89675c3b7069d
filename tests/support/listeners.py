"""A send to listeners for the carrier tests (issues 12, 19): numbers ending in 0-4, which
tests/sipp/dialer_callees.xml keeps on the line until our BYE, so each call holds a carrier channel for
the message's length; one retry a second later."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.services.sends import create_send
from engine.settings import Settings
from engine.store import Database
from tests.integration.dialing import Customer, customer, targets


def listener_numbers(first: int, count: int) -> list[str]:
    """``count`` national numbers from 06<first>, those ending in 0-4 only."""
    numbers: list[str] = []
    n = first
    while len(numbers) < count:
        if n % 10 < 5:
            numbers.append(f"06{n:08d}")
        n += 1
    return numbers


async def listeners_send(
    db: Database,
    settings: Settings,
    tmp_path: Path,
    first: int,
    count: int,
    *,
    seconds: float = 1.0,
    who: Customer | None = None,
) -> Any:
    """A send of ``who``'s message (by default a new customer's ``seconds``-long tone, credits for every
    call) to ``count`` listeners."""
    if who is None:
        who = await customer(
            db,
            settings,
            tmp_path,
            credits=max(1000, 10 * count),
            seconds=seconds,
            email=f"c{first}@example.fr",
        )
    return await create_send(
        db,
        settings,
        who.account,
        message_ref=who.message.ref,
        targets=targets(listener_numbers(first, count)),
        origin="api",
        retries=1,
        retry_interval_s=1,
    )
