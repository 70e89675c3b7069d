"""Fixtures on the real stack: an ARI client with its own Stasis app, and leftover checks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from engine.domain.trunks import Trunk
from engine.settings import Settings
from engine.telephony.ari import AriClient, events_task
from engine.telephony.stasis import StasisRouter

pytestmark = pytest.mark.integration


@dataclass
class Ari:
    client: AriClient
    router: StasisRouter


async def wait_for(predicate, timeout_s: float = 10.0, interval_s: float = 0.05, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll with a deadline (never a bare sleep): the predicate's first truthy value, or fail."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(interval_s)


@pytest.fixture
async def ari(stack_settings: Settings) -> AsyncIterator[Ari]:
    router = StasisRouter()
    client = AriClient(
        host="127.0.0.1",
        port=stack_settings.ari_port,
        user=stack_settings.ari_user,
        password=stack_settings.require("ari_password"),
        app=f"vocalcast-t{uuid.uuid4().hex[:8]}",
    )
    async with client, events_task(client, router.dispatch):
        await client.wait_ready(10)
        yield Ari(client, router)
        # Hygiene: no channel or bridge may outlive a test.
        leftovers = await wait_for_empty(client)
        assert leftovers == ([], []), f"leftover channels/bridges: {leftovers}"


async def wait_for_empty(client: AriClient, timeout_s: float = 5.0) -> tuple[list[str], list[str]]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        channels = [c["id"] for c in await client.channels()]
        bridges = [b["id"] for b in await client.bridges()]
        if not channels and not bridges:
            return ([], [])
        if asyncio.get_running_loop().time() > deadline:
            for cid in channels:
                await client.hangup(cid)
            for bid in bridges:
                await client.destroy_bridge(bid)
            return (channels, bridges)
        await asyncio.sleep(0.05)


_next_sipp = iter(range(250))


@pytest.fixture
def sipp_ports() -> Iterator[int]:
    """Fresh (SIP port, media port) pairs from this instance's block, never reused in a session."""
    from tests.conftest import sipp_port

    def allocate() -> tuple[int, int]:
        # Each SIPp takes a SIP port; its media port (-mp) binds mp and mp+2: keep them apart.
        sip = sipp_port(next(_next_sipp))
        media = sipp_port(next(_next_sipp)) + 1000
        return sip, media

    yield allocate  # type: ignore[misc]


async def add_trunk(settings: Settings, trunk: Trunk) -> None:
    """Store a trunk, render PJSIP config and reload PJSIP live, as `vocalcast trunk add` does."""
    from engine.stack import apply_trunks
    from engine.store import Database
    from engine.store.trunks import upsert_trunk

    async with Database(settings.dsn, min_size=1, max_size=1) as database:
        await upsert_trunk(database, trunk)
    await apply_trunks(settings)
