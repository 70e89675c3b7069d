"""`make cluster-test` (not in `make test`, about 3 min): issue 19's big runs through Kamailio, to a SIPp
carrier limited to 40 channels and 10 calls/s, measured at the carrier (never more than 40 dialogs nor the
pace's INVITEs in any second, every call from Kamailio, from both media servers when both carried calls):
- node1's engine frozen (SIGSTOP) past the takeover timeout: node2 takes over, and once node1 wakes it
  sends no INVITE (fenced); frozen exactly between its own fence checks and its POST /channels, its
  INVITE is refused by Kamailio (the node's epoch checked in PostgreSQL) and never reaches the carrier;
- node1 drained mid-send: it claims nothing more, finishes its calls, node2 carries the rest;
- a 500-number send (a 5-second message) over both nodes; mid-send node1's engine is killed -9 and its
  Asterisk stopped: node2 takes node1 over and finishes every recipient, no number getting more INVITEs
  than its allowed attempts; calls to the recording number then all reach node2's media server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine import stack
from engine.domain.trunks import Trunk
from engine.domain.trunkshare import burst
from engine.services.nodes import set_draining
from engine.services.sends import create_send
from engine.services.trunks import Trunks
from engine.settings import Settings
from engine.stack import asterisk, cluster, procs
from engine.store import Database
from engine.telephony.edge import Cluster, Node
from lab.sipp import SippProcess
from tests.integration.conftest import wait_for
from tests.integration.dialing import SIPP_DIR, customer, targets
from tests.integration.edgecluster import answered_by, callees_behind_a_proxy, edge_cluster, via_ports
from tests.integration.test_carrier import open_dialogs_at_most
from tests.integration.test_cluster import (
    check_every_recipient,
    completed,
    invited_attempts,
    invites_in_a_second_at_most,
    listeners_send,
    nodes_of,
)

pytestmark = pytest.mark.integration

CHANNELS = 40
CPS = 10.0
NUMBERS = int(os.environ.get("VOCALCAST_CLUSTER_TEST_NUMBERS", "500"))


async def long_listeners_send(
    db: Database, settings: Settings, tmp_path: Path, *, first: int = 25000000, count: int = NUMBERS
) -> Any:
    """``count`` listeners (numbers ending in 0-4) of a 5-second message, one retry: at 10 calls a second,
    more calls would be up at once than the carrier's 40 channels, so both limits are tested."""
    numbers = [f"06{n:08d}" for n in range(first, first + 2 * count) if n % 10 < 5][:count]
    who = await customer(
        db, settings, tmp_path, credits=10 * count, seconds=5.0, email=f"c{first}@example.fr"
    )
    return await create_send(
        db,
        settings,
        who.account,
        message_ref=who.message.ref,
        targets=targets(numbers),
        origin="api",
        retries=1,
        retry_interval_s=1,
    )


@pytest.fixture(scope="module")
def edge(stack_settings: Settings) -> Iterator[tuple[Settings, Cluster]]:
    yield from edge_cluster(stack_settings, max_channels=CHANNELS)


async def carrier_and_trunk(db: Database, settings: Settings, sipp_ports: Any, tmp_path: Path) -> SippProcess:
    """A fresh SIPp carrier (not started) and the trunk toward it, applied to Kamailio and both nodes."""
    sip_port, media_port = sipp_ports()
    applied = await Trunks(db, settings).save(
        Trunk(
            name="edgecarrier",
            host="127.0.0.1",
            port=sip_port,
            number_format="national",
            max_channels=CHANNELS,
            max_cps=CPS,
        )
    )
    assert applied.loaded == ["edgecarrier"] and applied.missing == [], applied
    return SippProcess(
        callees_behind_a_proxy(tmp_path),
        local_port=sip_port,
        media_port=media_port,
        workdir=tmp_path,
        trace_messages=True,
        extra_args=["-aa"],
        name="carrier",
    )


def check_the_carriers_view(sipp: SippProcess, built: Cluster, *, both: bool = True) -> None:
    most_dialogs, most_invites = open_dialogs_at_most(sipp), invites_in_a_second_at_most(sipp)
    print(f"carrier saw at most {most_dialogs} dialogs and {most_invites} INVITEs in a second")
    assert most_dialogs <= CHANNELS
    assert most_invites <= CPS + burst(CPS)
    tops, behind = via_ports(sipp)
    assert tops == {built.edge.external}, tops
    if both:
        assert behind == {int(n.overrides["VOCALCAST_SIP_PORT"]) for n in built.nodes}, behind


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
        sipp = await carrier_and_trunk(db, settings, sipp_ports, tmp_path)
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
    check_the_carriers_view(sipp, built)


def _stopped(pid: int) -> bool:
    """The process is stopped (SIGSTOP): state T in /proc."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except (OSError, IndexError):
        return False


FROZEN_AT = 1  # node1 stops itself right before its first POST /channels (node2 may take most calls)


async def test_a_node_frozen_between_its_fence_check_and_its_originate_gets_no_invite_past_kamailio(
    edge: tuple[Settings, Cluster], sipp_ports: Any, tmp_path: Path
) -> None:
    """The window only the edge closes: node1 passed every fence of its own (the claim, the originate's
    transaction, its lease, its ARI gate) and stops (SIGSTOP, a test hook) right before it writes POST
    /channels. node2 takes it over; node1 wakes and sends the request: its Asterisk dials Kamailio with
    node1's old epoch, which Kamailio refuses (403) against PostgreSQL. The carrier gets no INVITE for it.
    Without Kamailio's check (route(FENCE) removed from kamailio.cfg) the same run shows that INVITE."""
    settings, built = edge
    node1 = built.nodes[0]
    procs.stop(node1.state_dir, "engine", timeout_s=15)
    freeze = {**node1.overrides, "VOCALCAST_TEST_FREEZE_ORIGINATE": str(FROZEN_AT)}
    pid = await asyncio.to_thread(stack.start_engine, node1.settings(), overrides=freeze)
    kamailio_log = built.edge.state_dir / "logs" / "kamailio.log"
    log_start = kamailio_log.stat().st_size
    async with Database(settings.dsn, min_size=1, max_size=4) as db:
        sipp = await carrier_and_trunk(db, settings, sipp_ports, tmp_path)
        async with sipp:
            send = await long_listeners_send(db, settings, tmp_path, first=26500000, count=24)
            try:
                await wait_for(lambda: _stopped(pid), timeout_s=30, interval_s=0.02, what="node1 to freeze")
                await wait_for(
                    lambda: db.fetchval("SELECT taken_over_by FROM nodes WHERE name = 'node1'"),
                    timeout_s=15,
                    what="node2 to take the frozen node1 over",
                )
                # Every call node1 placed before its freeze reached the carrier by now; and its late channel
                # is created surely after the takeover (adoption.py: CDR_CLOCK_SLACK_S, 1.5 s).
                await asyncio.sleep(2.0)
                before = invited_attempts(sipp) & await attempts_of(db, send.id, node1)
            finally:
                os.kill(pid, signal.SIGCONT)

            async def sent_after_waking() -> set[str]:
                return invited_attempts(sipp) & await attempts_of(db, send.id, node1) - before

            def refused() -> list[str]:
                with kamailio_log.open() as f:
                    f.seek(log_start)
                    return re.findall(
                        r"fence: node node1 epoch \d+ refused, attempt ([0-9a-f-]{36})", f.read()
                    )

            # node1's request reached its Asterisk, whose INVITE Kamailio refused (without the edge's
            # check, that INVITE reaches the carrier instead: the first assertion fails).
            with contextlib.suppress(AssertionError):
                await wait_for(refused, timeout_s=10, what="Kamailio to refuse node1's INVITE")
            late = await sent_after_waking()
            assert not late, f"node1 sent {len(late)} INVITE(s) after it woke up"
            (frozen,) = refused()
            await completed(db, send.id, timeout_s=120)
            await check_every_recipient(db, sipp, send.id)
            late = await sent_after_waking()
            row = await db.fetchrow(
                "SELECT a.node, a.app, a.outcome, a.reconciled, a.cut, r.attempts, r.outcome AS final "
                "FROM attempts a JOIN send_recipients r ON r.id = a.recipient_id WHERE a.id = $1",
                frozen,
            )
    print(f"\nfrozen attempt {frozen}: {dict(row)}; node1's INVITEs before the freeze {len(before)}")
    assert not late, f"node1 sent {len(late)} INVITE(s) after it woke up"
    assert frozen not in invited_attempts(sipp)
    assert row["app"] == "vocalcast-node1" and row["node"] == "node2", dict(row)
    # node2's foster recorded it as never placed: its recipient called again without using an attempt.
    assert (row["reconciled"], row["outcome"], row["cut"]) == ("fenced", "failed", "ours"), dict(row)
    check_the_carriers_view(sipp, built, both=False)


async def test_a_drained_node_finishes_its_calls_through_kamailio_and_the_other_carries_the_rest(
    edge: tuple[Settings, Cluster], sipp_ports: Any, tmp_path: Path
) -> None:
    settings, built = edge
    node1 = built.nodes[0]
    # A fenced node (the test before) is restarted: it joins again with a new epoch.
    procs.stop(node1.state_dir, "engine", timeout_s=15)
    await asyncio.to_thread(cluster.start_engines, built)
    async with Database(settings.dsn, min_size=1, max_size=4) as db:
        sipp = await carrier_and_trunk(db, settings, sipp_ports, tmp_path)
        async with sipp:
            send = await long_listeners_send(db, settings, tmp_path, first=27000000, count=80)

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
    check_the_carriers_view(sipp, built)


async def test_a_node_killed_with_its_media_server_stopped_mid_send_is_finished_by_the_other(
    edge: tuple[Settings, Cluster], sipp_ports: Any, tmp_path: Path
) -> None:
    settings, built = edge
    node1, node2 = built.nodes
    root = Path((settings.state_dir / "run" / "asterisk.root").read_text().strip())
    async with Database(settings.dsn, min_size=1, max_size=4) as db:
        sipp = await carrier_and_trunk(db, settings, sipp_ports, tmp_path)
        async with sipp:
            send = await long_listeners_send(db, settings, tmp_path)

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
    check_the_carriers_view(sipp, built)
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
