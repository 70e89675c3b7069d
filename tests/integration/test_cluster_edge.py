"""The local cluster through Kamailio (issue 19), on the real parts: `stack up --nodes 2`'s code starts the
Kamailio edge (docker/kamailio/kamailio.cfg), two Asterisk media servers and two engines on the test
instance's PostgreSQL. Measured at a SIPp carrier: a send over both nodes leaves through Kamailio from both
media servers within the carrier's channels and pace, every recipient ending right, through a trunk added
once (applied to Kamailio and to every media server); neither media server has a path to the message
library (http media transport), and the message, added after the cluster is up, is heard whole by the
carrier from both, each holding it in its media cache; a trunk with credentials behind an outbound proxy is
called through the proxy and authenticated by Kamailio (the carrier checks the digest); trunks that
register are registered by Kamailio, directly or through their outbound proxy; calls through Kamailio to
the recording number and to a registered trunk's line (handled as that trunk's inbound calls) reach the
recording IVR on both media servers (the whole recording call through Kamailio, stored in the library:
test_cluster_edge_big.py, `make cluster-test`)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import stack
from engine.domain.trunks import Trunk
from engine.media.paths import host_dir, instance_dir
from engine.services.messages import playback_uri
from engine.services.sends import create_send
from engine.services.trunks import Trunks
from engine.settings import Settings
from engine.stack import cluster, procs
from engine.stack.asterisk import cli
from engine.store import Database
from engine.store import trunks as trunks_store
from engine.telephony.edge import Cluster, Node, kamcmd, reload, render_dispatcher, write_dispatcher
from engine.telephony.trunks import edge_set
from lab import tones
from lab.dtmfpcap import RtpPcapBuilder
from lab.rtpcapture import RtpCapture, samples_to
from lab.sipp import SippProcess
from tests.integration.dialing import SIPP_DIR, customer, targets
from tests.integration.edgecluster import answered_by, asterisk_root, carrier_and_trunk, edge_cluster
from tests.integration.test_cluster import CPS, check_every_recipient, completed, invited_attempts, nodes_of
from tests.support import audiomatch
from tests.support.audiomatch import Heard
from tests.support.carrier import check_the_carriers_view
from tests.support.listeners import listeners_send

pytestmark = pytest.mark.integration

CHANNELS = 6
TONE_S = 1.0  # the message: tests.integration.dialing.customer's tone
MESSAGE_HZ = 700.0
NODE_APPS = {"vocalcast-node1", "vocalcast-node2"}


@pytest.fixture(scope="module")
def edge(stack_settings: Settings) -> Iterator[tuple[Settings, Cluster]]:
    yield from edge_cluster(stack_settings, max_channels=20)


async def test_a_send_over_two_nodes_leaves_through_kamailio_within_the_carriers_limits(
    edge: tuple[Settings, Cluster], sipp_ports: Any, tmp_path: Path
) -> None:
    settings, built = edge
    root = asterisk_root(settings)
    for node in built.nodes:
        library_out_of_reach(settings.media_dir, node)
    async with Database(settings.dsn, min_size=1, max_size=4) as db:
        sipp = await carrier_and_trunk(db, settings, sipp_ports, tmp_path, channels=CHANNELS, cps=CPS)
        assert sipp.media_port is not None
        async with sipp, RtpCapture([sipp.media_port]) as capture:
            # The message is added now, long after the media servers started: neither has seen it.
            who = await customer(db, settings, tmp_path, seconds=TONE_S)
            send = await listeners_send(db, settings, tmp_path, 23000000, 30, who=who)
            await completed(db, send.id, timeout_s=90)
        await check_every_recipient(db, sipp, send.id)
        assert set((await nodes_of(db, send.id)).keys()) == NODE_APPS
        attempts = {str(r["id"]): r["app"] for r in await db.fetch("SELECT id, app FROM attempts")}
    # Within the carrier's limits; every call reached it from Kamailio's external socket, from both
    # media servers, and calls of both engines reached it.
    check_the_carriers_view(sipp, channels=CHANNELS, cps=CPS, edge=built)
    assert {attempts[a] for a in invited_attempts(sipp)} == NODE_APPS
    # Both media servers played the message to the carrier, whole, fetched from their engine's media
    # listener into their media cache (they have no other way to it).
    heard = tone_per_call(capture, sipp.media_port)
    for node in built.nodes:
        first, last = int(node.overrides["VOCALCAST_RTP_START"]), int(node.overrides["VOCALCAST_RTP_END"])
        calls = [seconds for port, seconds in heard if first <= port <= last]
        print(f"{node.name}: {len(calls)} calls, the tone heard {sorted(calls)} s")
        assert calls and all(TONE_S * 0.95 <= s <= TONE_S * 1.05 for s in calls), (node.name, calls)
        url = playback_uri(node.settings(), who.message).removeprefix("sound:")
        assert url.startswith(f"http://127.0.0.1:{node.overrides['VOCALCAST_MEDIA_HTTP_PORT']}/"), url
        assert url in cli(node.settings(), root, "media cache show all"), node.name


def library_out_of_reach(library: Path, node: Node) -> None:
    """The node's Asterisk has no path to the message library: not in its filesystem (its root), not
    mounted anywhere in it, named by none of its configuration files (http media transport)."""
    settings = node.settings()
    assert settings.media_transport == "http"
    pid = procs.read_pid(settings.state_dir, "asterisk")
    assert pid is not None
    view = Path(f"/proc/{pid}/root")  # the filesystem as the Asterisk process sees it
    inside = view / instance_dir(settings).relative_to("/")
    assert inside.is_dir() and not (inside / "media").exists()
    assert not (view / library.relative_to("/")).exists()
    shown = library.stat()
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        point = view / line.split()[4].lstrip("/")
        with contextlib.suppress(OSError):
            assert (point.stat().st_dev, point.stat().st_ino) != (shown.st_dev, shown.st_ino), line
    for conf in (host_dir(settings) / "etc").iterdir():
        text = conf.read_text()
        assert str(library) not in text and f"{instance_dir(settings)}/media" not in text, conf


def tone_per_call(capture: RtpCapture, media_port: int) -> list[tuple[int, float]]:
    """Each call's RTP stream to the carrier's media port (a media server reuses its RTP ports from call
    to call: told apart by their SSRC): its source port and the seconds of the message's tone in it."""
    return [
        (stream.key.src_port, tones.tone_duration_s(stream.decoded_samples(), MESSAGE_HZ))
        for stream in capture.streams
        if stream.key.dst_port == media_port
    ]


async def test_a_trunk_with_credentials_is_authenticated_by_kamailio(
    edge: tuple[Settings, Cluster], sipp_ports: Any, tmp_path: Path
) -> None:
    """Its carrier behind an outbound proxy (the SIPp carrier listens as the proxy; nothing at the trunk's
    own address): every INVITE, the authenticated one too, goes through the proxy, the carrier's address
    in its Request-URI."""
    settings, built = edge
    sip_port, media_port = sipp_ports()
    behind_proxy, _ = sipp_ports()
    carrier = SippProcess(
        SIPP_DIR / "carrier_digest.xml",
        local_port=sip_port,
        media_port=media_port,
        workdir=tmp_path,
        keys={"username": "vcuser", "password": "s3cr=t"},
        extra_args=["-aa"],
        name="digest",
    )
    async with Database(settings.dsn, min_size=1, max_size=4) as db, carrier:
        # Changed from node1 (as its pages do): applied to Kamailio and to both media servers all the same.
        trunks = Trunks(db, built.nodes[0].settings())
        for old in await trunks.all():
            await trunks.remove(old.name)
        applied = await trunks.save(
            Trunk(
                name="edgedigest",
                host="127.0.0.1",
                port=behind_proxy,
                outbound_proxy=f"sip:127.0.0.1:{sip_port};lr",
                auth="digest",
                username="vcuser",
                password="s3cr=t",
                number_format="national",
                qualify=False,
            )
        )
        assert applied.loaded == ["edgedigest"] and applied.missing == [], applied
        who = await customer(db, settings, tmp_path, email="digest@example.fr", seconds=1.0)
        numbers = ["0624000001", "0624000002", "0624000003", "0624000004"]
        send = await create_send(
            db,
            settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets(numbers),
            origin="api",
            retries=0,
        )
        await completed(db, send.id, timeout_s=30)
    auth = [e for e in carrier.log_events() if e.get("event") == "AUTH"]
    # The carrier checked each call's digest against the trunk's credentials (held by Kamailio only).
    assert sorted(e["number"] for e in auth) == numbers, carrier.diagnostics()
    assert {e["valid"] for e in auth} == {"true"}
    invites = [m for m in carrier.messages() if m.direction == "received" and m.method == "INVITE"]
    assert len(invites) == 2 * len(numbers)  # each challenged, then sent again with its digest
    assert {m.start_line.split()[1].split("@")[1] for m in invites} == {f"127.0.0.1:{behind_proxy}"}


def test_stack_status_shows_every_piece_of_the_cluster(edge: tuple[Settings, Cluster]) -> None:
    settings, built = edge
    report = cluster.status(settings)
    pieces = report["pieces"]
    expected = {"kamailio"} | {f"{n.name}-{piece}" for n in built.nodes for piece in ("asterisk", "engine")}
    assert {name for name, piece in pieces.items() if piece["state"] == "running"} >= expected, pieces
    assert "asterisk" not in pieces and "engine" not in pieces  # the single-node pieces do not run here
    assert pieces["kamailio"]["external"] == built.edge.external
    for node in built.nodes:  # each engine's own media listener
        assert pieces[f"{node.name}-engine"]["media"] == node.settings().media_base_url + "/"
    assert {n["name"]: n["state"] for n in report["nodes"]} == {"node1": "active", "node2": "active"}
    text = stack.format_status(report)
    for name in expected:
        assert f"{name} running" in " ".join(text.split()), text


async def test_trunk_apply_renders_the_edge_list_again_and_kamailio_takes_it(
    edge: tuple[Settings, Cluster],
) -> None:
    """`vocalcast trunk apply` (the compose file's edge-prepare, the edge host's unit): Kamailio running on a
    list that lost every trunk gets each trunk's set back, live, and every media server its trunks."""
    settings, built = edge
    async with Database(settings.dsn, min_size=1, max_size=2) as db:
        trunks = Trunks(db, settings)
        if not await trunks.all():
            await trunks.save(Trunk(name="edgeapply", host="127.0.0.1", port=5999, qualify=False))
        names = [t.name for t in await trunks.all()]
    sets = {str(edge_set(name)) for name in names}

    def live_sets() -> set[str]:
        return set(re.findall(r"SET: \{\s*ID: (\d+)", kamcmd(built.edge, "dispatcher.list")))

    write_dispatcher(built.edge, render_dispatcher([], built.media_servers()))
    assert reload(built.edge)
    assert live_sets() == {"2"}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "engine.cli", "trunk", "apply"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "trunks rendered and applied" in done.stdout, done.stdout + done.stderr
    assert live_sets() == sets | {"2"}


async def test_a_trunk_that_registers_is_registered_by_kamailio_and_its_line_called_through_it(
    edge: tuple[Settings, Cluster], sipp_ports: Any, tmp_path: Path
) -> None:
    """`--auth register` through the edge: Kamailio (uac, its db_text table rendered by the trunk commands)
    registers at the carrier with the trunk's credentials, its contact its own external address; no media
    server registers. A trunk with an outbound proxy is registered through it: the REGISTER reaches the
    proxy (nothing listens at the registrar's own address), naming the registrar in its Request-URI.
    Then four calls at once through Kamailio's external address, dispatched round robin (two per media
    server): one to the recording number, three to the registered trunk's line (`--line`, one channel).
    The line's calls reach the media servers as that trunk's inbound calls do on one node — routed by the
    trunk's username as the called number (here the recording number; their To header names no number of
    ours), counted in the trunk's channels: one per media server is answered by the recording IVR, the
    third, on a media server where the trunk's one channel is taken, is refused busy. The call to the
    recording number is answered by the recording IVR too: both media servers answered."""
    settings, built = edge
    assert settings.recording_number == LINE_USER
    registrars = {}
    for name in ("registrar", "proxy"):
        sip_port, media_port = sipp_ports()
        registrars[name] = SippProcess(
            SIPP_DIR / "registrar_digest.xml",
            local_port=sip_port,
            media_port=media_port,
            workdir=tmp_path,
            # The line's trunk registers as its number, as French carriers name their accounts.
            keys={"username": LINE_USER if name == "registrar" else "reguser", "password": "r3g=pw"},
            name=name,
        )
    direct, proxy = registrars["registrar"], registrars["proxy"]
    behind_proxy, _ = sipp_ports()  # the proxied trunk's registrar: nothing listens there
    trunks = [
        Trunk(
            name="edge-line",
            host="127.0.0.1",
            port=direct.local_port,
            username=LINE_USER,
            registration_line=True,
            max_channels=1,
        ),
        Trunk(
            name="edgeregpx",
            host="127.0.0.1",
            port=behind_proxy,
            outbound_proxy=f"sip:127.0.0.1:{proxy.local_port};lr",
            username="reguser",
        ),
    ]
    async with Database(settings.dsn, min_size=1, max_size=2) as db, direct, proxy:
        # Both stored, then applied at once (as `vocalcast trunk apply`): one table, one timer tick.
        for trunk in trunks:
            registering = dataclasses.replace(trunk, auth="register", password="r3g=pw", qualify=False)
            await trunks_store.upsert_trunk(db, registering.validate())
        assert (await Trunks(db, settings).apply()).missing == []
        for _ in range(100):  # Kamailio's registration timer ticks every 5 s
            if all(registered(r) for r in (direct, proxy)):
                break
            await asyncio.sleep(0.1)
        plain, *calls = await asyncio.gather(
            edge_call(built, sipp_ports, tmp_path, settings.recording_number, name="number"),
            *(edge_call(built, sipp_ports, tmp_path, "edge-line", name=f"line{i}") for i in range(3)),
        )
        for trunk in trunks:
            await trunks_store.remove_trunk(db, trunk.name)
        await Trunks(db, settings).apply()
    # Removed with its trunk (Kamailio's registrations in memory: none left).
    assert "l_uuid" not in kamcmd(built.edge, "uac.reg_dump")
    for registrar, trunk, user, aor in (
        (direct, "edge-line", LINE_USER, "127.0.0.1"),
        (proxy, "edgeregpx", "reguser", f"127.0.0.1:{behind_proxy}"),
    ):
        events = registered(registrar)
        assert events, registrar.diagnostics()
        assert events[0]["valid"] == "true", events
        assert events[0]["to"] == f"sip:{user}@{aor}"
        assert events[0]["contact"] == f"sip:{trunk}@{built.edge.external}"
        sent = [m for m in registrar.messages() if m.method == "REGISTER"]
        # Sent from Kamailio's external socket (the carrier's side), to the registrar by its Request-URI.
        assert sent and {m.start_line.split()[1] for m in sent} == {f"sip:{aor}"}, sent
        vias = [v for m in sent for n, v in m.headers if n.lower() == "via"]
        assert vias and all(built.edge.external in v for v in vias), vias
    # The line: one call answered by each media server, each by the recording IVR; the third busy.
    busy = [sipp for sipp, _ in calls if "BUSY" in events_of(sipp)]
    answered = [(sipp, heard) for sipp, heard in calls if "ANSWERED" in events_of(sipp)]
    assert len(busy) == 1 and len(answered) == 2, [events_of(sipp) for sipp, _ in calls]
    ports = {int(n.overrides["VOCALCAST_SIP_PORT"]) for n in built.nodes}
    assert set().union(*(answered_by(sipp) for sipp, _ in answered)) == ports
    assert "ANSWERED" in events_of(plain[0]) and answered_by(plain[0]) <= ports, plain[0].diagnostics()
    for sipp, heard in [plain, *answered]:
        assert len(audiomatch.find_prompt(heard, "ivr_welcome", first_s=0.6)) == 1, sipp.diagnostics()
        assert audiomatch.find_prompt(heard, "unallocated", first_s=0.6) == [], sipp.name
    # Busy before anything was answered: a media server refused it (486), not Kamailio.
    (refused,) = busy
    statuses = [m.status for m in refused.messages() if m.direction == "received" and m.status]
    assert 486 in statuses and 200 not in statuses, statuses


LINE_USER = "0172360170"  # the line's account name: the recording number (VOCALCAST_RECORDING_NUMBER)
LINE_CALL_S = 2.0  # the welcome prompt starts after the answer and the AGI connection: margin under load


async def edge_call(
    built: Cluster, sipp_ports: Any, tmp_path: Path, called: str, *, name: str
) -> tuple[SippProcess, Heard]:
    """A carrier's call through Kamailio's external address to ``called`` (Request-URI and To: the
    recording number, or a trunk's name, as the carrier calls a registered contact sip:<trunk>@<edge>);
    silent, the caller hangs up after LINE_CALL_S. What it heard."""
    sip_port, media_port = sipp_ports()
    sipp = SippProcess(
        SIPP_DIR / "edge_ivr_caller.xml",
        local_port=sip_port,
        media_port=media_port,
        remote=built.edge.external,
        service=called,
        calls=1,
        recv_timeout_ms=round(LINE_CALL_S * 1000),
        keys={
            "pcap": str(RtpPcapBuilder(codec="alaw").silence(LINE_CALL_S).write(tmp_path / f"{name}.pcap")),
            "to": called,
            "from": "+33612345678",
        },
        workdir=tmp_path,
        trace_messages=True,
        name=name,
    )
    async with RtpCapture([media_port]) as capture, sipp:
        assert await sipp.wait(LINE_CALL_S + 15) == 0, sipp.diagnostics()
    return sipp, Heard(samples_to(capture.streams, media_port))


def events_of(sipp: SippProcess) -> list[str]:
    return [e.get("event", "") for e in sipp.log_events()]


def registered(registrar: SippProcess) -> list[dict[str, str]]:
    return [e for e in registrar.log_events() if e.get("event") == "REGISTER"]
