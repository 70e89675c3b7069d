"""The benches' own instance of the stack: state dir and port block, PostgreSQL and Asterisk with every
table emptied, a trunk towards a bench phone, an ARI client.

The instance lives on VOCALCAST_BENCH_PORT_BASE (default 28000), never on the tests' block, and is
stopped at the end unless VOCALCAST_BENCH_KEEP_STACK=1.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from engine.domain.trunks import Trunk
from engine.settings import Settings
from engine.telephony.ari import AriClient

BENCH_PORT_BASE = int(os.environ.get("VOCALCAST_BENCH_PORT_BASE", "28000"))
# Asterisk's RTP range (4 ports per channel) is rendered from this at its start: size it for the
# largest channel count a bench uses.
BENCH_MAX_CHANNELS = 300
# Sized for 300 channels, a range starting at base+2000 would run into the next port block's SIPp media
# ports and RTP range (base+2500..base+3399): the bench takes ports above the kernel's ephemeral range
# instead, which no test block uses.
BENCH_RTP_START = int(os.environ.get("VOCALCAST_BENCH_RTP_START", "62000"))
# A name of its own per process: a kept stack remembers the last trunk's contact as unreachable (its
# phone stopped with the previous run) until the next qualify, up to 30 s later, and refuses to dial it.
TRUNK = f"bench{os.getpid()}"
SIPP_PROCESSES = 125  # two SIP ports each from base+500, media ports 1000 above: base+500..base+1999


def bench_environ(base: int = BENCH_PORT_BASE) -> dict[str, str]:
    """The instance's settings: the same layout as a test instance's block, sized for the benches."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "VOCALCAST_STATE_DIR": f"/var/lib/vocalcast-test-{base}",
        "VOCALCAST_CACHE_DIR": os.environ.get("VOCALCAST_CACHE_DIR", "/var/cache/vocalcast"),
        "VOCALCAST_NODE": "bench",
        "VOCALCAST_HTTP_PORT": str(base + 80),
        "VOCALCAST_ARI_PORT": str(base + 88),
        "VOCALCAST_SIP_PORT": str(base + 60),
        "VOCALCAST_PG_PORT": str(base + 32),
        "VOCALCAST_AGI_PORT": str(base + 73),
        "VOCALCAST_SMTP_PORT": str(base + 25),
        "VOCALCAST_DEMO_SIP_PORT": str(base + 70),
        "VOCALCAST_HEP_PORT": str(base + 99),
        "VOCALCAST_MEDIA_HTTP_PORT": str(base + 84),  # the cluster's nodes: + 100 x I
        "VOCALCAST_RTP_START": str(BENCH_RTP_START),
        "VOCALCAST_MAX_CHANNELS": str(BENCH_MAX_CHANNELS),
        "VOCALCAST_MAX_RECIPIENTS": "100000",
        "VOCALCAST_PG_FSYNC": "0",
        "VOCALCAST_RING_TIMEOUT_S": "5",
        "VOCALCAST_ARI_RECONNECT_MAX_S": "0.5",
        # Benches use messages down to 0.5 s.
        "VOCALCAST_AUDIO_MIN_DURATION_S": "0.3",
        "VOCALCAST_LOG_FORMAT": "json",
        "VOCALCAST_LOG_LEVEL": "info",
    }


def sipp_ports(index: int) -> tuple[int, int]:
    """(SIP port, media port) of the bench's index-th SIPp; a media port binds mp and mp+2."""
    if not 0 <= index < SIPP_PROCESSES:
        raise ValueError(f"SIPp index {index} outside 0..{SIPP_PROCESSES - 1}")
    sip = BENCH_PORT_BASE + 500 + 4 * index
    return sip, sip + 2 + 1000


def up() -> Settings:
    """Bring the bench instance up (PostgreSQL, Asterisk; no engine) with every table emptied."""
    from engine import stack  # noqa: PLC0415 - the stack is only needed by stack-backed benches

    env = bench_environ()
    os.environ.update({k: v for k, v in env.items() if k != "PATH"})
    result = stack.up(Settings.from_env(env), engine=False)
    asyncio.run(_empty_tables(result.settings))
    return result.settings


def down(settings: Settings) -> None:
    if os.environ.get("VOCALCAST_BENCH_KEEP_STACK") == "1":
        return
    from engine import stack  # noqa: PLC0415

    stack.down(settings)


@contextmanager
def bench_stack() -> Iterator[Settings]:
    settings = up()
    try:
        yield settings
    finally:
        down(settings)


async def _empty_tables(settings: Settings) -> None:
    from engine.store import Database  # noqa: PLC0415

    async with Database(settings.dsn, min_size=1, max_size=1) as db:
        tables = await db.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
        if tables:
            names = ", ".join(f'"{r["tablename"]}"' for r in tables)
            await db.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


async def add_trunk(settings: Settings, trunk: Trunk) -> None:
    """Store a trunk, render the PJSIP config and reload PJSIP live, as `vocalcast trunk add` does."""
    from engine.stack import apply_trunks  # noqa: PLC0415
    from engine.store import Database  # noqa: PLC0415
    from engine.store.trunks import upsert_trunk  # noqa: PLC0415

    async with Database(settings.dsn, min_size=1, max_size=1) as database:
        await upsert_trunk(database, trunk)
    await apply_trunks(settings)


async def set_trunk(settings: Settings, port: int, *, max_channels: int, max_cps: float) -> Trunk:
    """The bench trunk (national numbers) towards the phone, stored and reloaded live."""
    trunk = Trunk(
        name=TRUNK,
        host="127.0.0.1",
        port=port,
        number_format="national",
        max_channels=max_channels,
        max_cps=max_cps,
    )
    await add_trunk(settings, trunk)
    return trunk


def ari_client(settings: Settings, *, pool_size: int = 50) -> AriClient:
    return AriClient(
        host="127.0.0.1",
        port=settings.ari_port,
        user=settings.ari_user,
        password=settings.require("ari_password"),
        app=f"bench-{uuid.uuid4().hex[:8]}",
        pool_size=pool_size,
    )


async def wait_no_channels(client: AriClient, timeout_s: float = 15.0) -> int:
    """Wait until Asterisk holds no channel; hang up stragglers at the deadline. Returns how many."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        channels = await client.channels()
        if not channels:
            return 0
        if asyncio.get_running_loop().time() > deadline:
            for channel in channels:
                await client.hangup(str(channel["id"]))
            return len(channels)
        await asyncio.sleep(0.1)


def national_numbers(count: int, first: int = 10_000_000) -> list[str]:
    """Distinct French mobile numbers 06xxxxxxxx."""
    return [f"06{i:08d}" for i in range(first, first + count)]
