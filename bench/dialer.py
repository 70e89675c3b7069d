"""Bench: the dialer side by side with a bare ARI loop, on one Asterisk and one signalling-only SIPp
phone, in one run: (a) originate rate against the bare loop at the same concurrency, (b) a 2,000-number
send against its time bound, (c) calls/s against a trunk's CPS limit, (d) deferred-start lateness,
(e) engine RSS over 20,000 calls of a 100,000-number send. (10,000 pasted numbers accepted and stored:
bench/recipients.py.)

Each result carries its target and a pass flag; ``python -m bench dialer`` writes bench/results/dialer.json.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import structlog

from bench.ari_originate import BareAri, CallTiming, concurrent
from bench.support import checks, instance, measure, phones
from bench.support.customers import Customer, customer, targets
from bench.support.engine_process import EngineProcess, engine_env
from engine.app import Engine
from engine.domain.outcomes import Outcome
from engine.domain.sends import SendStatus
from engine.services.messages import playback_uri
from engine.services.sends import create_send, steer
from engine.settings import Settings
from engine.stack import procs
from engine.store import Database
from engine.store import attempts as attempts_store
from engine.store import sends as sends_store
from engine.telephony.ari import events_task
from engine.telephony.callrequest import CallerId
from lab.sipp import SippProcess

R = measure.rounded

# (a) originate rate at the same concurrency, same message
A_CONCURRENCY = 50
A_CALLS = 1000
A_MESSAGE_S = 0.5
A_TARGET_RATIO = 0.9
A_PAIRS = 3
# (b) one send against max(N/CPS, N·(h + setup)/C)
B_CALLS = 2000
B_CHANNELS = 200
B_CPS = 200.0
B_MESSAGE_S = 3.0
B_SETUP_CALLS = 400  # the bare loop measuring setup at the same concurrency (2 waves)
B_TOLERANCE = 0.05
# (c) calls/s against a trunk's limit
C_CPS = 20.0
C_CALLS = 240
C_TOLERANCE = 0.02
# (d) deferred starts
D_SENDS = 20
D_LEAD_S = 3.0
D_SPACING_S = 0.25
D_TARGET_S = 1.0
# (e) engine memory over one big send
E_RECIPIENTS = 100_000
E_CALLS = 20_000
E_CHANNELS = 250
E_CPS = 500.0
E_MESSAGE_S = 0.5
E_RSS_FLAT_MB = 50.0
E_CREATE_TARGET_S = 3.0

RING_TIMEOUT_S = 5.0


# --- instrumentation ------------------------------------------------------------------------------------
class Timings:
    """Wall time of chosen coroutine functions, by name (patched in, restored on exit)."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}

    @contextmanager
    def patch(self, owner: object, names: Sequence[str]) -> Iterator[None]:
        saved = {name: getattr(owner, name) for name in names}
        for name, original in saved.items():
            setattr(owner, name, self._wrap(name, original))
        try:
            yield
        finally:
            for name, original in saved.items():
                setattr(owner, name, original)

    def _wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        samples = self.samples.setdefault(name, [])

        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                samples.append(time.perf_counter() - start)

        return timed

    def report(self) -> dict[str, dict[str, float | int | None]]:
        return {
            name: {
                "count": len(values),
                "mean_ms": R(1000 * sum(values) / len(values), 2) if values else None,
                "p95_ms": R(1000 * measure.percentile(values, 95), 2),
                "total_s": R(sum(values), 3),
            }
            for name, values in sorted(self.samples.items())
        }


# The outcomes of a call whose message played to its end (engine/domain/callflow.py: message_completed).
COMPLETED_PLAY_OUTCOMES = frozenset({Outcome.listened.value, Outcome.voicemail.value})


@dataclasses.dataclass
class AttemptTimes:
    created: list[float]
    ended: list[float]  # every ended attempt, whatever its outcome
    completed_plays: list[float]  # end times of the attempts whose message played to its end
    outcomes: dict[str, int]


@dataclasses.dataclass
class DialerRun:
    originated: dict[UUID, float]  # attempt id -> on_originate (just before POST /channels)
    calls: dict[UUID, tuple[float | None, float, float, float]]  # answered, ended, record start, end
    released: list[float]
    timings: Timings

    def breakdown(self, concurrency: int, message_s: float) -> dict[str, Any]:
        """Where a channel's time went, per call (means, ms): from the originate to the answer, the
        message, the result being stored, and the idle gap before the slot's next originate."""
        rows = [
            (self.originated[a], answered, ended, rec_start, rec_end)
            for a, (answered, ended, rec_start, rec_end) in self.calls.items()
            if a in self.originated and answered is not None
        ]
        if not rows:
            return {}
        n = len(rows)

        def mean_ms(values: Sequence[float]) -> float | None:
            return R(1000 * sum(values) / len(values), 1)

        busy = [rec_end - orig for orig, _a, _e, _s, rec_end in rows]
        span = max(self.released) - min(self.originated.values())
        # The k-th slot released is taken again by the (k + concurrency)-th originate.
        originates, releases = sorted(self.originated.values()), sorted(self.released)
        refill = [
            originates[k + concurrency] - r for k, r in enumerate(releases[: len(originates) - concurrency])
        ]
        return {
            "calls": n,
            "originate_to_answer_ms": mean_ms([a - o for o, a, _e, _s, _r in rows]),
            "answer_to_end_minus_message_ms": mean_ms([e - a - message_s for _o, a, e, _s, _r in rows]),
            "end_to_record_start_ms": mean_ms([s - e for _o, _a, e, s, _r in rows]),  # DELETE, hand-over
            "record_ms": mean_ms([r - s for _o, _a, _e, s, r in rows]),
            "slot_busy_ms": mean_ms(busy),
            "release_to_next_originate_ms": mean_ms(refill) if refill else None,
            # Each channel is idle for this long, on average, between two of its calls.
            "slot_idle_gap_ms": R(1000 * (concurrency * span / n - sum(busy) / n), 1),
        }


@contextmanager
def watch(engine: Engine) -> Iterator[DialerRun]:
    """Per attempt: originate, answer, end and result-stored times; slot releases; the dialer's store
    and ARI latencies (wall time, so event-loop delays are included)."""
    run = DialerRun({}, {}, [], Timings())
    dialer = engine.dialer
    dialer.on_originate = lambda claim: run.originated.__setitem__(claim.attempt_id, time.time())
    pool, attempts = dialer.pool, dialer.attempts
    release = pool.release_slot
    record = attempts.record

    def released(trunk: str) -> None:
        run.released.append(time.time())
        release(trunk)

    async def recorded(claim: Any, result: Any, *args: Any, **kwargs: Any) -> None:
        start = time.time()
        await record(claim, result, *args, **kwargs)
        run.calls[claim.attempt_id] = (result.answered_at, result.ended_at, start, time.time())

    pool.release_slot = released  # type: ignore[method-assign]
    attempts.record = recorded  # type: ignore[method-assign]
    store_calls = ["start_due", "runnable_sends", "complete_finished"]
    try:
        with (
            run.timings.patch(sends_store, store_calls),
            run.timings.patch(attempts_store, ["claim", "record_results"]),
            run.timings.patch(engine.ari, ["originate", "play", "hangup"]),
            run.timings.patch(dialer, ["_dispatch"]),
        ):
            yield run
    finally:
        dialer.on_originate = None
        del pool.release_slot
        del attempts.record


class LoopLag:
    """How late a 5 ms timer fires on this process's event loop: what every event, ARI reply and
    query result of the in-process engine waits on top of its own latency."""

    def __init__(self, period_s: float = 0.005) -> None:
        self.period_s = period_s
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.period_s)
            self.lags.append(loop.time() - before - self.period_s)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._probe())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()

    def report(self) -> dict[str, float | None]:
        lags = self.lags
        return {
            "mean_ms": R(1000 * sum(lags) / len(lags), 2) if lags else None,
            "p95_ms": R(1000 * measure.percentile(lags, 95), 2),
            "max_ms": R(1000 * max(lags, default=float("nan")), 1),
        }


# --- helpers ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Bench:
    settings: Settings
    db: Database
    workdir: Path
    phone: SippProcess
    bare: BareAri

    async def customer(self, name: str, *, credits: int, seconds: float) -> Customer:
        tmp = self.workdir / name
        tmp.mkdir()
        return await customer(
            self.db, self.settings, tmp, credits=credits, seconds=seconds, email=f"{name}@bench.fr"
        )

    async def trunk(self, *, max_channels: int, max_cps: float) -> None:
        trunk = await instance.set_trunk(
            self.settings, self.phone.local_port, max_channels=max_channels, max_cps=max_cps
        )
        # The bare loop places the same call as the dialer on this trunk: same endpoint, and the hidden
        # caller ID's originate parameters (Asterisk's own work per call is not the engine's overhead).
        caller = CallerId(trunk.pai_number, hidden=True)
        self.bare.originate_args = {
            "caller_id": caller.ari_caller_id(),
            "variables": {"VC_APP": self.bare.client.app, **caller.variables()},
            "formats": trunk.codecs,
        }

    def engine_settings(self, *, max_channels: int, max_cps: float) -> Settings:
        return dataclasses.replace(
            self.settings, max_channels=max_channels, max_cps=max_cps, ring_timeout_s=RING_TIMEOUT_S
        )

    async def until_done(self, send_id: UUID, timeout_s: float) -> float:
        """Poll until the send is completed or cancelled; returns when (time.time())."""
        deadline = time.monotonic() + timeout_s
        while True:
            # The status alone: the engine under test shares this process and the database.
            status = await self.db.fetchval("SELECT status FROM sends WHERE id = $1", send_id)
            if status in (SendStatus.completed, SendStatus.cancelled):
                return time.time()
            if time.monotonic() > deadline:
                raise TimeoutError(f"send {send_id} still {status} after {timeout_s} s")
            await asyncio.sleep(0.05)

    async def attempt_times(self, send_id: UUID) -> AttemptTimes:
        rows = await self.db.fetch(
            "SELECT created_at, ended_at, outcome FROM attempts WHERE send_id = $1", send_id
        )
        outcomes: dict[str, int] = {}
        for r in rows:
            outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
        return AttemptTimes(
            created=[r["created_at"].timestamp() for r in rows],
            ended=[r["ended_at"].timestamp() for r in rows if r["ended_at"] is not None],
            # A message played to its end: the attempt ended at its PlaybackFinished ("done"), the same
            # event the bare loop counts as a completed play.
            completed_plays=[
                r["ended_at"].timestamp()
                for r in rows
                if r["ended_at"] is not None and r["outcome"] in COMPLETED_PLAY_OUTCOMES
            ],
            outcomes=outcomes,
        )

    async def settle(self) -> int:
        return await instance.wait_no_channels(self.bare.client)


def bare_summary(calls: Sequence[CallTiming], message_s: float) -> dict[str, Any]:
    """Completed plays / (first POST → last completed play), and where each call's slot time went. A
    completed play is a PlaybackFinished in state "done", as the engine counts it."""
    played = [c.played_at for c in calls if c.played_at is not None]
    done = [c for c in calls if c.played_at is not None and c.ended_at is not None]
    first = min(c.posted_at for c in calls)
    last_played = max(played, default=first)
    slot = [c.ended_at - c.posted_at for c in done]  # type: ignore[operator]
    answer = [c.started_at - c.posted_at for c in done]  # type: ignore[operator]
    play = [c.played_at - c.started_at for c in done]  # type: ignore[operator]
    hangup = [c.ended_at - c.played_at for c in done]  # type: ignore[operator]
    mean = lambda v: sum(v) / len(v) if v else float("nan")  # noqa: E731
    return {
        "calls": len(calls),
        "completed_plays": len(played),
        "failures": len(calls) - len(done),
        "makespan_s": R(last_played - first, 3),
        "completed_plays_per_s": R(len(played) / (last_played - first), 1) if played else None,
        "slot_s_mean": R(mean(slot), 4),
        "setup_s_mean": R(mean(slot) - message_s, 4),
        "originate_to_stasis_start_ms_mean": R(1000 * mean(answer), 1),
        "originate_to_stasis_start_ms_p50": R(1000 * measure.percentile(answer, 50), 1),
        "originate_to_stasis_start_ms_p95": R(1000 * measure.percentile(answer, 95), 1),
        "play_minus_message_ms_mean": R(1000 * (mean(play) - message_s), 1),
        "hangup_ms_mean": R(1000 * mean(hangup), 1),
    }


async def bare_run(bench: Bench, message: Any, numbers: Sequence[str], concurrency: int) -> dict[str, Any]:
    media = playback_uri(bench.settings, message)
    cpu_before = measure.cpu_s("self")
    with LoopLag() as lag:
        calls = await concurrent(bench.bare, numbers, concurrency, media=media)
    cpu = measure.cpu_s("self") - cpu_before
    await bench.settle()
    return {
        **bare_summary(calls, message.duration_s),
        "process_cpu_ms_per_call": R(1000 * cpu / len(calls), 2),
        "event_loop_lag": lag.report(),
    }


async def dialer_send(
    bench: Bench, who: Any, numbers: Sequence[str], *, channels: int, cps: float, timeout_s: float
) -> dict[str, Any]:
    """One send through an in-process Engine; timings from the dialer's own hooks and the attempts."""
    settings = bench.engine_settings(max_channels=channels, max_cps=cps)
    async with Engine(settings) as engine:
        cpu_before = measure.cpu_s("self")
        with watch(engine) as run, LoopLag() as lag:
            send = await create_send(
                bench.db,
                settings,
                who.account,
                message_ref=who.message.ref,
                targets=targets(list(numbers)),
                origin="cli",
            )
            engine.dialer.wake()
            completed_at = await bench.until_done(send.id, timeout_s)
            # The last slots are released just after their results are stored.
            for _ in range(1000):
                if not engine.dialer.active:
                    break
                await asyncio.sleep(0.01)
        cpu = measure.cpu_s("self") - cpu_before
    await bench.settle()
    times = await bench.attempt_times(send.id)
    first = min(run.originated.values())
    last_end = max(times.ended)
    plays = times.completed_plays
    last_play = max(plays, default=first)
    return {
        "send_id": str(send.id),
        "calls": len(numbers),
        "attempts": len(times.created),
        "outcomes": times.outcomes,
        "first_originate": first,
        "makespan_s": R(last_end - first, 3),
        "to_last_slot_release_s": R(max(run.released) - first, 3),
        "to_completed_status_s": R(completed_at - first, 3),
        "ended_per_s": R(len(times.ended) / (last_end - first), 1),
        # Calls whose message played to its end, over first originate → the last of them: what the bare
        # loop counts (bench (a) compares these two).
        "completed_plays": len(plays),
        "completed_plays_makespan_s": R(last_play - first, 3),
        "completed_plays_per_s": R(len(plays) / (last_play - first), 1) if plays else None,
        # The engine runs in the bench's process: this includes the bench's own polling (small).
        "process_cpu_ms_per_call": R(1000 * cpu / len(times.created), 2),
        "event_loop_lag": lag.report(),
        "originated": sorted(run.originated.values()),
        "slot_breakdown": run.breakdown(channels, who.message.duration_s),
        "timings": run.timings.report(),
    }


def _strip(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in {"originated", "first_originate", "send_id"}}


# --- (a) ----------------------------------------------------------------------------------------------------
async def part_a(bench: Bench) -> dict[str, Any]:
    """Interleaved pairs (bare, dialer): the machine is shared, so each ratio compares neighbours."""
    who = await bench.customer("a", credits=A_CALLS * A_PAIRS, seconds=A_MESSAGE_S)
    await bench.trunk(max_channels=A_CONCURRENCY, max_cps=10_000)
    pairs = []
    for i in range(A_PAIRS):
        first = 20_000_000 + 2 * i * A_CALLS
        bare = await bare_run(bench, who.message, instance.national_numbers(A_CALLS, first), A_CONCURRENCY)
        dialer = await dialer_send(
            bench,
            who,
            instance.national_numbers(A_CALLS, first + A_CALLS),
            channels=A_CONCURRENCY,
            cps=10_000,
            timeout_s=300,
        )
        ours, theirs = dialer["completed_plays_per_s"], bare["completed_plays_per_s"]
        ratio = ours / theirs if ours and theirs else math.nan
        overhead = A_CONCURRENCY / ours - A_CONCURRENCY / theirs if ours and theirs else math.nan
        pairs.append(
            {
                "ratio": R(ratio, 3),
                "per_call_overhead_ms": R(1000 * overhead, 1),
                "completed_plays": {"bare_ari": bare["completed_plays"], "dialer": dialer["completed_plays"]},
                "bare_ari": bare,
                "dialer": _strip(dialer),
            }
        )
    ratio = measure.median([math.nan if p["ratio"] is None else p["ratio"] for p in pairs])
    return {
        "what": 'completed plays/s = calls whose message played to its end (PlaybackFinished "done"; the '
        "dialer's listened/voicemail outcomes) / (first originate → last such end), both placing the same "
        "call (endpoint, hidden caller ID) and playing the same message to the same phone at the same "
        "concurrency; no CPS limit in the way. Median of interleaved pairs.",
        "concurrency": A_CONCURRENCY,
        "calls": A_CALLS,
        "message_s": who.message.duration_s,
        "bare_completed_plays_per_s_median": measure.median(
            [p["bare_ari"]["completed_plays_per_s"] or math.nan for p in pairs]
        ),
        "dialer_completed_plays_per_s_median": measure.median(
            [p["dialer"]["completed_plays_per_s"] or math.nan for p in pairs]
        ),
        "ratio": R(ratio, 3),
        "ratios": [p["ratio"] for p in pairs],
        "checks": {"ratio": checks.at_least(R(ratio, 3), A_TARGET_RATIO)},
        "per_call_overhead_ms_median": measure.median(
            [math.nan if p["per_call_overhead_ms"] is None else p["per_call_overhead_ms"] for p in pairs]
        ),
        "pairs": pairs,
    }


# --- (b) ----------------------------------------------------------------------------------------------------
def send_bound(calls: int, *, cps: float, channels: int, message_s: float, setup_s: float) -> float:
    """The shortest a send of ``calls`` may last through a trunk of ``channels`` and ``cps``: its pace
    (N/CPS) or its channels, each busy h + setup per call (N·(h + setup)/C), whichever is longer."""
    return max(calls / cps, calls * (message_s + setup_s) / channels)


async def part_b(bench: Bench) -> dict[str, Any]:
    who = await bench.customer("b", credits=B_CALLS, seconds=B_MESSAGE_S)
    h = who.message.duration_s
    await bench.trunk(max_channels=B_CHANNELS, max_cps=B_CPS)
    bare = await bare_run(
        bench, who.message, instance.national_numbers(B_SETUP_CALLS, 27_000_000), B_CHANNELS
    )
    setup = bare["setup_s_mean"]
    dialer = await dialer_send(
        bench,
        who,
        instance.national_numbers(B_CALLS, 22_000_000),
        channels=B_CHANNELS,
        cps=B_CPS,
        timeout_s=600,
    )
    bound = send_bound(B_CALLS, cps=B_CPS, channels=B_CHANNELS, message_s=h, setup_s=setup)
    # The slot is free again once the hang-up is answered: that is what the bound's setup counts.
    actual = dialer["to_last_slot_release_s"]
    ratio = actual / bound
    return {
        "what": "duration of one send (first originate → last call's slot released) against "
        "max(N/CPS, N·(h + setup)/C), setup = the bare ARI loop's slot time minus h, same run",
        "recipients": B_CALLS,
        "channels": B_CHANNELS,
        "cps": B_CPS,
        "message_s": h,
        "setup_s": setup,
        "bare_ari_setup_loop": bare,
        "bound_s": R(bound, 3),
        "actual_s": actual,
        "ratio": R(ratio, 4),
        "checks": {
            "ratio": checks.within(R(ratio, 4), 1.0, B_TOLERANCE),
            # A send whose calls failed fast would end early: the bound holds for messages played.
            "completed_plays": checks.equal(dialer["completed_plays"], B_CALLS),
        },
        "dialer": _strip(dialer),
        "rtp_ports": f"{bench.settings.rtp_start}-{bench.settings.rtp_end}",
    }


# --- (c) ----------------------------------------------------------------------------------------------------
def rate_stats(times: Sequence[float], burst: int) -> dict[str, Any]:
    """Whole-run and steady (after the bucket's initial burst) calls/s, and the busiest 1 s window."""
    t = sorted(times)
    n = len(t)
    overall = (n - 1) / (t[-1] - t[0]) if n > 1 else float("nan")
    steady = (n - 1 - burst) / (t[-1] - t[burst]) if n > burst + 1 else float("nan")
    busiest, busiest_at = 0, 0.0
    j = 0
    for i in range(n):
        while t[i] - t[j] >= 1.0:
            j += 1
        if i - j + 1 > busiest:
            busiest, busiest_at = i - j + 1, t[j] - t[0]
    return {
        "calls": n,
        "overall_cps": R(overall, 3),
        "steady_cps": R(steady, 3),
        "max_in_1s_window": busiest,
        "busiest_window_starts_s": R(busiest_at, 3),  # after the first call
    }


async def part_c(bench: Bench) -> dict[str, Any]:
    who = await bench.customer("c", credits=C_CALLS, seconds=A_MESSAGE_S)
    await bench.trunk(max_channels=100, max_cps=C_CPS)
    first_number = 24_000_000
    numbers = instance.national_numbers(C_CALLS, first_number)
    # The engine-wide limits are above the trunk's: the trunk's bucket is what is measured.
    dialer = await dialer_send(bench, who, numbers, channels=100, cps=2 * C_CPS, timeout_s=300)
    burst = int(C_CPS)  # the steady rate leaves out the first second's calls (the bucket starts full)
    ours = rate_stats(dialer["originated"], burst)
    wanted = set(numbers)
    ticks = [
        int(e["tick_ms"]) / 1000
        for e in bench.phone.log_events()
        if e.get("event") == "INVITE" and e.get("number") in wanted and e.get("tick_ms", "").isdigit()
    ]
    wire = rate_stats(ticks, burst) if len(ticks) == C_CALLS else {"calls": len(ticks)}
    error = ours["steady_cps"] / C_CPS - 1
    return {
        "what": "originates/s of one send through a trunk limited to max_cps; steady = after the first "
        f"{burst} calls (the token bucket starts full), wire = INVITE times in SIPp's log",
        "trunk_max_cps": C_CPS,
        "dialer": ours,
        "wire": wire,
        "steady_error": R(error, 4),
        "checks": {
            "steady_error": checks.within(R(error, 4), 0.0, C_TOLERANCE),
            # Never faster than the limit: no 1 s window of the whole run holds more than rate + 1
            # originates (a window's two ends may both hold one).
            "never_faster": checks.at_most(ours["max_in_1s_window"], int(C_CPS) + 1),
        },
        "timings": dialer["timings"],
    }


# --- (d) ----------------------------------------------------------------------------------------------------
async def part_d(bench: Bench) -> dict[str, Any]:
    who = await bench.customer("d", credits=D_SENDS, seconds=A_MESSAGE_S)
    await bench.trunk(max_channels=100, max_cps=50)
    settings = bench.engine_settings(max_channels=100, max_cps=50)
    starts: dict[UUID, datetime] = {}
    async with Engine(settings) as engine:
        await engine.ari.wait_ready(10)
        base = datetime.now(UTC) + timedelta(seconds=D_LEAD_S)
        for i, number in enumerate(instance.national_numbers(D_SENDS, 25_000_000)):
            at = base + timedelta(seconds=i * D_SPACING_S)
            send = await create_send(
                bench.db,
                settings,
                who.account,
                message_ref=who.message.ref,
                targets=targets([number]),
                origin="http",
                at=at,
            )
            starts[send.id] = at
        for send_id in starts:
            await bench.until_done(send_id, 60)
    await bench.settle()
    rows = await bench.db.fetch(
        "SELECT send_id, min(created_at) AS first FROM attempts WHERE send_id = ANY($1::uuid[]) "
        "GROUP BY send_id",
        list(starts),
    )
    lateness = [(r["first"] - starts[r["send_id"]]).total_seconds() for r in rows]
    p95 = measure.percentile(lateness, 95)
    return {
        "what": "first attempt created_at − start_at of deferred one-number sends, engine running",
        "sends": D_SENDS,
        "started": len(lateness),
        "lateness_s_p50": R(measure.percentile(lateness, 50), 3),
        "lateness_s_p95": R(p95, 3),
        "lateness_s_min": R(min(lateness, default=math.nan), 3),
        "lateness_s_max": R(max(lateness, default=math.nan), 3),
        "checks": {
            "started": checks.equal(len(lateness), D_SENDS),
            "never_early": checks.at_least(R(min(lateness, default=math.nan), 3), 0.0),
            "lateness_s_p95": checks.at_most(R(p95, 3), D_TARGET_S),
        },
    }


# --- (e) ----------------------------------------------------------------------------------------------------
async def part_e(bench: Bench) -> dict[str, Any]:
    who = await bench.customer("e", credits=E_RECIPIENTS, seconds=E_MESSAGE_S)
    await bench.trunk(max_channels=E_CHANNELS, max_cps=E_CPS)
    env = engine_env(
        {
            "VOCALCAST_MAX_CHANNELS": str(E_CHANNELS),
            "VOCALCAST_MAX_CPS": str(E_CPS),
            "VOCALCAST_RING_TIMEOUT_S": str(RING_TIMEOUT_S),
        }
    )
    build_start = time.perf_counter()
    wanted = targets(instance.national_numbers(E_RECIPIENTS, 30_000_000))
    build_s = time.perf_counter() - build_start
    engine = EngineProcess(env, bench.workdir / "engine-e.log")
    asterisk_pid = procs.read_pid(bench.settings.state_dir, "asterisk")
    await engine.start()
    samples: list[dict[str, float]] = []
    try:
        assert engine.proc is not None
        pid = engine.proc.pid
        idle_rss = measure.rss_mb(pid)
        cpu0, ast0 = measure.cpu_s(pid), measure.cpu_s(asterisk_pid) if asterisk_pid else 0.0
        start = time.perf_counter()
        send = await create_send(
            bench.db, bench.settings, who.account, message_ref=who.message.ref, targets=wanted, origin="api"
        )
        create_s = time.perf_counter() - start
        t0 = time.monotonic()
        next_mark = 1000
        rss_at: dict[int, float] = {}
        attempts = 0
        while attempts < E_CALLS:
            await asyncio.sleep(0.1)
            attempts = await bench.db.fetchval("SELECT count(*) FROM attempts WHERE send_id = $1", send.id)
            if attempts >= next_mark:
                rss = measure.rss_mb(pid)
                rss_at.setdefault(next_mark, rss)
                samples.append(
                    {"attempts": attempts, "t_s": R(time.monotonic() - t0, 2), "rss_mb": R(rss, 1)}
                )
                next_mark = (attempts // 1000 + 1) * 1000
            if time.monotonic() - t0 > 900:
                raise TimeoutError(f"only {attempts} attempts after 900 s")
        elapsed = time.monotonic() - t0
        rss_final = measure.rss_mb(pid)
        cpu1, ast1 = measure.cpu_s(pid), measure.cpu_s(asterisk_pid) if asterisk_pid else 0.0
        await steer(bench.db, send.id, "cancel")
        await bench.until_done(send.id, 30)
        deadline = time.monotonic() + 60
        while await bench.db.fetchval(
            "SELECT count(*) FROM attempts WHERE send_id = $1 AND state <> 'ended'", send.id
        ):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        total = await bench.db.fetchval("SELECT count(*) FROM attempts WHERE send_id = $1", send.id)
        outcomes = {
            r["outcome"]: r["n"]
            for r in await bench.db.fetch(
                "SELECT outcome, count(*) AS n FROM attempts WHERE send_id = $1 GROUP BY outcome", send.id
            )
        }
    finally:
        await engine.stop()
    await bench.settle()
    rss_1k = rss_at.get(1000, float("nan"))
    rss_20k = rss_at.get(E_CALLS, rss_final)
    growth = rss_20k - rss_1k
    return {
        "what": "VmRSS of `vocalcast serve` (a subprocess) during ONE 100,000-number send, cancelled after "
        "20,000 calls; creation time of that send (create_send, numbers already parsed)",
        "recipients": E_RECIPIENTS,
        "channels": E_CHANNELS,
        "cps_limit": E_CPS,
        "message_s": who.message.duration_s,
        "create_send_s": R(create_s, 3),
        "targets_build_s": R(build_s, 3),
        "rss_mb_idle": R(idle_rss, 1),
        "rss_mb_after_1000": R(rss_1k, 1),
        "rss_mb_after_20000": R(rss_20k, 1),
        "rss_growth_mb": R(growth, 1),
        "checks": {
            "create_send_s": checks.below(R(create_s, 3), E_CREATE_TARGET_S),
            "rss_growth_mb": checks.at_most(R(growth, 1), E_RSS_FLAT_MB),
        },
        "calls_per_s": R(attempts / elapsed, 1),
        "engine_cpu_ms_per_call": R(1000 * (cpu1 - cpu0) / attempts, 2),
        "asterisk_cpu_ms_per_call": R(1000 * (ast1 - ast0) / attempts, 2),
        "attempts_total_after_cancel": total,
        "outcomes": outcomes,
        "rss_samples": samples,
    }


# --- run ----------------------------------------------------------------------------------------------------
PARTS: dict[str, Callable[[Bench], Any]] = {
    "a_originate_rate": part_a,
    "b_send_duration": part_b,
    "c_cps_limit": part_c,
    "d_deferred_lateness": part_d,
    "e_engine_rss": part_e,
}


async def measure_parts(settings: Settings, workdir: Path, parts: Sequence[str]) -> dict[str, Any]:
    phone = phones.signalling_only(workdir)
    client = instance.ari_client(settings)
    bare = BareAri(client)
    out: dict[str, Any] = {}
    async with (
        phone,
        Database(settings.dsn, min_size=1, max_size=5) as db,
        client,
        events_task(client, bare.handle),
    ):
        await client.wait_ready(10)
        bench = Bench(settings, db, workdir, phone, bare)
        out["machine_at_start"] = measure.machine()
        for name in parts:
            started = time.monotonic()
            out[name] = await PARTS[name](bench)
            out[name]["bench_s"] = R(time.monotonic() - started, 1)
    out["machine_at_end"] = measure.machine()
    return out


def part_names(wanted: Sequence[str]) -> list[str]:
    """The parts named (in full, or by their letter: "a", "c"), in the bench's order; all when none."""
    if not wanted:
        return list(PARTS)
    unknown = [w for w in wanted if not any(n == w or n.startswith(f"{w}_") for n in PARTS)]
    if unknown:
        raise ValueError(f"no dialer bench part {unknown}; parts: {list(PARTS)}")
    return [n for n in PARTS if any(n == w or n.startswith(f"{w}_") for w in wanted)]


def run(parts: Sequence[str] = ()) -> dict[str, Any]:
    names = part_names(parts)
    with (
        instance.bench_stack() as settings,
        tempfile.TemporaryDirectory(prefix="vocalcast-bench-dialer-") as tmp,
    ):
        return {"parts": names, **asyncio.run(measure_parts(settings, Path(tmp), names))}


if __name__ == "__main__":
    # As the runner does: stdout keeps the JSON alone, and the in-process engine logs warnings only.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    print(json.dumps(run(sys.argv[1:]), indent=2))
