"""Bench: the cluster through Kamailio (issue 19), on the real parts `vocalcast stack up --nodes N` starts.
The same send (CALLS numbers, a MESSAGE_S-second message, no retry) once on one node and once on two, through
Kamailio to one SIPp carrier that answers every call at once and waits for our BYE.

Throughput is counted at the carrier (SIPp's own trace, not our database): the calls it answered (200 to an
INVITE) and that ended with our BYE, over the time from its first INVITE to its last BYE; per node by the
media server's Via under Kamailio's. CPU-ms per call per component: utime + stime of every process of the
component (the engines, the Asterisk media servers, Kamailio, PostgreSQL, and the SIPp carrier for scale),
children included (a live process's own time, and what it reaped of its dead children), read from /proc
before the send is created and after it completed, divided by the calls the carrier answered.

Each layout gets its own `stack up --nodes N` (then `stack down`) in the bench's port block (its own state
dir, ...-cluster). Per-node limits are the same in both layouts (MAX_CHANNELS channels, the default CPS);
the trunk's cluster-wide limits are above both. ``python -m bench cluster`` writes bench/results/cluster.json.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from bench.support import checks, instance, measure, phones
from bench.support.customers import customer, targets
from engine import stack
from engine.domain.sends import SendStatus
from engine.domain.trunks import Trunk
from engine.services.sends import create_send
from engine.services.trunks import Trunks
from engine.settings import Settings
from engine.stack import cluster, kamailio, postgres, procs
from engine.store import Database
from engine.store import sends as sends_store
from engine.telephony.edge import Cluster
from lab.sipp import SippProcess

R = measure.rounded

CALLS = int(os.environ.get("VOCALCAST_BENCH_CLUSTER_CALLS", "200"))
MESSAGE_S = float(os.environ.get("VOCALCAST_BENCH_CLUSTER_MESSAGE_S", "5"))
MAX_CHANNELS = 60  # each node's (its RTP range is sized by it: two ranges fit under port 65535)
TRUNK_CHANNELS = 400  # the carrier's, cluster-wide: above what two nodes open
TRUNK_CPS = 200.0
TIMEOUT_S = 300.0
TRUNK = f"cluster{os.getpid()}"
FIRST_NUMBER = {1: 51_000_000, 2: 52_000_000}
COMPONENTS = ("engine", "asterisk", "kamailio", "postgresql", "carrier_sipp")


# --- CPU of process trees, from /proc ----------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, utime + stime + cutime + cstime in seconds) of a live process, None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    ticks = sum(int(f) for f in fields[11:15])
    return int(fields[1]), ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(roots: Sequence[int]) -> tuple[float, int]:
    """CPU seconds of every live process under ``roots`` (the roots included) plus what they reaped of their
    dead children (cutime/cstime: the kernel adds an exited child's own and reaped time to its reaper's);
    and how many processes that was."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (s := _stat(int(entry.name))) is not None:
            stats[int(entry.name)] = s
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    todo = [r for r in roots if r in stats]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo += children.get(pid, [])
    return sum(stats[p][1] for p in seen), len(seen)


def component_roots(settings: Settings, built: Cluster, carrier: SippProcess) -> dict[str, list[int]]:
    def pids(*found: int | None) -> list[int]:
        return [p for p in found if p is not None]

    return {
        "engine": pids(*(procs.read_pid(n.state_dir, "engine") for n in built.nodes)),
        "asterisk": pids(*(procs.read_pid(n.state_dir, "asterisk") for n in built.nodes)),
        "kamailio": pids(procs.read_pid(settings.state_dir, kamailio.NAME)),
        "postgresql": pids(postgres.running_pid(settings)),
        "carrier_sipp": pids(carrier.pid),
    }


def cpu_by_component(roots: dict[str, list[int]]) -> dict[str, tuple[float, int]]:
    return {name: tree_cpu_s(pids) for name, pids in roots.items()}


# --- the carrier's view -----------------------------------------------------------------------------------
def _seconds(stamp: str) -> float:
    """SIPp's trace time ('2026-12-04 23:44:53.463066', or with a tab) as seconds of the day."""
    _day, _, clock = stamp.replace("\t", " ").strip().partition(" ")
    hours, minutes, seconds = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def carrier_view(carrier: SippProcess, node_ports: dict[int, str]) -> dict[str, Any]:
    """Calls the carrier answered and saw ended by our BYE, by node (the media server's port in the second
    Via of the INVITE), and the span from its first INVITE to its last BYE (SIPp's clock)."""
    node_of: dict[str, str] = {}
    answered: set[str] = set()
    byes: set[str] = set()
    times: list[float] = []
    for m in carrier.messages():
        call = m.call_id or ""
        if m.direction == "received" and m.method == "INVITE" and call not in node_of:
            vias = [v for value in m.header_values("Via") for v in value.split(",")]
            port = int(vias[1].split()[1].split(";")[0].rsplit(":", 1)[1]) if len(vias) > 1 else 0
            node_of[call] = node_ports.get(port, f"port {port}")
            times.append(_seconds(m.time))
        elif m.direction == "sent" and m.status == 200 and (m.header("CSeq") or "").endswith("INVITE"):
            answered.add(call)
        elif m.direction == "received" and m.method == "BYE":
            byes.add(call)
            times.append(_seconds(m.time))
    completed = answered & byes
    span = max(times) - min(times) if times else None
    per_node = Counter(node_of[c] for c in completed if c in node_of)
    return {
        "invited_calls": len(node_of),
        "answered_calls": len(answered),
        "completed_calls": len(completed),
        "span_s": R(span, 3),
        "completed_by_node": dict(sorted(per_node.items())),
        "calls_per_s_total": R(len(completed) / span, 2) if span else None,
        "calls_per_s_by_node": {n: R(c / span, 2) for n, c in sorted(per_node.items())} if span else {},
    }


def carrier(workdir: Path) -> SippProcess:
    """The bench's signalling-only phone as a carrier behind a proxy: its 180 and 200 copy the INVITE's
    Record-Route (as a real carrier does), so the BYEs pass through Kamailio too; every message traced."""
    workdir.mkdir(parents=True, exist_ok=True)
    scenario = workdir / "cluster-carrier.xml"
    anchor = "[last_CSeq:]\n      Contact:"
    text = phones.SIGNALLING_ONLY
    assert text.count(anchor) == 2
    scenario.write_text(text.replace(anchor, "[last_CSeq:]\n      [last_Record-Route:]\n      Contact:"))
    sip, media = instance.sipp_ports(0)
    return SippProcess(
        scenario,
        local_port=sip,
        media_port=media,
        workdir=workdir,
        trace_messages=True,
        extra_args=["-aa"],
        name="cluster-carrier",
    )


# --- one layout ---------------------------------------------------------------------------------------------
def cluster_settings() -> Settings:
    env = instance.bench_environ()
    env.update(
        {
            "VOCALCAST_STATE_DIR": env["VOCALCAST_STATE_DIR"] + "-cluster",
            "VOCALCAST_MAX_CHANNELS": str(MAX_CHANNELS),
            "VOCALCAST_DEMO": "0",
        }
    )
    os.environ.update({k: v for k, v in env.items() if k != "PATH"})
    return Settings.from_env(env)


async def until_completed(db: Database, send_id: Any) -> float:
    deadline = time.monotonic() + TIMEOUT_S
    while (await sends_store.get_send(db, send_id)).status is not SendStatus.completed:
        if time.monotonic() > deadline:
            raise TimeoutError(f"send {send_id} not completed after {TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.2)
    return time.time()


async def one_layout(settings: Settings, built: Cluster, nodes: int, workdir: Path) -> dict[str, Any]:
    phone = carrier(workdir)
    async with phone, Database(settings.dsn, min_size=1, max_size=4) as db:
        applied = await Trunks(db, settings).save(
            Trunk(
                name=TRUNK,
                host="127.0.0.1",
                port=phone.local_port,
                number_format="national",
                max_channels=TRUNK_CHANNELS,
                max_cps=TRUNK_CPS,
            )
        )
        if applied.missing:
            raise RuntimeError(f"the trunk is missing on {applied.missing}")
        cluster.start_engines(built)
        await asyncio.sleep(3)  # the engines connect to ARI, register, and see the trunk
        who = await customer(
            db, settings, workdir, credits=2 * CALLS, seconds=MESSAGE_S, email=f"cluster{nodes}@example.fr"
        )
        numbers = instance.national_numbers(CALLS, FIRST_NUMBER[nodes])
        roots = component_roots(settings, built, phone)
        before = cpu_by_component(roots)
        started = time.time()
        send = await create_send(
            db,
            settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets(numbers),
            origin="cli",
            retries=0,
        )
        done_at = await until_completed(db, send.id)
        after = cpu_by_component(roots)
        apps = {
            r["app"]: r["n"]
            for r in await db.fetch(
                "SELECT app, count(*) AS n FROM attempts WHERE send_id = $1 GROUP BY app", send.id
            )
        }
        outcomes = {
            str(r["outcome"]): r["n"]
            for r in await db.fetch(
                "SELECT outcome, count(*) AS n FROM send_recipients WHERE send_id = $1 GROUP BY outcome",
                send.id,
            )
        }
    ports = {int(n.overrides["VOCALCAST_SIP_PORT"]): n.name for n in built.nodes}
    view = carrier_view(phone, ports)
    calls = view["completed_calls"] or 1
    cpu = {
        name: {
            "cpu_s": R(after[name][0] - before[name][0], 2),
            "processes": after[name][1],
            "cpu_ms_per_call": R(1000 * (after[name][0] - before[name][0]) / calls, 2),
        }
        for name in COMPONENTS
    }
    ours = sum(cpu[n]["cpu_ms_per_call"] or 0.0 for n in COMPONENTS if n != "carrier_sipp")
    return {
        "nodes": nodes,
        "send_to_completed_s": R(done_at - started, 2),
        "carrier": view,
        "attempts_by_engine": apps,
        "outcomes": outcomes,
        "cpu": cpu,
        "cpu_ms_per_call_all_ours": R(ours, 2),
    }


async def empty_tables(settings: Settings) -> None:
    """Every table emptied (the cluster's PostgreSQL keeps its data between runs): no account, send, node
    or trunk of an earlier run (its carrier gone) is left."""
    async with Database(settings.dsn, min_size=1, max_size=1) as db:
        tables = await db.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
        names = ", ".join(f'"{r["tablename"]}"' for r in tables)
        await db.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


def measure_layout(nodes: int, workdir: Path) -> dict[str, Any]:
    # The secrets as `stack up` makes them on a fresh state dir (cluster.up generates them for itself: the
    # settings read before it would lack the database password).
    settings = stack.ensure_secrets(cluster_settings())
    built, _ = cluster.up(settings, nodes, engine=False)
    try:
        asyncio.run(empty_tables(settings))
        return asyncio.run(one_layout(settings, built, nodes, workdir / f"n{nodes}"))
    finally:
        cluster.down(settings)


def ratio(a: float | None, b: float | None) -> float | None:
    return R(a / b, 3) if a is not None and b else None


def run(parts: Sequence[str] = ()) -> dict[str, Any]:
    if parts:
        raise ValueError(f"the cluster bench has no parts: {list(parts)}")
    if shutil.which("kamailio") is None:
        raise RuntimeError("kamailio is not installed (apt-get install kamailio)")
    started = time.monotonic()
    machine_at_start = measure.machine()
    with tempfile.TemporaryDirectory(prefix="vocalcast-bench-cluster-") as tmp:
        one = measure_layout(1, Path(tmp))
        two = measure_layout(2, Path(tmp))
    per_call = {
        name: {
            "one_node": one["cpu"][name]["cpu_ms_per_call"],
            "two_nodes": two["cpu"][name]["cpu_ms_per_call"],
            "two_over_one": ratio(two["cpu"][name]["cpu_ms_per_call"], one["cpu"][name]["cpu_ms_per_call"]),
        }
        for name in COMPONENTS
    }
    tput = {
        "one_node": one["carrier"]["calls_per_s_total"],
        "two_nodes": two["carrier"]["calls_per_s_total"],
        "two_over_one": ratio(two["carrier"]["calls_per_s_total"], one["carrier"]["calls_per_s_total"]),
    }
    return {
        "what": f"the same send ({CALLS} numbers, a {MESSAGE_S:g} s message, no retry) on one node then on "
        "two, through Kamailio to one SIPp carrier: throughput = calls the carrier answered and saw ended "
        "by our BYE over its first INVITE → last BYE; CPU-ms per call per component = utime+stime of "
        "every process of it (children included) across the send, over those calls",
        "recipients": CALLS,
        "message_s": MESSAGE_S,
        "per_node_limits": {"max_channels": MAX_CHANNELS, "max_cps": cluster_settings().max_cps},
        "trunk": {"channels": TRUNK_CHANNELS, "cps": TRUNK_CPS},
        "machine_at_start": machine_at_start,
        "throughput_calls_per_s": tput,
        "cpu_ms_per_call": per_call,
        "one_node": one,
        "two_nodes": two,
        "checks": {
            "one_node_all_answered": checks.equal(one["carrier"]["completed_calls"], CALLS),
            "two_nodes_all_answered": checks.equal(two["carrier"]["completed_calls"], CALLS),
            "both_nodes_carried_calls": checks.equal(len(two["carrier"]["completed_by_node"]), 2),
        },
        "bench_s": R(time.monotonic() - started, 1),
        "machine_at_end": measure.machine(),
    }


if __name__ == "__main__":
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    print(json.dumps(run(sys.argv[1:]), indent=2, default=str))
