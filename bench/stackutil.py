"""Shared set-up of the stack-backed benches: their own test instance (state dir and port block), a
signalling-only SIPp UAS behind a trunk, an ARI client, and small statistics helpers.

The instance lives on VOCALCAST_BENCH_PORT_BASE (default 28000), never on the tests' block, and is
stopped at the end unless VOCALCAST_BENCH_KEEP_STACK=1.
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.domain.trunks import Trunk
from engine.settings import Settings
from engine.telephony.ari import AriClient

BENCH_PORT_BASE = int(os.environ.get("VOCALCAST_BENCH_PORT_BASE", "28000"))
# Asterisk's RTP range (4 ports per channel) is rendered from this at its start: size it for the
# largest channel count a bench uses, not the tests' 100.
BENCH_MAX_CHANNELS = 300
# Sized for 300 channels, the range would run from base+2000 into the next test block's SIPp media
# ports and RTP range (base+2500..base+3399): the bench takes ports above the kernel's ephemeral range
# instead, which no test block uses.
BENCH_RTP_START = int(os.environ.get("VOCALCAST_BENCH_RTP_START", "62000"))
# A name of its own per process: a kept stack remembers the last trunk's contact as unreachable (its
# phone stopped with the previous run) until the next qualify, up to 30 s later, and refuses to dial it.
TRUNK = f"bench{os.getpid()}"

# A signalling-only phone that answers at once (180 then 200, no pause: the answer delay is not
# what we measure) and waits for our BYE. Its RTP port is bound by SIPp and ignored. [clock_tick]
# (ms, SIPp's clock) times each INVITE as it reached the phone.
UAS_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="vocalcast bench phone">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="^INVITE sip:([^@;> ]*)" search_in="msg" check_it="false" assign_to="all,num"/>
      <log message="event=INVITE number=[$num] ruri=[$all] tick_ms=[clock_tick] call_id=[call_id]"/>
    </action>
  </recv>
  <send>
    <![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=bench 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=vocalcast bench phone
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 0 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-16

    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE" timeout="600000" ontimeout="end"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <label id="end"/>
</scenario>
"""


def bench_environ() -> dict[str, str]:
    """The tests' settings moved to the bench block, sized for the benches' channel counts."""
    os.environ["VOCALCAST_TEST_PORT_BASE"] = str(BENCH_PORT_BASE)
    from tests import conftest  # noqa: PLC0415 - reads VOCALCAST_TEST_PORT_BASE at import

    if conftest.PORT_BASE != BENCH_PORT_BASE:
        raise RuntimeError(
            f"tests.conftest was imported with port base {conftest.PORT_BASE}, not the bench's "
            f"{BENCH_PORT_BASE}: run the benches in their own process"
        )
    env = conftest.test_environ()
    env.update(
        {
            "VOCALCAST_MAX_CHANNELS": str(BENCH_MAX_CHANNELS),
            "VOCALCAST_RTP_START": str(BENCH_RTP_START),
            "VOCALCAST_MAX_RECIPIENTS": "100000",
            # Benches use messages down to 0.5 s.
            "VOCALCAST_AUDIO_MIN_DURATION_S": "0.3",
        }
    )
    return env


def sipp_ports(index: int) -> tuple[int, int]:
    """(SIP port, media port) of the bench's index-th SIPp, inside the bench block."""
    from tests.conftest import sipp_port  # noqa: PLC0415

    return sipp_port(2 * index), sipp_port(2 * index + 1) + 1000


def up() -> Settings:
    """Bring the bench instance up (PostgreSQL, Asterisk; no engine) with every table emptied."""
    from engine import stack  # noqa: PLC0415

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


def write_uas(workdir: Path) -> Path:
    path = workdir / "bench-phone.xml"
    path.write_text(UAS_SCENARIO)
    return path


def uas(workdir: Path, index: int = 0, *, name: str = "bench-phone") -> Any:
    """The signalling-only phone (a tests.support.sipp.SippProcess, not started)."""
    from tests.support.sipp import SippProcess  # noqa: PLC0415

    sip, media = sipp_ports(index)
    return SippProcess(
        write_uas(workdir),
        local_port=sip,
        media_port=media,
        workdir=workdir,
        trace_messages=False,
        extra_args=["-aa"],  # answers the trunk's OPTIONS qualify
        name=name,
    )


async def set_trunk(settings: Settings, port: int, *, max_channels: int, max_cps: float) -> Trunk:
    """The bench trunk (national numbers) towards the phone, stored and reloaded live."""
    from tests.integration.conftest import add_trunk  # noqa: PLC0415

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


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def rounded(value: float, digits: int = 3) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


def rss_mb(pid: int | str = "self") -> float:
    """VmRSS of a process, in MB (1 MB = 2**20 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_s(pid: int | str) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, Any]:
    """CPU count and load: the benches share the machine, and every figure depends on it."""
    return {"cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()]}
