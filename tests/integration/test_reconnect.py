"""The engine survives Asterisk and PostgreSQL going away: /healthz says 503 naming what is down,
then 200 when it is back, and the next call works (the ARI websocket reconnected and the Stasis app
is registered again)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from engine import stack
from engine.app import Engine
from engine.domain.trunks import Trunk, usable_trunks
from engine.settings import Settings
from engine.stack import asterisk, postgres
from engine.stack.root import read_info, root_path
from engine.telephony.probe import probe_call
from lab.dtmfpcap import write_rfc2833_pcap
from lab.sipp import SippProcess
from tests.integration.conftest import add_trunk, wait_for

pytestmark = pytest.mark.integration

SIPP_DIR = Path(__file__).parent.parent / "sipp"


@pytest.fixture
async def engine(stack_settings: Settings) -> AsyncIterator[Engine]:
    async with Engine(stack_settings) as running:
        await running.ari.wait_ready(10)
        yield running


async def health(engine: Engine) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"http://127.0.0.1:{engine.http_port}/healthz", timeout=aiohttp.ClientTimeout(total=10)
        ) as resp,
    ):
        return resp.status, await resp.json()


async def call_works(engine: Engine, settings: Settings, sip_port: int, media_port: int, tmp: Path) -> None:
    pcap = tmp / f"one-{sip_port}.pcap"
    write_rfc2833_pcap(pcap, "1")
    sipp = SippProcess(
        SIPP_DIR / "callee_answer_dtmf.xml",
        local_port=sip_port,
        media_port=media_port,
        workdir=tmp,
        keys={"pcap": str(pcap)},
        recv_timeout_ms=20000,
        name=f"callee-{sip_port}",
    )
    async with sipp:
        result = await probe_call(
            engine.ari,
            engine.router,
            endpoint="PJSIP/0612345678@callee",
            media="sound:silence/1",
            ring_timeout_s=10,
            max_duration_s=20,
        )
    assert result.error == "" and result.answered and result.played_to_end, result


async def test_asterisk_restart(stack_settings: Settings, engine: Engine, sipp_ports, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sip_port, media_port = sipp_ports()
    await add_trunk(stack_settings, Trunk(name="callee", host="127.0.0.1", port=sip_port, qualify=False))
    status, body = await health(engine)
    assert status == 200 and body["asterisk"] == "up" and body["database"] == "up"
    assert body["mode"] == "live"
    reconnects_before = engine.ari.state.reconnects

    root = root_path(stack_settings)
    asterisk.stop(stack_settings, root)
    try:
        await wait_for(lambda: not engine.ari.ready, what="the engine to notice Asterisk is gone")
        status, body = await health(engine)
        assert status == 503
        assert body["down"] == ["asterisk"] and body["asterisk"] == "down" and body["database"] == "up"
    finally:
        info = read_info(root)
        assert info is not None
        asterisk.start(stack_settings, info)

    await wait_for(lambda: engine.ari.ready, timeout_s=15, what="the ARI websocket to reconnect")
    status, body = await health(engine)
    assert status == 200, body
    assert engine.ari.state.reconnects == reconnects_before + 1
    await call_works(engine, stack_settings, sip_port, media_port, tmp_path)


async def test_postgresql_restart(
    stack_settings: Settings, engine: Engine, sipp_ports, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    sip_port, media_port = sipp_ports()
    # No OPTIONS probe: the SIPp callee of call_works() is the trunk, and it is not running yet.
    await add_trunk(stack_settings, Trunk(name="callee", host="127.0.0.1", port=sip_port, qualify=False))
    status, body = await health(engine)
    trunks = {t["name"]: t for t in body["trunks"]}
    assert status == 200 and "callee" in trunks
    postgres.stop(stack_settings)
    try:
        status, body = await health(engine)
        assert status == 503
        assert body["down"] == ["database"] and body["asterisk"] == "up"
        # What the engine knew about trunks stays visible while the database is away.
        assert "callee" in {t["name"] for t in body["trunks"]}
    finally:
        postgres.start(stack_settings)
    await wait_for(lambda: _status_is(engine, 200), timeout_s=15, what="/healthz back to 200")
    await call_works(engine, stack_settings, sip_port, media_port, tmp_path)


async def _status_is(engine: Engine, expected: int) -> bool:
    status, _ = await health(engine)
    return status == expected


async def test_demo_mode_is_visible_and_off_by_default(stack_settings: Settings) -> None:
    assert stack_settings.demo is False
    assert usable_trunks([stack.demo_trunk(stack_settings)], demo=stack_settings.demo) == []
