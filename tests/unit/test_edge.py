"""Issue 19, the Kamailio edge's pure parts: each media server's trunks point at Kamailio and name the trunk
(no credentials, no carrier address, no identify of the carrier); Kamailio's dispatcher list holds every
trunk's carrier with its limits and credentials, and the media servers; the local cluster's ports never
collide."""

from __future__ import annotations

import dataclasses
import subprocess
import time
from pathlib import Path

import pytest

from engine.domain.trunks import Trunk
from engine.errors import StackError
from engine.settings import Settings
from engine.stack.cluster import layout
from engine.telephony.edge import (
    Cluster,
    Edge,
    MediaServer,
    Node,
    apply_trunks,
    kamcmd,
    read_topology,
    reload,
    render_dispatcher,
    render_registrations,
    write_registrations,
    write_topology,
)
from engine.telephony.trunks import EDGE_ENDPOINT, edge_set, render_pjsip

DIGEST = Trunk(
    name="opd",
    host="192.0.2.20",
    port=5070,
    auth="register",
    username="u1",
    password="pw=1",
    outbound_proxy="sip:proxy.example.fr;lr",
    max_channels=7,
    max_cps=2.5,
)


def test_with_an_edge_every_trunk_points_at_kamailio_and_names_itself() -> None:
    text = render_pjsip([DIGEST, Trunk(name="opa", host="192.0.2.10")], edge="127.0.0.1:5080")
    # `;` would start a comment in pjsip.conf: the parameters are escaped.
    assert f"contact = sip:127.0.0.1:5080\\;vc-trunk=opd\\;vc-set={edge_set('opd')}" in text
    assert f"contact = sip:127.0.0.1:5080\\;vc-trunk=opa\\;vc-set={edge_set('opa')}" in text
    # Kamailio holds the carrier's address, credentials, registration and proxy: Asterisk none of them
    # (the carrier's address is only named in each trunk's comment line).
    config = "\n".join(line for line in text.splitlines() if not line.startswith(";"))
    absents = ("192.0.2.20", "192.0.2.10", "pw=1", "outbound_auth", "type = registration", "proxy.example")
    for absent in absents:
        assert absent not in config, absent
    # The one endpoint of the inbound calls, identified by Kamailio's internal address.
    assert f"[{EDGE_ENDPOINT}]\ntype = identify\nendpoint = {EDGE_ENDPOINT}\nmatch = 127.0.0.1:5080" in text
    assert text.count("type = identify") == 1
    # Without an edge, the same trunk is the carrier's own (the single-node default is unchanged).
    alone = render_pjsip([DIGEST])
    assert "contact = sip:192.0.2.20:5070" in alone and "outbound_auth = opd-auth" in alone
    assert EDGE_ENDPOINT not in alone


def test_the_dispatcher_list_holds_each_trunks_carrier_limits_credentials_and_the_media_servers() -> None:
    text = render_dispatcher(
        [DIGEST, Trunk(name="opa", host="192.0.2.10")],
        [MediaServer("node1", "127.0.0.1", 5160), MediaServer("node2", "127.0.0.1", 5260)],
    )
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == [
        f"{edge_set('opa')} sip:192.0.2.10:5060 0 0 duid=opa;vc_ch=30;vc_cps=5",
        # Hex: a password may hold '=' (and the list's attributes are key=value;...).
        f"{edge_set('opd')} sip:192.0.2.20:5070 0 0 duid=opd;vc_ch=7;vc_cps=3;vc_user={b'u1'.hex()};"
        f"vc_pass={b'pw=1'.hex()};vc_px={b'sip:proxy.example.fr;lr'.hex()}",
        "2 sip:127.0.0.1:5160 8 0 duid=node1",
        "2 sip:127.0.0.1:5260 8 0 duid=node2",
    ]
    assert edge_set("opa") not in (1, 2) and edge_set("opa") == edge_set("opa")


def test_a_trunk_refused_by_the_rules_never_reaches_the_list() -> None:
    with pytest.raises(Exception, match="trunk name"):
        render_dispatcher([Trunk(name="Bad Name", host="192.0.2.1")], [])


def test_the_local_clusters_ports_are_distinct(tmp_path: Path) -> None:
    settings = Settings.from_env({"VOCALCAST_STATE_DIR": str(tmp_path), "VOCALCAST_MAX_CHANNELS": "20"})
    cluster = layout(settings, 3)
    ports: list[int] = [cluster.edge.internal_port, cluster.edge.external_port]
    ranges = []
    for node in cluster.nodes:
        o = node.overrides
        ports += [int(o[k]) for k in o if k.endswith("_PORT") and k != "VOCALCAST_PG_PORT"]
        ports.remove(settings.demo_sip_port)
        ranges.append(range(int(o["VOCALCAST_RTP_START"]), int(o["VOCALCAST_RTP_END"]) + 1))
        assert o["VOCALCAST_SIP_EDGE"] == cluster.edge.internal
        assert o["VOCALCAST_MEDIA_DIR"] == str(settings.media_dir)
        assert node.settings().app_name == f"vocalcast-{node.name}"
        # No media server reads the library: each plays from its own engine's media listener.
        assert node.settings().media_transport == "http"
        assert node.settings().media_base_url == f"http://127.0.0.1:{o['VOCALCAST_MEDIA_HTTP_PORT']}"
    s = settings
    instance = [s.sip_port, s.ari_port, s.agi_port, s.http_port, s.hep_port, s.media_http_port]
    assert len(set(ports)) == len(ports) and not set(ports) & set(instance), ports
    ranges.append(range(settings.rtp_start, settings.rtp_end + 1))
    for i, a in enumerate(ranges):
        for b in ranges[i + 1 :]:
            assert not set(a) & set(b)
        assert not set(a) & set(ports)
    with pytest.raises(StackError):
        layout(settings, 0)


def test_kamcmd_failing_with_exit_code_0_is_an_error_and_a_refused_reload_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kamcmd exits 0 when the RPC fails ("error: 500 - Ongoing reload", measured): that is an error, and a
    reload refused so (Kamailio's reload_delta) is tried again until it takes."""
    edge = Edge(state_dir=tmp_path, internal_port=5080, external_port=5060)
    edge.dir.mkdir()
    (edge.dir / "ctl").touch()
    answers = ["error: 500 - Ongoing reload\n", "error: 500 - Ongoing reload\n", "Ok. Dispatcher reloaded.\n"]
    calls: list[list[str]] = []

    def fake_run(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, stdout=answers.pop(0), stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(time, "sleep", lambda _s: None)
    with pytest.raises(StackError, match="Ongoing reload"):
        kamcmd(edge, "dispatcher.reload")
    assert reload(edge) is True
    assert answers == [] and len(calls) == 3
    assert calls[0][:3] == ["kamcmd", "-s", f"unixs:{tmp_path}/kamailio/ctl"]
    (edge.dir / "ctl").unlink()
    assert reload(edge) is False  # not running: nothing to reload, it reads the list when it starts


def test_the_cluster_is_found_from_its_own_state_dir_and_from_each_nodes(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"VOCALCAST_STATE_DIR": str(tmp_path / "vc"), "VOCALCAST_MAX_CHANNELS": "20"}
    )
    (settings.state_dir / "run").mkdir(parents=True)
    assert read_topology(settings) is None
    built = layout(settings, 2)
    write_topology(settings, built)
    assert read_topology(settings) == built
    for node in built.nodes:
        found = read_topology(node.settings())
        assert found == built and found.edge.state_dir == settings.state_dir
    # A directory that merely sits two levels below is no node of it.
    stranger = Settings.from_env({"VOCALCAST_STATE_DIR": str(settings.state_dir / "nodes" / "node9")})
    assert read_topology(stranger) is None


async def test_on_the_edge_host_the_list_names_the_nodes_addresses_and_their_trunks_wait_for_them(
    tmp_path: Path,
) -> None:
    """A bare-metal edge host (issue 19): its topology names nodes on other hosts (their SIP address), whose
    Asterisk directories are not here — the list is rendered with their addresses and Kamailio not running
    is said; the nodes are unreachable from here (each applies its own), nothing is written for them."""
    home = tmp_path / "cluster"
    elsewhere = tmp_path / "not-here"
    nodes = [
        Node(
            f"node{i}",
            {
                "VOCALCAST_STATE_DIR": str(elsewhere / f"node{i}"),
                "VOCALCAST_NODE": f"node{i}",
                "VOCALCAST_SIP_BIND": f"10.0.0.{i}",
                "VOCALCAST_SIP_PORT": "5160",
                "VOCALCAST_SIP_EDGE": "10.0.0.9:5080",
            },
        )
        for i in (1, 2)
    ]
    built = Cluster(Edge(home, internal_port=5080, external_port=5060, host="10.0.0.9"), nodes)
    settings = Settings.from_env({"VOCALCAST_STATE_DIR": str(home), "VOCALCAST_DEMO": "0"})
    done = await apply_trunks(settings, built, [DIGEST])
    assert done.unreachable == ["node1", "node2"] and done.edge_down and done.loaded == {}
    lines = [line for line in built.edge.dispatcher_list.read_text().splitlines() if line.startswith("2 ")]
    assert lines == ["2 sip:10.0.0.1:5160 8 0 duid=node1", "2 sip:10.0.0.2:5160 8 0 duid=node2"]
    assert not elsewhere.exists()


def test_the_registrations_table_holds_each_registering_trunk_as_its_pjsip_registration_would() -> None:
    text = render_registrations(
        [
            DIGEST,  # auth=register
            Trunk(name="opa", host="192.0.2.10"),
            Trunk(name="opb", host="192.0.2.11", port=5080, auth="digest", username="b", password="x"),
            Trunk(
                name="opc",
                host="192.0.2.12",
                auth="register",
                username="c1",
                password="p=c",
                from_domain="c.fr",
            ),
        ]
    )
    header, *rows = text.splitlines()
    assert header.split()[0] == "id(int,auto)" and "realm(string,null)" in header
    # id:l_uuid:l_username:l_domain:r_username:r_domain:realm:auth_username:auth_password:auth_ha1:auth_proxy:
    # expires:flags:reg_delay:contact_addr:socket — ':' escaped inside a value (db_text).
    # opd registers through its outbound proxy (auth_proxy: uac's next hop), the Request-URI (sip:<r_domain>)
    # naming its registrar, port included, for the proxy to route by.
    assert rows == [
        "1:opc:c1:c.fr:c1:c.fr::c1:p=c::sip\\:192.0.2.12\\:5060:3600:0:0::",
        "2:opd:u1:192.0.2.20\\:5070:u1:192.0.2.20\\:5070::u1:pw=1::sip\\:proxy.example.fr;lr:3600:0:0::",
    ]


def test_the_registrations_table_written_twice_in_one_second_is_newer_each_time(tmp_path: Path) -> None:
    """db_text reads a table again only when its file's time (whole seconds) changed: two trunks added at
    once must not leave Kamailio on the first version."""
    edge = Edge(tmp_path, internal_port=5080, external_port=5060)
    times = []
    for trunks in ([DIGEST], [DIGEST, dataclasses.replace(DIGEST, name="ope")], []):
        write_registrations(edge, render_registrations(trunks))
        times.append(int((edge.registrations_db / "uacreg").stat().st_mtime))
    assert times[0] < times[1] < times[2], times
