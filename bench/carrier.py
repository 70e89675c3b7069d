"""Bench: dialing through carrier trouble. One 2,000-number send over three trunks, each a SIPp carrier:

- a live trunk (a phone that answers every call at once);
- a dead trunk: its carrier answered its OPTIONS pings until the send started, then was killed — nothing
  listens on its port any more, so its INVITEs go unanswered until the breaker (no response to the INVITE)
  and then the qualify (OPTIONS unanswered) take it out of routing;
- a refusing trunk: its carrier answers every INVITE 503 with a Retry-After.

The two failing trunks are *preferred* (a lower priority number than the live one): while they look healthy
the engine sends them its calls, so the bench measures what meeting them costs.

Targets: the send lasts (first originate → last call's slot released) within 5 % of the live trunk's bound
max(N/CPS, N·(h + setup)/C), setup measured by a bare ARI loop on the live trunk in the same run; and no
attempt is wasted: every recipient listened on its one attempt, each number got exactly one INVITE on the
live carrier (SIPp's own log), and the failing trunks carried nothing but trunk failures (which use no
attempt). The bound assumes the live trunk keeps its CPS: a call placed through it without a token of its
bucket (a failover, say) fails the bench too. ``where_the_time_went`` splits the duration into the live
trunk's calls at its pace, the pace it lost (or gained) and the last call.
``python -m bench carrier`` writes bench/results/carrier.json.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import structlog

from bench.ari_originate import BareAri
from bench.dialer import Bench, LoopLag, bare_run, rate_stats, send_bound, watch
from bench.support import checks, instance, measure, phones
from bench.support.customers import targets
from engine.app import Engine
from engine.domain.trunks import Trunk
from engine.services.dialing.trunkpool import BURST_S, TrunkPool
from engine.services.sends import create_send
from engine.settings import Settings
from engine.store import Database
from engine.store.attempts import Claim
from engine.telephony.ari import AriClient, events_task
from engine.telephony.callrequest import CallerId
from lab.sipp import SippProcess

R = measure.rounded

CALLS = 2000
MESSAGE_S = 1.0
LIVE_CHANNELS = 100
LIVE_CPS = 40.0
LIVE_PRIORITY = 20
# The failing carriers look like the live one (same channels and pace) and are preferred.
FAILING_CHANNELS = 100
FAILING_CPS = 40.0
FAILING_PRIORITY = 10
RETRY_AFTER_S = 20  # the figure: the refusing trunk is probed again every 20 s
SETUP_CALLS = 300  # the bare loop measuring setup on the live trunk at its concurrency (3 waves)
TOLERANCE = 0.05
RING_TIMEOUT_S = 5.0  # the bench instance's; a dead carrier's INVITE is given up after it
TIMEOUT_S = 600.0

LIVE = instance.TRUNK  # the bare loop dials this trunk (bench.ari_originate.endpoint_for)
DEAD = f"dead{os.getpid()}"
REFUSING = f"refuses{os.getpid()}"
FAILING = (DEAD, REFUSING)
FIRST_NUMBER = 40_000_000
SETUP_FIRST_NUMBER = 47_000_000


def trunk(name: str, phone: SippProcess, *, channels: int, cps: float, priority: int) -> Trunk:
    return Trunk(
        name=name,
        host="127.0.0.1",
        port=phone.local_port,
        number_format="national",
        max_channels=channels,
        max_cps=cps,
        priority=priority,
    )


def engine_settings(settings: Settings) -> Settings:
    """The engine-wide limits above the three trunks' together: each trunk's own limits are what count.
    Breaker, qualify and requeue timers keep their defaults."""
    return dataclasses.replace(
        settings,
        max_channels=LIVE_CHANNELS + 2 * FAILING_CHANNELS,
        max_cps=LIVE_CPS + 2 * FAILING_CPS,
        ring_timeout_s=RING_TIMEOUT_S,
    )


# --- what happened to each trunk, as the engine saw it ----------------------------------------------------
def health_kind(pool: TrunkPool, name: str, now: float) -> str:
    """A trunk's routing state in a word or two ("usable", "breaker open", "unreachable (OPTIONS)"...)."""
    state = pool.trunks.get(name)
    if state is None:
        return "absent"
    reason = state.unhealthy_reason(now)
    if not reason:
        return "usable"
    if reason.startswith("breaker open"):
        return "breaker open"
    return reason


class HealthLog:
    """Every change of the failing trunks' routing state, sampled every 20 ms, with the breaker's reason
    and the time since ``t0`` (time.time()). A probe refused within 20 ms (open → half-open → open) may not
    show: the trunk's calls after it first left routing (trunk_report) count the probes."""

    def __init__(self, pool: TrunkPool, names: Sequence[str], t0: float) -> None:
        self.pool = pool
        self.names = names
        self.t0 = t0
        self.changes: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        now = time.monotonic()
        for name in self.names:
            kind = health_kind(self.pool, name, now)
            seen = self.changes[name]
            if seen and seen[-1]["state"] == kind:
                continue
            state = self.pool.trunks.get(name)
            change: dict[str, Any] = {"t_s": R(time.time() - self.t0, 2), "state": kind}
            if state is not None and kind == "breaker open":
                change["for_s"] = R(state.breaker.open_for_s(now), 1)
                change["why"] = state.breaker.reason
            seen.append(change)

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.02)

    def __enter__(self) -> HealthLog:
        self.sample()
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.sample()


@contextmanager
def originates_by_trunk(engine: Engine) -> Iterator[dict[str, list[float]]]:
    """time.time() of every originate (failovers included), by trunk; chained to the hook already set."""
    dialer = engine.dialer
    before = dialer.on_originate
    seen: dict[str, list[float]] = {}

    def hook(claim: Claim) -> None:
        seen.setdefault(claim.trunk, []).append(time.time())
        if before is not None:
            before(claim)

    dialer.on_originate = hook
    try:
        yield seen
    finally:
        dialer.on_originate = before


@contextmanager
def token_takes(pool: TrunkPool, name: str) -> Iterator[list[tuple[float, bool]]]:
    """Every token the engine takes from a trunk's bucket (a call placed through it, a failover onto it):
    time.time() and whether the bucket had one. A call placed although the take failed went above the
    trunk's CPS: this counts it exactly, where windows over originate or wire times blur with jitter."""
    bucket = pool.trunks[name].bucket
    original = bucket.take
    takes: list[tuple[float, bool]] = []

    def take(now: float, count: int = 1) -> bool:
        had = original(now, count)
        takes.append((time.time(), had))
        return had

    bucket.take = take  # type: ignore[method-assign]
    try:
        yield takes
    finally:
        del bucket.take


def per_second(times: Sequence[float], t0: float) -> list[int]:
    """How many of ``times`` fell in each second after t0."""
    if not times:
        return []
    counts = [0] * (int(max(times) - t0) + 1)
    for t in times:
        counts[int(t - t0)] += 1
    return counts


def where_the_time_went(
    live: Sequence[float], first: float, actual_s: float | None, burst: float
) -> dict[str, Any]:
    """The send's duration = the live trunk's calls at its pace (its bucket starts with ``burst`` calls,
    then one each 1/CPS) + the pace it lost + the last call itself (h + setup + hang-up). The pace lost is
    what a failing trunk cost, if anything (negative: the live trunk went faster than its CPS)."""
    if not live or actual_s is None:
        return {}
    at_pace = (len(live) - burst) / LIVE_CPS
    placing = live[-1] - first
    # How far behind its pace the live trunk was at worst, in calls, and when.
    behind, behind_at = 0.0, 0.0
    for k, t in enumerate(live):
        late = min(len(live), burst + LIVE_CPS * (t - first)) - k
        if late > behind:
            behind, behind_at = late, t - first
    return {
        "what": "actual = calls_at_live_pace_s + pace_lost_s + last_call_s (from the first originate)",
        "calls_at_live_pace_s": R(at_pace, 3),
        "pace_lost_s": R(placing - at_pace, 3),
        "last_call_s": R(actual_s - placing, 3),
        "most_behind_pace_calls": R(behind, 1),
        "most_behind_pace_at_s": R(behind_at, 2),
    }


def invites(phone: SippProcess, wanted: set[str]) -> Counter[str]:
    """Calls (distinct Call-IDs: a retransmitted INVITE is the same call) each wanted number received,
    from the carrier's own log."""
    dialogs = {
        (e["number"], e.get("call_id", ""))
        for e in phone.log_events()
        if e.get("event") == "INVITE" and e.get("number") in wanted
    }
    return Counter(number for number, _ in dialogs)


def invite_ticks(phone: SippProcess, wanted: set[str]) -> list[float]:
    """When each wanted number's INVITE reached the carrier (s, SIPp's clock), one per call."""
    first: dict[str, float] = {}
    for e in phone.log_events():
        if e.get("event") == "INVITE" and e.get("number") in wanted and e.get("tick_ms", "").isdigit():
            first.setdefault(e.get("call_id", ""), int(e["tick_ms"]) / 1000)
    return sorted(first.values())


async def wait_online(client: AriClient, names: Sequence[str], timeout_s: float) -> float:
    """Until Asterisk's qualify says every trunk answers its OPTIONS ("online"); returns how long it took."""
    started = time.monotonic()
    while True:
        states = {str(e.get("resource")): str(e.get("state")) for e in await client.endpoints("PJSIP")}
        if all(states.get(n) == "online" for n in names):
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"trunks not all online after {timeout_s:.0f} s: {states}")
        await asyncio.sleep(0.2)


async def wait_usable(pool: TrunkPool, names: Sequence[str], timeout_s: float) -> None:
    """Until the engine's pool holds every trunk as usable (its first trunk check has run)."""
    deadline = time.monotonic() + timeout_s
    while not all(health_kind(pool, n, time.monotonic()) == "usable" for n in names):
        if time.monotonic() > deadline:
            kinds = {n: health_kind(pool, n, time.monotonic()) for n in names}
            raise TimeoutError(f"trunks not all usable in the engine after {timeout_s:.0f} s: {kinds}")
        await asyncio.sleep(0.05)


# --- the bench ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Carriers:
    live: SippProcess
    dead: SippProcess
    refusing: SippProcess


async def attempts_by_trunk(db: Database, send_id: UUID, t0: float) -> dict[str, dict[str, Any]]:
    rows = await db.fetch(
        "SELECT trunk, trunk_failure, outcome, count(*) AS n, min(created_at) AS first, "
        "max(created_at) AS last FROM attempts WHERE send_id = $1 GROUP BY trunk, trunk_failure, outcome",
        send_id,
    )
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        empty = {"attempts": 0, "trunk_failures": 0, "other_attempts": 0, "outcomes": {}}
        entry = out.setdefault(r["trunk"], {**empty, "first": None, "last": None})
        entry["attempts"] += r["n"]
        entry["trunk_failures" if r["trunk_failure"] else "other_attempts"] += r["n"]
        key = f"{r['outcome']} (trunk failure)" if r["trunk_failure"] else str(r["outcome"])
        entry["outcomes"][key] = entry["outcomes"].get(key, 0) + r["n"]
        first, last = r["first"].timestamp() - t0, r["last"].timestamp() - t0
        entry["first"] = first if entry["first"] is None else min(entry["first"], first)
        entry["last"] = last if entry["last"] is None else max(entry["last"], last)
    for entry in out.values():
        entry["first_attempt_s"] = R(entry.pop("first"), 2)
        entry["last_attempt_s"] = R(entry.pop("last"), 2)
    return out


async def recipients_summary(db: Database, send_id: UUID) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT state, outcome, attempts, count(*) AS n FROM send_recipients WHERE send_id = $1 "
        "GROUP BY state, outcome, attempts",
        send_id,
    )
    return {f"{r['state']}/{r['outcome']}/attempts={r['attempts']}": r["n"] for r in rows}


async def the_send(bench: Bench, carriers: Carriers, who: Any, numbers: Sequence[str]) -> dict[str, Any]:
    """The send through an in-process Engine; the dead carrier is killed as the send is created."""
    settings = engine_settings(bench.settings)
    async with Engine(settings) as engine:
        await engine.ari.wait_ready(10)
        pool = engine.dialer.pool
        await wait_usable(pool, [LIVE, *FAILING], 30)
        cpu_before = measure.cpu_s("self")
        with (
            watch(engine) as run,
            originates_by_trunk(engine) as by_trunk,
            token_takes(pool, LIVE) as takes,
            LoopLag() as lag,
        ):
            t0 = time.time()
            await carriers.dead.stop(grace_s=0)  # the carrier dies: nothing listens on its port
            with HealthLog(pool, FAILING, t0) as health:
                send = await create_send(
                    bench.db,
                    settings,
                    who.account,
                    message_ref=who.message.ref,
                    targets=targets(list(numbers)),
                    origin="cli",
                )
                engine.dialer.wake()
                completed_at = await bench.until_done(send.id, TIMEOUT_S)
                for _ in range(1000):  # the last slots are released just after their results are stored
                    if not engine.dialer.active:
                        break
                    await asyncio.sleep(0.01)
            now = time.monotonic()
            at_end = {
                name: {
                    "state": health_kind(pool, name, now),
                    "breaker": pool.trunks[name].breaker.state(now).value,
                    "breaker_reason": pool.trunks[name].breaker.reason or None,
                    "reachable": pool.trunks[name].reachable,
                }
                for name in (LIVE, *FAILING)
            }
        cpu = measure.cpu_s("self") - cpu_before
    await bench.settle()
    first = min(run.originated.values())
    return {
        "send_id": send.id,
        "t0": t0,
        "first": first,
        "first_originate_s": R(first - t0, 3),
        "to_last_slot_release_s": R(max(run.released) - first, 3),
        "to_completed_status_s": R(completed_at - first, 3),
        "originates": {name: len(times) for name, times in sorted(by_trunk.items())},
        "originates_by_trunk": by_trunk,
        "health_changes": health.changes,
        "at_end": at_end,
        "process_cpu_ms_per_call": R(1000 * cpu / max(1, len(run.originated)), 2),
        "event_loop_lag": lag.report(),
        "timings": run.timings.report(),
        "live_token_takes": takes,
    }


def trunk_report(
    name: str, by_trunk: dict[str, dict[str, Any]], send: dict[str, Any], sipp_calls: int | None
) -> dict[str, Any]:
    rows = by_trunk.get(name, {"attempts": 0, "trunk_failures": 0, "other_attempts": 0, "outcomes": {}})
    changes = send["health_changes"].get(name, [])
    breaker_opens = [c for c in changes if c["state"] == "breaker open"]
    out_at = next((send["t0"] + c["t_s"] for c in changes if c["state"] != "usable"), None)
    times = send["originates_by_trunk"].get(name, [])
    return {
        **rows,
        "calls_seen_by_its_carrier": sipp_calls,
        "originates": send["originates"].get(name, 0),
        # Once out of routing, a trunk is only probed (one call per half-open breaker).
        "first_out_of_routing_s": R(out_at - send["t0"], 2) if out_at is not None else None,
        "calls_after_first_out": sum(1 for t in times if out_at is not None and t > out_at),
        # Calls placed through it in each second from the send's first originate (failovers included).
        "originates_per_second": per_second(send["originates_by_trunk"].get(name, []), send["first"]),
        "breaker_openings_seen": len(breaker_opens),
        "routing_state_changes": changes,
        "at_end": send["at_end"][name],
    }


async def measure_send(bench: Bench, carriers: Carriers) -> dict[str, Any]:
    who = await bench.customer("carrier", credits=CALLS, seconds=MESSAGE_S)
    h = who.message.duration_s
    live = trunk(LIVE, carriers.live, channels=LIVE_CHANNELS, cps=LIVE_CPS, priority=LIVE_PRIORITY)
    for t in (
        live,
        trunk(DEAD, carriers.dead, channels=FAILING_CHANNELS, cps=FAILING_CPS, priority=FAILING_PRIORITY),
        trunk(
            REFUSING, carriers.refusing, channels=FAILING_CHANNELS, cps=FAILING_CPS, priority=FAILING_PRIORITY
        ),
    ):
        await instance.add_trunk(bench.settings, t)
    # The bare loop places the dialer's call on the live trunk (endpoint, hidden caller ID), as bench.dialer.
    caller = CallerId(live.pai_number, hidden=True)
    bench.bare.originate_args = {
        "caller_id": caller.ari_caller_id(),
        "variables": {"VC_APP": bench.bare.client.app, **caller.variables()},
        "formats": live.codecs,
    }
    bare = await bare_run(
        bench, who.message, instance.national_numbers(SETUP_CALLS, SETUP_FIRST_NUMBER), LIVE_CHANNELS
    )
    setup = bare["setup_s_mean"]
    # The engine meets the dead carrier while Asterisk still holds it reachable: its OPTIONS were answered.
    online_after_s = await wait_online(
        bench.bare.client, [LIVE, *FAILING], bench.settings.qualify_frequency_s + 10
    )
    numbers = instance.national_numbers(CALLS, FIRST_NUMBER)
    send = await the_send(bench, carriers, who, numbers)
    send_id, t0 = send["send_id"], send["t0"]

    wanted = set(numbers)
    live_invites = invites(carriers.live, wanted)
    refused_invites = invites(carriers.refusing, wanted)
    by_trunk = await attempts_by_trunk(bench.db, send_id, t0)
    recipients = await recipients_summary(bench.db, send_id)
    listened_once = recipients.get("done/listened/attempts=1", 0)
    once_on_live = sum(1 for n in numbers if live_invites.get(n) == 1)
    on_failing_not_trunk_failure = sum(by_trunk.get(n, {}).get("other_attempts", 0) for n in FAILING)
    refused_calls = sum(refused_invites.values())

    bound = send_bound(CALLS, cps=LIVE_CPS, channels=LIVE_CHANNELS, message_s=h, setup_s=setup)
    actual = send["to_last_slot_release_s"]
    ratio = actual / bound if actual is not None else None

    # Where the live trunk's time went: its calls per second, and its pace against its limit.
    live_times = send["originates_by_trunk"].get(LIVE, [])
    burst = max(2.0, LIVE_CPS * BURST_S)
    live_pace = rate_stats(live_times, int(burst)) if len(live_times) > burst + 1 else {}
    takes = send["live_token_takes"]
    without_token = sum(1 for _, had in takes if not had)
    spent = where_the_time_went(sorted(live_times), send["first"], actual, burst)
    wire = invite_ticks(carriers.live, wanted)
    return {
        "what": "one send over a live trunk beside a dead one (its carrier killed as the send starts) and "
        "one answering 503 + Retry-After, both preferred by priority: its duration (first originate → last "
        "call's slot released) against the live trunk's bound max(N/CPS, N·(h + setup)/C), setup = the bare "
        "ARI loop's slot time minus h on the live trunk, same run; and no attempt wasted",
        "recipients": CALLS,
        "message_s": h,
        "trunks": {
            "live": {"name": LIVE, "channels": LIVE_CHANNELS, "cps": LIVE_CPS, "priority": LIVE_PRIORITY},
            "dead": {
                "name": DEAD,
                "channels": FAILING_CHANNELS,
                "cps": FAILING_CPS,
                "priority": FAILING_PRIORITY,
                "carrier": "answered OPTIONS, killed as the send starts (nothing listens on its port)",
            },
            "refusing": {
                "name": REFUSING,
                "channels": FAILING_CHANNELS,
                "cps": FAILING_CPS,
                "priority": FAILING_PRIORITY,
                "carrier": f"every INVITE answered 503 with Retry-After: {RETRY_AFTER_S}",
            },
        },
        "engine": {
            "max_channels": LIVE_CHANNELS + 2 * FAILING_CHANNELS,
            "max_cps": LIVE_CPS + 2 * FAILING_CPS,
            "ring_timeout_s": RING_TIMEOUT_S,
            "qualify_frequency_s": bench.settings.qualify_frequency_s,
            "trunk_check_s": bench.settings.trunk_check_s,
            "breaker_cooldown_s": bench.settings.breaker_cooldown_s,
            "breaker_min_failures": bench.settings.breaker_min_failures,
            "trunk_retry_s": bench.settings.trunk_retry_s,
        },
        "setup_s": setup,
        "bound_s": R(bound, 3),
        "actual_s": actual,
        "ratio": R(ratio, 4),
        "checks": {
            "ratio": checks.within(R(ratio, 4), 1.0, TOLERANCE),
            "listened_on_one_attempt": checks.equal(listened_once, CALLS),
            "one_invite_each_on_live": checks.equal(once_on_live, CALLS),
            "failing_trunks_only_trunk_failures": checks.equal(on_failing_not_trunk_failure, 0),
            # Not vacuous: the engine did meet both failing carriers.
            "dead_trunk_met": checks.at_least(by_trunk.get(DEAD, {}).get("trunk_failures", 0), 1),
            "refusing_trunk_met": checks.at_least(refused_calls, 1),
            # Every call the refusing carrier saw is one the engine recorded as the trunk's failure.
            "refusals_recorded": checks.equal(
                by_trunk.get(REFUSING, {}).get("trunk_failures", 0), refused_calls
            ),
            # The bound holds for the live trunk's pace: no call went through it without a token.
            "live_calls_without_a_token": checks.equal(without_token, 0),
        },
        "recipients_by_state": recipients,
        "live_invites": {
            "calls": sum(live_invites.values()),
            "numbers": len(live_invites),
            "numbers_called_twice_or_more": sum(1 for v in live_invites.values() if v > 1),
        },
        "per_trunk": {
            "live": trunk_report(LIVE, by_trunk, send, sum(live_invites.values())),
            "dead": trunk_report(DEAD, by_trunk, send, None),
            "refusing": trunk_report(REFUSING, by_trunk, send, refused_calls),
        },
        "live_pace": {
            "what": "the live trunk's calls per second: token takes (the engine's pace accounting, exact), "
            "originates (when each call's task sent its POST) and INVITEs at the carrier (SIPp's clock); the "
            "last two jitter with the event loop and Asterisk. Its bucket allows CPS + burst in any second.",
            "burst": burst,
            "token_takes": rate_stats([t for t, _ in takes], int(burst)) if len(takes) > burst + 1 else {},
            "calls_without_a_token": without_token,
            "engine": live_pace,
            "wire": rate_stats(wire, int(burst)) if len(wire) > burst + 1 else {"calls": len(wire)},
            "first_live_originate_s": R(min(live_times) - t0, 3) if live_times else None,
        },
        "where_the_time_went": spent,
        "first_originate_s": send["first_originate_s"],
        "to_completed_status_s": send["to_completed_status_s"],
        "qualify_online_after_s": R(online_after_s, 1),
        "bare_ari_setup_loop": bare,
        "process_cpu_ms_per_call": send["process_cpu_ms_per_call"],
        "event_loop_lag": send["event_loop_lag"],
        "timings": send["timings"],
    }


async def measure_all(settings: Settings, workdir: Path) -> dict[str, Any]:
    carriers = Carriers(
        live=phones.signalling_only(workdir, 0, name="live"),
        dead=phones.signalling_only(workdir, 1, name="dead"),
        refusing=phones.refusing(workdir, 2, retry_after_s=RETRY_AFTER_S, name="refusing"),
    )
    client = instance.ari_client(settings, pool_size=LIVE_CHANNELS)
    bare = BareAri(client)
    await carriers.dead.start()
    try:
        async with (
            carriers.live,
            carriers.refusing,
            Database(settings.dsn, min_size=1, max_size=5) as db,
            client,
            events_task(client, bare.handle),
        ):
            await client.wait_ready(10)
            bench = Bench(settings, db, workdir, carriers.live, bare)
            started = time.monotonic()
            machine_at_start = measure.machine()
            result = await measure_send(bench, carriers)
            return {
                "machine_at_start": machine_at_start,
                **result,
                "bench_s": R(time.monotonic() - started, 1),
                "machine_at_end": measure.machine(),
            }
    finally:
        if carriers.dead.returncode is None and carriers.dead.pid is not None:
            await carriers.dead.stop(grace_s=0)


def run(parts: Sequence[str] = ()) -> dict[str, Any]:
    if parts:
        raise ValueError(f"the carrier bench has no parts: {list(parts)}")
    with (
        instance.bench_stack() as settings,
        tempfile.TemporaryDirectory(prefix="vocalcast-bench-carrier-") as tmp,
    ):
        return asyncio.run(measure_all(settings, Path(tmp)))


if __name__ == "__main__":
    # As the runner does: stdout keeps the JSON alone, and the in-process engine logs warnings only.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    print(json.dumps(run(sys.argv[1:]), indent=2, default=str))
