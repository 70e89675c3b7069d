"""The local cluster (`vocalcast stack up --nodes N`, issue 19): one PostgreSQL, the Kamailio edge, and N
nodes, each an Asterisk media server (its own instance dir and ports in the shared cached root) and the
engine that drives it (its own node name and ARI application, VOCALCAST_CLUSTER=1), all on 127.0.0.1.

Ports, from the instance's settings: Kamailio listens for the carriers on SIP port + 50 and for the media
servers on SIP port + 51; node i (1..N) takes every port of the instance plus 100 x i (SIP, ARI, FastAGI,
HEP, HTTP, SMTP, media) and the i-th RTP range after the instance's own. The topology is kept in
<state dir>/run/cluster.json: `stack down`, `stack status` and `vocalcast trunk add|remove` read it.
The engines share the instance's media directory (one host) and its secrets; the media servers do not see
it: the nodes run the http media transport (VOCALCAST_MEDIA_TRANSPORT=http), as the compose file's do —
each Asterisk plays a message from its engine's media listener by a signed URL, through its media cache,
and the IVR fetches each recording through the ARI of the Asterisk that made it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import time
from typing import Any

from engine.domain.trunks import usable_trunks
from engine.errors import StackError
from engine.settings import INSTANCE_FILE, Settings, instance_record
from engine.stack import asterisk, kamailio, procs
from engine.telephony import edge
from engine.telephony.edge import TOPOLOGY, Cluster, Edge, Node, read_topology

NODE_STEP = 100
EDGE_EXTERNAL_OFFSET = 50
EDGE_INTERNAL_OFFSET = 51
_SHIFTED = {
    "VOCALCAST_SIP_PORT": "sip_port",
    "VOCALCAST_ARI_PORT": "ari_port",
    "VOCALCAST_AGI_PORT": "agi_port",
    "VOCALCAST_HEP_PORT": "hep_port",
    "VOCALCAST_HTTP_PORT": "http_port",
    "VOCALCAST_SMTP_PORT": "smtp_port",
    "VOCALCAST_MEDIA_HTTP_PORT": "media_http_port",
}


def layout(settings: Settings, count: int, extra: dict[str, str] | None = None) -> Cluster:
    """The cluster of ``count`` nodes this instance's settings give (``extra``: variables every node
    gets, e.g. shorter timers in tests)."""
    if not 1 <= count <= 9:
        raise StackError("a local cluster has 1 to 9 nodes")
    edge = Edge(
        state_dir=settings.state_dir,
        internal_port=settings.sip_port + EDGE_INTERNAL_OFFSET,
        external_port=settings.sip_port + EDGE_EXTERNAL_OFFSET,
    )
    span = settings.rtp_end - settings.rtp_start + 1
    nodes = []
    for i in range(1, count + 1):
        name = f"node{i}"
        ari_port = settings.ari_port + NODE_STEP * i
        overrides = {
            **(extra or {}),
            "VOCALCAST_STATE_DIR": str(settings.state_dir / "nodes" / name),
            "VOCALCAST_NODE": name,
            "VOCALCAST_CLUSTER": "1",
            "VOCALCAST_SIP_EDGE": edge.internal,
            "VOCALCAST_MEDIA_DIR": str(settings.media_dir),
            # No media server mounts the library (issue 19): messages over HTTP, recordings through ARI.
            "VOCALCAST_MEDIA_TRANSPORT": "http",
            "VOCALCAST_MEDIA_URL": "",
            "VOCALCAST_MEDIA_SERVERS": f"{name}=http://127.0.0.1:{ari_port}",
            "VOCALCAST_CACHE_DIR": str(settings.cache_dir),
            "VOCALCAST_PG_PORT": str(settings.pg_port),
            "VOCALCAST_DEMO": "1" if settings.demo else "0",
            "VOCALCAST_DEMO_SIP_PORT": str(settings.demo_sip_port),
            # Its RTP range is the instance's span: the calls it is sized for are the instance's.
            "VOCALCAST_MAX_CHANNELS": str(settings.max_channels),
            "VOCALCAST_IVR_MAX_CALLS": str(settings.ivr_max_calls),
            "VOCALCAST_RTP_START": str(settings.rtp_start + i * span),
            "VOCALCAST_RTP_END": str(settings.rtp_start + (i + 1) * span - 1),
            **{env: str(getattr(settings, attr) + NODE_STEP * i) for env, attr in _SHIFTED.items()},
        }
        nodes.append(Node(name, overrides))
    return Cluster(edge, nodes)


def _prepare_node(settings: Settings, node: Node) -> Settings:
    """The node's state dir, the instance's secrets copied in (one database, one secret key), its
    instance record (a command run there sees the node's ports)."""
    from engine.stack import GENERATED_SECRETS, ensure_state_dirs  # noqa: PLC0415 - cycle

    node_dir = node.state_dir
    node_dir.mkdir(parents=True, exist_ok=True)
    (node_dir / "secrets").mkdir(mode=0o700, exist_ok=True)
    for env in GENERATED_SECRETS:
        source = settings.secrets_dir / env
        if source.is_file():
            shutil.copyfile(source, node_dir / "secrets" / env)
            (node_dir / "secrets" / env).chmod(0o600)
    node_settings = node.settings()
    ensure_state_dirs(node_settings)
    (node_dir / INSTANCE_FILE).write_text(instance_record(node_settings))
    return node_settings


def up(
    settings: Settings, count: int, *, engine: bool = True, extra: dict[str, str] | None = None
) -> tuple[Cluster, list[str]]:
    """Start what is missing of the cluster (harmless twice): PostgreSQL, every node's Asterisk, Kamailio
    (its dispatcher list from the trunks and the media servers), the demo phone, the engines."""
    from engine import stack  # noqa: PLC0415 - cycle

    settings = stack.ensure_secrets(settings)
    existing = read_topology(settings)
    cluster = layout(settings, count, extra)
    if existing is not None and [n.name for n in existing.nodes] != [n.name for n in cluster.nodes]:
        raise StackError(f"a cluster of {len(existing.nodes)} nodes runs here: `stack down` first")
    root, started, trunks = stack.prepare_instance(settings)
    edge.write_topology(settings, cluster)
    usable = usable_trunks(trunks, demo=settings.demo)
    node_settings = [_prepare_node(settings, node) for node in cluster.nodes]
    for node, ns in zip(cluster.nodes, node_settings, strict=True):
        (ns.state_dir / "run" / "asterisk.root").write_text(str(root.path) + "\n")
        if procs.read_pid(ns.state_dir, "asterisk") is None:
            asterisk.render_config(ns, root, usable)
            asterisk.start(ns, root)
            if not _listening(ns.ari_port):
                # Its HTTP port was taken at that instant (the test blocks lie in the ephemeral range, where
                # any outgoing connection may hold it briefly): once more.
                asterisk.stop(ns, root.path)
                asterisk.start(ns, root)
                if not _listening(ns.ari_port):
                    raise StackError(f"{node.name}'s Asterisk does not serve ARI on {ns.ari_port}")
            started.append(f"{node.name}-asterisk")
    edge.write_registrations(cluster.edge, edge.render_registrations(usable))
    edge.write_dispatcher(cluster.edge, edge.render_dispatcher(usable, cluster.media_servers()))
    if procs.read_pid(settings.state_dir, kamailio.NAME) is None:
        kamailio.start(cluster.edge, settings)
        started.append("kamailio")
    else:
        edge.reload(cluster.edge)
    if settings.demo and procs.read_pid(settings.state_dir, "demo-phone") is None:
        stack.start_demo_phone(settings)
        started.append("demo-phone")
    if engine:
        started += start_engines(cluster)
    return cluster, started


def start_engines(cluster: Cluster) -> list[str]:
    """Each node's engine that does not run yet, started with the node's own settings."""
    from engine import stack  # noqa: PLC0415 - cycle

    started = []
    for node in cluster.nodes:
        if procs.read_pid(node.state_dir, "engine") is None:
            stack.start_engine(node.settings(), overrides=node.overrides)
            started.append(f"{node.name}-engine")
    return started


def stop_engines(cluster: Cluster) -> list[str]:
    return [
        f"{node.name}-engine" for node in cluster.nodes if procs.stop(node.state_dir, "engine", timeout_s=15)
    ]


def _listening(port: int, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
        time.sleep(0.1)
    return False


def down(settings: Settings) -> list[str]:
    """Stop the engines, Kamailio, the media servers, then what `stack down` stops."""
    from engine import stack  # noqa: PLC0415 - cycle

    cluster = read_topology(settings)
    if cluster is None:
        return stack.down(settings)
    stopped = stop_engines(cluster)
    if kamailio.stop(cluster.edge):
        stopped.append("kamailio")
    root = stack._recorded_root(settings)
    for node in cluster.nodes:
        if asterisk.stop(node.settings(), root):
            stopped.append(f"{node.name}-asterisk")
    stopped += stack.down(settings)
    (settings.state_dir / TOPOLOGY).unlink(missing_ok=True)
    return stopped


def status(settings: Settings) -> dict[str, Any]:
    """`stack status` of a cluster: the instance's report, Kamailio, and every node's Asterisk and engine."""
    from engine import stack  # noqa: PLC0415 - cycle

    report = stack.status(settings)
    cluster = read_topology(settings)
    if cluster is None:
        return report
    pieces = report["pieces"]
    for single in ("asterisk", "engine"):  # the single-node pieces do not run in a cluster
        if pieces.get(single, {}).get("state") == "stopped":
            del pieces[single]
    pieces["kamailio"] = kamailio.status(cluster.edge)
    for node in cluster.nodes:
        o = node.overrides
        for name in ("asterisk", "engine"):
            pieces[f"{node.name}-{name}"] = {
                "state": procs.status(node.state_dir, name),
                "pid": procs.read_pid(node.state_dir, name),
            }
        pieces[f"{node.name}-asterisk"].update(
            sip=f"127.0.0.1:{o['VOCALCAST_SIP_PORT']}",
            ari=f"127.0.0.1:{o['VOCALCAST_ARI_PORT']}",
            rtp=f"{o['VOCALCAST_RTP_START']}-{o['VOCALCAST_RTP_END']}",
        )
        pieces[f"{node.name}-engine"].update(
            http=f"http://127.0.0.1:{o['VOCALCAST_HTTP_PORT']}/", app=f"vocalcast-{node.name}"
        )
        if "VOCALCAST_MEDIA_HTTP_PORT" in o:  # the media listener its Asterisk plays messages from
            pieces[f"{node.name}-engine"]["media"] = f"http://127.0.0.1:{o['VOCALCAST_MEDIA_HTTP_PORT']}/"
    report["cluster"] = {"nodes": len(cluster.nodes), "edge": cluster.edge.external}
    return report
