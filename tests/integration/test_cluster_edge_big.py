"""`make cluster-test` (not in `make test`, about 3 min): issue 19's big runs through Kamailio, to a SIPp
carrier limited to 40 channels and 10 calls/s, measured at the carrier (never more than 40 dialogs nor the
pace's INVITEs in any second, every call from Kamailio, from both media servers when both carried calls):
- recording calls to the recording number through Kamailio's external address, one answered by each media
  server: the code typed, a voice recorded and validated, each stored in its account's library (the voice
  found in the stored WAV), fetched by the engine of the node that answered through its media server's ARI,
  nothing left in any media server's spool;
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
import json
import os
import re
import signal
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine import stack
from engine.media.paths import recording_spool
from engine.services.nodes import set_draining
from engine.settings import Settings
from engine.stack import asterisk, cluster, procs
from engine.store import Database
from engine.store import messages as messages_store
from engine.telephony.edge import Cluster, Node
from lab import tones
from lab.dtmfpcap import RtpPcapBuilder
from lab.rtpcapture import RtpCapture, samples_to
from lab.sipp import SippProcess
from tests.integration.conftest import wait_for
from tests.integration.dialing import SIPP_DIR
from tests.integration.edgecluster import answered_by, asterisk_root, carrier_and_trunk, edge_cluster
from tests.integration.test_cluster import check_every_recipient, completed, invited_attempts, nodes_of
from tests.integration.test_ivr import (
    KEY_S,
    LEAD_S,
    TRIM_PAD_S,
    code_entry,
    french_speech,
    new_account,
    prompt_s,
    voiced,
)
from tests.support import audiomatch
from tests.support.audiomatch import Heard
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


async def test_recording_calls_through_kamailio_land_in_the_library_from_both_media_servers(
    edge: tuple[Settings, Cluster], sipp_ports: Any, tmp_path: Path
) -> None:
    """The whole recording call of tests/integration/test_ivr.py, from a carrier's caller to Kamailio's
    external address: two calls at once, dispatched round robin, so one is answered by each media server
    (the Contact of its 200). Each types its account's code, records a voice and validates it; each
    message is in its account's library, fetched by the answering node's engine through its own media
    server's ARI (its log), and no media server keeps a raw recording."""
    settings, built = edge
    speech = await asyncio.to_thread(french_speech, tmp_path)
    logs = {node.name: node.state_dir / "logs" / "engine.log" for node in built.nodes}
    logged = {name: path.stat().st_size for name, path in logs.items()}
    async with Database(settings.dsn, min_size=1, max_size=4) as db:
        accounts = [await new_account(settings, db, next_ref=ref) for ref in (232, 233)]
        calls = await asyncio.gather(
            *(
                recording_call(settings, built, sipp_ports, tmp_path, code=code, speech=speech, name=f"r{i}")
                for i, (_, code) in enumerate(accounts)
            )
        )
        stored = [await messages_store.list_messages(db, account_id) for account_id, _ in accounts]
    ports = {int(n.overrides["VOCALCAST_SIP_PORT"]): n.name for n in built.nodes}
    answering = []
    for sipp, _ in calls:
        events = [e.get("event") for e in sipp.log_events()]
        assert "BYE_RECEIVED" in events, sipp.diagnostics()  # the IVR hung up after its goodbye
        by = answered_by(sipp)
        assert len(by) == 1 and by <= ports.keys(), by
        answering.append(ports[by.pop()])
    assert sorted(answering) == sorted(ports.values()), answering  # each media server answered one
    voice = voiced(speech)
    for ref, (sipp, heard), messages in zip((232, 233), calls, stored, strict=True):
        # One phone message per call, the very voice streamed in it, its reference announced.
        assert [(m.ref, m.origin, m.is_greeting) for m in messages] == [(ref, "phone", False)], messages
        wav, _ = tones.read_wav(messages[0].wav(settings.media_dir))
        matches = audiomatch.find(wav, voice)
        assert [m.offset for m in matches] == [pytest.approx(TRIM_PAD_S * 8000, abs=400)], matches
        words = ["ivr_saved_prefix", "num_2", "num_100", f"num_{ref - 200}"]
        assert audiomatch.find_sequence(heard, words) is not None, (sipp.name, ref)
    for node in built.nodes:
        # Each recording fetched once, by the engine of the node that answered, from its own media server.
        with logs[node.name].open() as log:
            log.seek(logged[node.name])
            fetched = [e for e in map(json.loads, log) if e.get("event") == "ivr.recording_fetched"]
        assert [e["server"] for e in fetched] == [node.name], (node.name, fetched)
        spool = recording_spool(node.settings())[1]
        assert sorted(p.name for p in spool.glob("ivr-*")) == [], node.name


async def recording_call(
    settings: Settings,
    built: Cluster,
    sipp_ports: Any,
    tmp_path: Path,
    *,
    code: str,
    speech: array[int],
    name: str,
) -> tuple[SippProcess, Heard]:
    """One caller through Kamailio (tests/sipp/edge_ivr_caller.xml): the code, "1" (record a message), the
    voice ended by "#", "2" (validate); what it heard."""
    pcap = RtpPcapBuilder(codec="alaw").silence(LEAD_S)
    code_entry(pcap, code).silence(1.0).digits("1", tone_s=KEY_S)
    pcap.silence(prompt_s("ivr_record") + 1.5)
    pcap.audio(speech).silence(0.6).digits("#", tone_s=KEY_S)
    pcap.silence(1.0).digits("2", tone_s=KEY_S)
    pcap.silence(1.0)
    sip_port, media_port = sipp_ports()
    sipp = SippProcess(
        SIPP_DIR / "edge_ivr_caller.xml",
        local_port=sip_port,
        media_port=media_port,
        remote=built.edge.external,
        service=settings.recording_number,
        calls=1,
        recv_timeout_ms=40_000,
        keys={
            "pcap": str(pcap.write(tmp_path / f"{name}.pcap")),
            "to": settings.recording_number,
            "from": "+33612345678",
        },
        workdir=tmp_path,
        trace_messages=True,
        name=name,
    )
    async with RtpCapture([media_port]) as capture, sipp:
        assert await sipp.wait(50) == 0, sipp.diagnostics()
    return sipp, Heard(samples_to(capture.streams, media_port))


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
        sipp = await carrier_and_trunk(db, settings, sipp_ports, tmp_path, channels=CHANNELS, cps=CPS)
        async with sipp:
            send = await listeners_send(db, settings, tmp_path, 26500000, 24, seconds=LONG_S)
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
    check_the_carriers_view(sipp, channels=CHANNELS, cps=CPS, edge=built, every_node=False)


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
