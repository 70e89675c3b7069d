"""Bench: the bare ARI originate rate and originate→StasisStart latency against the stack, the
baseline other benches divide by. No engine: one ARI client, its events websocket, a SIPp phone.

Bursts of 300 originates at once (HTTP pool 50), and 300 calls at a concurrency of 50; each call
is hung up as soon as its StasisStart arrives. 3 runs of each, medians reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from bench.support import checks, instance, measure, phones
from engine.settings import Settings
from engine.stack import procs
from engine.telephony.ari import AriClient, AriError, AriUnavailable, Event, events_task

RUNS = 3
BURST_N = 300
POOL = 50
CONCURRENCY = 50
CALL_TIMEOUT_S = 15.0
# The lab's figures (../shared/notes/asterisk-performance.md), for the reader of the JSON.
LAB = {
    "burst_300_originates_per_s": "871/875/1069 (min/median/max)",
    "burst_300_originate_to_stasis_start_ms": "p50 190-270, p95 300-330",
    "c50_originate_to_stasis_start_ms": "p50 16-21, p95 46-54 (2 s hold)",
}


@dataclass
class CallTiming:
    """One bare call; times are time.time() (comparable with the engine's ended_at)."""

    number: str
    posted_at: float = 0.0  # just before POST /channels
    started_at: float | None = None  # StasisStart received
    played_at: float | None = None  # PlaybackFinished "done" received (calls that play media)
    ended_at: float | None = None  # DELETE /channels answered: the slot is free
    error: str | None = None

    @property
    def answered(self) -> bool:
        return self.started_at is not None and self.error is None

    @property
    def setup_ms(self) -> float:
        assert self.started_at is not None
        return (self.started_at - self.posted_at) * 1000


@dataclass
class _Waiters:
    started: asyncio.Future[float]
    played: dict[str, asyncio.Future[float]] = field(default_factory=dict)


class BareAri:
    """The thinnest originate loop ARI allows: POST /channels with our id, wait for StasisStart,
    optionally play a sound to its end, DELETE. Events are matched to calls by channel id."""

    def __init__(self, client: AriClient, **originate_args: Any) -> None:
        self.client = client
        self.originate_args = originate_args  # e.g. variables=, caller_id=: what the engine also sends
        self._calls: dict[str, _Waiters] = {}

    def handle(self, event: Event) -> None:
        kind = event.get("type")
        now = time.time()
        if kind == "StasisStart":
            waiters = self._calls.get(str((event.get("channel") or {}).get("id")))
            if waiters is not None and not waiters.started.done():
                waiters.started.set_result(now)
        elif kind == "PlaybackFinished":
            playback = event.get("playback") or {}
            target = str(playback.get("target_uri", "")).partition(":")[2]
            waiters = self._calls.get(target)
            future = waiters.played.get(str(playback.get("id"))) if waiters else None
            if future is not None and not future.done():
                # Only a playback that ran to its end is a completed play, as the engine counts it
                # (PlaybackFinished also fires when the channel goes away or the media fails).
                if playback.get("state") == "done":
                    future.set_result(now)
                else:
                    future.set_exception(RuntimeError(f"playback {playback.get('state')}"))
        elif kind == "ChannelDestroyed":
            waiters = self._calls.get(str((event.get("channel") or {}).get("id")))
            if waiters is not None and not waiters.started.done():
                waiters.started.set_exception(RuntimeError(f"destroyed, cause {event.get('cause')}"))

    async def call(self, endpoint: str, number: str, *, media: str | None = None) -> CallTiming:
        timing = CallTiming(number)
        channel_id = str(uuid.uuid4())  # ids that prefix each other collide (lab notes, gotcha 1)
        loop = asyncio.get_running_loop()
        waiters = _Waiters(loop.create_future())
        self._calls[channel_id] = waiters  # before the POST: events may win the reply
        posted = False
        try:
            timing.posted_at = time.time()
            await self.client.originate(
                endpoint=endpoint,
                channel_id=channel_id,
                app_args="bench",
                timeout_s=CALL_TIMEOUT_S,
                **self.originate_args,
            )
            posted = True
            timing.started_at = await asyncio.wait_for(waiters.started, CALL_TIMEOUT_S)
            if media is not None:
                playback_id = str(uuid.uuid4())
                played = waiters.played[playback_id] = loop.create_future()
                await self.client.play(channel_id, playback_id, media)
                timing.played_at = await asyncio.wait_for(played, CALL_TIMEOUT_S + 60)
            await self.client.hangup(channel_id)
            timing.ended_at = time.time()
        except (AriError, AriUnavailable, RuntimeError, TimeoutError) as exc:
            timing.error = f"{exc.__class__.__name__}: {exc}"
            if posted:
                await _quiet_hangup(self.client, channel_id)
        finally:
            del self._calls[channel_id]
            for future in (waiters.started, *waiters.played.values()):
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved: no "exception never retrieved" warning
        return timing


async def _quiet_hangup(client: AriClient, channel_id: str) -> None:
    with contextlib.suppress(AriError, AriUnavailable):
        await client.hangup(channel_id)


def endpoint_for(number: str) -> str:
    return f"PJSIP/{number}@{instance.TRUNK}"


async def burst(bare: BareAri, numbers: Sequence[str], *, media: str | None = None) -> list[CallTiming]:
    """Every call at once; the client's HTTP pool is the only limit."""
    return list(await asyncio.gather(*(bare.call(endpoint_for(n), n, media=media) for n in numbers)))


async def concurrent(
    bare: BareAri, numbers: Sequence[str], concurrency: int, *, media: str | None = None
) -> list[CallTiming]:
    """`concurrency` workers, each placing its next call as soon as the previous one is hung up."""
    queue = list(reversed(numbers))
    results: list[CallTiming] = []

    async def worker() -> None:
        while queue:
            number = queue.pop()
            results.append(await bare.call(endpoint_for(number), number, media=media))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def summarize(calls: Sequence[CallTiming]) -> dict[str, Any]:
    """originates/s = answered / (first POST → last StasisStart); latencies of answered calls."""
    answered = [c for c in calls if c.answered]
    setup = [c.setup_ms for c in answered]
    window = (max(c.started_at for c in answered) - min(c.posted_at for c in calls)) if answered else 0.0  # type: ignore[type-var]
    errors: dict[str, int] = {}
    for c in calls:
        if c.error:
            errors[c.error[:120]] = errors.get(c.error[:120], 0) + 1
    return {
        "calls": len(calls),
        "answered": len(answered),
        "failures": len(calls) - len(answered),
        "window_s": measure.rounded(window, 4),
        "originates_per_s": measure.rounded(len(answered) / window if window else float("nan"), 1),
        "originate_to_stasis_start_ms_p50": measure.rounded(measure.percentile(setup, 50), 1),
        "originate_to_stasis_start_ms_p95": measure.rounded(measure.percentile(setup, 95), 1),
        "originate_to_stasis_start_ms_max": measure.rounded(max(setup, default=float("nan")), 1),
        "errors": errors,
    }


def medians(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    keys = ("originates_per_s", "originate_to_stasis_start_ms_p50", "originate_to_stasis_start_ms_p95")
    out: dict[str, Any] = {
        f"{k}_median": measure.rounded(measure.median([r[k] for r in runs if r[k] is not None]), 1)
        for k in keys
    }
    out["failures_total"] = sum(r["failures"] for r in runs)
    out["runs"] = list(runs)
    return out


async def measure_all(settings: Settings, workdir: Path) -> dict[str, Any]:
    sipp = phones.signalling_only(workdir)
    asterisk_pid = procs.read_pid(settings.state_dir, "asterisk")
    async with sipp:
        await instance.set_trunk(settings, sipp.local_port, max_channels=1000, max_cps=1000)
        client = instance.ari_client(settings, pool_size=POOL)
        bare = BareAri(client)
        async with client, events_task(client, bare.handle):
            await client.wait_ready(10)
            machine_at_start = measure.machine()
            await concurrent(bare, instance.national_numbers(20, 19_000_000), 10)  # warm-up
            await instance.wait_no_channels(client)
            cpu_before = measure.cpu_s(asterisk_pid) if asterisk_pid else None
            burst_runs, conc_runs = [], []
            for run in range(RUNS):
                numbers = instance.national_numbers(BURST_N, 11_000_000 + run * 1000)
                burst_runs.append(summarize(await burst(bare, numbers)))
                await instance.wait_no_channels(client)
            for run in range(RUNS):
                numbers = instance.national_numbers(BURST_N, 12_000_000 + run * 1000)
                conc_runs.append(summarize(await concurrent(bare, numbers, CONCURRENCY)))
                await instance.wait_no_channels(client)
            cpu_after = measure.cpu_s(asterisk_pid) if asterisk_pid else None
        invites = sum(1 for e in sipp.log_events() if e.get("event") == "INVITE")
    calls = 2 * RUNS * BURST_N
    return {
        "setup": {
            "uas": "SIPp, 180 + 200 at once, waits for BYE (signalling only)",
            "hangup": "DELETE right after StasisStart",
            "http_pool": POOL,
            "runs": RUNS,
        },
        "burst_300": {"calls_per_run": BURST_N, **medians(burst_runs)},
        "concurrency_50_hold_0": {"calls_per_run": BURST_N, "concurrency": CONCURRENCY, **medians(conc_runs)},
        "sipp_invites_counted": invites,
        "sipp_invites_expected": calls + 20,
        # The baseline itself must hold: every originate answered, every INVITE seen by the phone.
        "checks": {
            "burst_300_failures": checks.equal(sum(r["failures"] for r in burst_runs), 0),
            "concurrency_50_failures": checks.equal(sum(r["failures"] for r in conc_runs), 0),
            "sipp_invites": checks.equal(invites, calls + 20),
        },
        "asterisk_cpu_ms_per_call": (
            measure.rounded((cpu_after - cpu_before) * 1000 / calls, 2)
            if cpu_before is not None and cpu_after is not None
            else None
        ),
        "lab_reference": LAB,
        "machine_at_start": machine_at_start,
        "machine_at_end": measure.machine(),
    }


def run() -> dict[str, Any]:
    with (
        instance.bench_stack() as settings,
        tempfile.TemporaryDirectory(prefix="vocalcast-bench-ari-") as tmp,
    ):
        return asyncio.run(measure_all(settings, Path(tmp)))


if __name__ == "__main__":
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    print(json.dumps(run(), indent=2))
