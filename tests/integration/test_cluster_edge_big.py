"""`make cluster-test` (not in `make test`, about 3 min): issue 19's big runs through Kamailio, to a SIPp
carrier limited to 40 channels and 10 calls/s, measured at the carrier (never more than 40 dialogs nor the
pace's INVITEs in any second, every call from Kamailio, from both media servers when both carried calls):
- node1's engine frozen (SIGSTOP) past the takeover timeout: node2 takes over, and once node1 wakes it
  sends no INVITE (fenced);
- node1 drained mid-send: it claims nothing more, finishes its calls, node2 carries the rest;
- a 500-number send (a 5-second message) over both nodes; mid-send node1's engine is killed -9 and its
  Asterisk stopped: node2 takes node1 over and finishes every recipient, no number getting more INVITEs
  than its allowed attempts; calls to the recording number then all reach node2's media server."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.services.nodes import set_draining
from engine.settings import Settings
from engine.stack import asterisk, cluster, procs
from engine.store import Database
from engine.telephony.edge import Cluster, Node
from lab.sipp import SippProcess
from tests.integration.conftest import wait_for
from tests.integration.dialing import SIPP_DIR
from tests.integration.edgecluster import answered_by, asterisk_root, carrier_and_trunk, edge_cluster
from tests.integration.test_cluster import check_every_recipient, completed, invited_attempts, nodes_of
from tests.support.carrier import check_the_carriers_view
from tests.support.listeners import listeners_send

pytestmark = pytest.mark.integration

CHANNELS = 40
CPS = 10.0
NUMBERS = int(os.environ.get("VOCALCAST_CLUSTER_TEST_NUMBERS", "500"))
# A 5-second message: at 10 calls a second, more calls would be up at once than the carrier's 40
# channels, so both limits are tested.
LONG_S = 5.0


@pytest.fixture(scope="module")
def edge(stack_settings: Settings) -> Iterator[tuple[Settings, Cluster]]:
    yield from edge_cluster(stack_settings, max_channels=CHANNELS)


async def node_health(node: Node) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{node.overrides['VOCALCAST_HTTP_PORT']}/healthz"
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, timeout=aiohttp.ClientTimeout(total=3)) as resp,
    ):
        return resp.status, await resp.json()


async def attempts_of(db: Database, send_id: Any, node: Node) -> set[str]:
    rows = await db.fetch(
        "SELECT id FROM attempts WHERE send_id = $1 AND app = $2", send_id, f"vocalcast-{node.name}"
    )
    return {str(r["id"]) for r in rows}


async def test_a_frozen_node_taken_over_sends_no_invite_through_kamailio_once_it_wakes(
    edge: tuple[Settings, Cluster], sipp_ports: Any, tmp_path: Path
) -> None:
    settings, built = edge
    node1 = built.nodes[0]
    pid = procs.read_pid(node1.state_dir, "engine")
    assert pid is not None
    async with Database(settings.dsn, min_size=1, max_size=4) as db:
        sipp = await carrier_and_trunk(db, settings, sipp_ports, tmp_path, channels=CHANNELS, cps=CPS)
        async with sipp:
            send = await listeners_send(db, settings, tmp_path, 26000000, 60)

            async def node1_claimed() -> bool:
                return len(await attempts_of(db, send.id, node1)) >= 4

            await wait_for(node1_claimed, timeout_s=30, interval_s=0.05, what="calls of node1")
            os.kill(pid, signal.SIGSTOP)
            try:
                await wait_for(
                    lambda: db.fetchval("SELECT taken_over_by FROM nodes WHERE name = 'node1'"),
                    timeout_s=15,
                    what="node2 to take the frozen node1 over",
                )
                # Frozen: every call node1 placed is on the carrier's side by now (or never will be).
                await asyncio.sleep(0.5)
                before = invited_attempts(sipp) & await attempts_of(db, send.id, node1)
            finally:
                os.kill(pid, signal.SIGCONT)

            async def fenced() -> bool:
                try:
                    status, body = await node_health(node1)
                except (aiohttp.ClientError, TimeoutError):
                    return False
                return status == 503 and body["cluster"]["state"] == "fenced"

            await wait_for(fenced, timeout_s=10, what="node1 to see it was fenced (its /healthz)")
            await completed(db, send.id, timeout_s=120)
            await check_every_recipient(db, sipp, send.id)
            after = invited_attempts(sipp) & await attempts_of(db, send.id, node1)
    assert after == before, f"node1 sent {len(after - before)} INVITE(s) after it woke up"
    check_the_carriers_view(sipp, channels=CHANNELS, cps=CPS, edge=built)


async def test_a_drained_node_finishes_its_calls_through_kamailio_and_the_other_carries_the_rest(
    edge: tuple[Settings, Cluster], sipp_ports: Any, tmp_path: Path
) -> None:
    settings, built = edge
    node1 = built.nodes[0]
    # A fenced node (the test before) is restarted: it joins again with a new epoch.
    procs.stop(node1.state_dir, "engine", timeout_s=15)
    await asyncio.to_thread(cluster.start_engines, built)
    async with Database(settings.dsn, min_size=1, max_size=4) as db:
        sipp = await carrier_and_trunk(db, settings, sipp_ports, tmp_path, channels=CHANNELS, cps=CPS)
        async with sipp:
            send = await listeners_send(db, settings, tmp_path, 27000000, 80, seconds=LONG_S)

            async def node1_calling() -> bool:
                return bool(
                    await db.fetchval(
                        "SELECT count(*) >= 4 AND count(*) FILTER (WHERE state <> 'ended') >= 1 "
                        "FROM attempts WHERE send_id = $1 AND app = 'vocalcast-node1'",
                        send.id,
                    )
                )

            await wait_for(node1_calling, timeout_s=30, interval_s=0.05, what="calls of node1 in flight")
            assert await set_draining(settings, node1.name, True)
            drained_at = await db.fetchval("SELECT now()")

            async def shown_draining() -> bool:
                return (await node_health(node1))[1]["cluster"]["state"] == "draining"

            await wait_for(shown_draining, timeout_s=5, what="node1's /healthz to show the drain")
            await completed(db, send.id, timeout_s=120)
            await check_every_recipient(db, sipp, send.id)
            # node1 claimed nothing once the drain was committed, and finished every call it had.
            assert not await db.fetchval(
                "SELECT count(*) FROM attempts WHERE app = 'vocalcast-node1' AND created_at > $1", drained_at
            )
            assert not await db.fetchval(
                "SELECT count(*) FROM attempts WHERE app = 'vocalcast-node1' AND state <> 'ended'"
            )
            apps = await nodes_of(db, send.id)
            assert apps["vocalcast-node2"] > apps["vocalcast-node1"] > 0, apps
            assert await set_draining(settings, node1.name, False)
    check_the_carriers_view(sipp, channels=CHANNELS, cps=CPS, edge=built)


async def test_a_node_killed_with_its_media_server_stopped_mid_send_is_finished_by_the_other(
    edge: tuple[Settings, Cluster], sipp_ports: Any, tmp_path: Path
) -> None:
    settings, built = edge
    node1, node2 = built.nodes
    root = asterisk_root(settings)
    async with Database(settings.dsn, min_size=1, max_size=4) as db:
        sipp = await carrier_and_trunk(db, settings, sipp_ports, tmp_path, channels=CHANNELS, cps=CPS)
        async with sipp:
            send = await listeners_send(db, settings, tmp_path, 25000000, NUMBERS, seconds=LONG_S)

            async def node1_calling() -> bool:
                return bool(
                    await db.fetchval(
                        "SELECT count(*) >= 40 AND count(*) FILTER (WHERE state <> 'ended') >= 1 "
                        "FROM attempts WHERE send_id = $1 AND app = 'vocalcast-node1'",
                        send.id,
                    )
                )

            await wait_for(node1_calling, timeout_s=60, interval_s=0.1, what="node1's calls in flight")
            pid = procs.read_pid(node1.state_dir, "engine")
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await asyncio.to_thread(asterisk.stop, node1.settings(), root)
            await wait_for(
                lambda: db.fetchval("SELECT taken_over_by FROM nodes WHERE name = 'node1'"),
                timeout_s=30,
                what="node2 to take node1 over",
            )
            await completed(db, send.id, timeout_s=300)
            await check_every_recipient(db, sipp, send.id)
            apps = await nodes_of(db, send.id)
            assert set(apps) == {"vocalcast-node1", "vocalcast-node2"}, apps
            assert await db.fetchval("SELECT taken_over_by FROM nodes WHERE name = 'node1'") == node2.name
    print(f"\ncluster run: {NUMBERS} numbers, attempts per node {dict(apps)}")
    check_the_carriers_view(sipp, channels=CHANNELS, cps=CPS, edge=built)
    # Calls to the recording number now reach the live media server only (Kamailio's OPTIONS probing
    # marked node1's down; a call sent to it meanwhile would fail over after 2 s).
    sip_port, media_port = sipp_ports()
    caller = SippProcess(
        SIPP_DIR / "edge_caller.xml",
        local_port=sip_port,
        media_port=media_port,
        remote=built.edge.external,
        service=settings.recording_number,
        calls=4,
        keys={"from": "+33612345678"},
        workdir=tmp_path,
        trace_messages=True,
        name="caller",
    )
    async with caller:
        assert await caller.wait(30) == 0, caller.diagnostics()
    assert sum(e.get("event") == "ANSWERED" for e in caller.log_events()) == 4
    assert answered_by(caller) == {int(node2.overrides["VOCALCAST_SIP_PORT"])}
