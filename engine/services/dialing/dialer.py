"""The dialer: due work from PostgreSQL → calls through the call-flow adapter, as fast as the trunks and
Asterisk allow and never faster; retries, credits, failover, and reconciliation after crashes and gaps.

Never call anyone twice by mistake: an attempt row is committed before its originate request, and
an attempt whose originate may have been sent is only ever reconciled (channels, then CDRs).

The parts: the trunk pool and its watch (which trunk may take which call: trunkpool.py, trunkwatch.py),
one attempt from originate to recorded result (attempt.py), adoption of calls that outlived a gap
(adoption.py), results written in batches (results.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog

from engine.domain.breaker import BreakerSettings
from engine.domain.callevents import CallResult
from engine.domain.callplan import CallPlan, DropMode
from engine.domain.pacing import AdaptivePace
from engine.domain.quality import QualityRules
from engine.domain.retries import RetryPolicy, RetryTiming
from engine.errors import DatabaseUnavailable, TelephonyUnavailable
from engine.media.paths import prompt_uri, sound_uri
from engine.metrics import Metrics
from engine.services.dialing import lawgate
from engine.services.dialing.adoption import Adoption
from engine.services.dialing.attempt import Attempts, SendContext
from engine.services.dialing.clock import Clock
from engine.services.dialing.results import ResultWriter
from engine.services.dialing.stages import StageRecorder
from engine.services.dialing.trunkpool import TrunkPool
from engine.services.dialing.trunkwatch import TrunkWatch
from engine.settings import Settings
from engine.store import Database
from engine.store import attempts as attempts_store
from engine.store import sends as sends_store
from engine.store.attempts import Claim, Slot
from engine.telephony.ari import AriClient, AriError, Event
from engine.telephony.callrequest import CallRequest
from engine.telephony.calls import CallService
from engine.telephony.sipwatch import SipWatch

log = structlog.get_logger(__name__)

TICK_S = 0.1  # the loop wakes at least this often when there is work; sooner on wake()
IDLE_S = 0.25  # and this often when idle (deferred sends start within it)
RECONCILE_EVERY_S = 15.0  # open attempts nobody follows (uncertain originates, results lost) are looked at


@dataclass
class DialerState:
    blocked_reason: str = ""


class Dialer:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        ari: AriClient,
        calls: CallService,
        metrics: Metrics,
        *,
        trunk_events: AriClient | None = None,
        sipwatch: SipWatch | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.ari = ari
        self.calls = calls
        self.metrics = metrics
        self.node = settings.node_name
        self.state = DialerState()
        now = time.monotonic()
        self.pool = TrunkPool(
            max_channels=settings.max_channels,
            max_cps=settings.max_cps,
            now=now,
            breaker=BreakerSettings(
                window_s=settings.breaker_window_s,
                min_failures=settings.breaker_min_failures,
                failure_ratio=settings.breaker_failure_ratio,
                cooldown_first_s=settings.breaker_cooldown_s,
                cooldown_max_s=settings.breaker_cooldown_max_s,
                retry_after_max_s=settings.retry_after_max_s,
            ),
            quality=QualityRules(
                alarm_ratio=settings.asr_alarm_ratio,
                cutoff_ratio=settings.asr_cutoff_ratio,
                min_calls=settings.asr_min_calls,
            ),
        )
        self.pace = AdaptivePace(settings.max_cps, now=now) if settings.max_cps > 0 else None
        calls.on_originate = self._on_originate_latency
        self.watch = TrunkWatch(settings, db, ari, events=trunk_events, pool=self.pool, metrics=metrics)
        # The dialer's notion of now (a test can move it: VOCALCAST_CLOCK_OFFSET_S, or clock.offset_s).
        self.clock = Clock(settings.clock_offset_s)
        self._results = ResultWriter(
            db,
            RetryTiming(busy=settings.retry_busy_factor, no_answer=settings.retry_no_answer_factor),
            clock=self.clock.time,
        )
        self.attempts = Attempts(
            settings,
            db,
            calls,
            pool=self.pool,
            results=self._results,
            metrics=metrics,
            node=self.node,
            app=ari.app,
            wake=self.wake,
            sipwatch=sipwatch,
        )
        self._wake = asyncio.Event()
        self._contexts: dict[UUID, SendContext] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._checked_at = float("-inf")
        self._completed_at = 0.0
        self._started_due_at = float("-inf")
        self._token_due: float | None = None
        self._reconciled_at = time.monotonic()
        self.adoption = Adoption(settings, db, ari, calls, self, node=self.node)
        # Each call's stage, kept where a restarted engine finds it (run by the engine: stages.run).
        self.stages = StageRecorder(db, ari)
        calls.on_stage = self.stages.on_stage
        self.attempts.on_recorded = self.stages.recorded

    # --- public --------------------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    @property
    def active(self) -> int:
        return self.pool.active

    @property
    def originates(self) -> int:
        return self.attempts.originates

    @property
    def on_originate(self) -> Callable[[Claim], None] | None:
        return self.attempts.on_originate

    @on_originate.setter
    def on_originate(self, hook: Callable[[Claim], None] | None) -> None:
        self.attempts.on_originate = hook  # tests and benches count originates

    def trunk_stats(self) -> dict[str, dict[str, object]]:
        return self.pool.stats(time.monotonic())

    def on_trunk_event(self, event: Event) -> None:
        """An event of the trunks' own ARI application (endpoint states, inbound channels)."""
        self.watch.on_event(event)

    async def run(self) -> None:
        """Forever: start due sends, claim work while trunks have room, complete finished sends."""
        backoff = 0.5
        while True:
            try:
                await self._cycle()
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except DatabaseUnavailable as exc:
                self.state.blocked_reason = "database unavailable"
                log.warning("dialer.database_unavailable", error=str(exc), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.exception("dialer.cycle_failed")
                await asyncio.sleep(1.0)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stop placing calls. Calls in progress go on in Asterisk; the next start re-adopts them."""
        tasks = list(self._tasks)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.adoption.close()
        await self._results.close()
        await self.stages.close()

    # --- one cycle -------------------------------------------------------------------------------------
    async def _cycle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self._wait_s())
        self._wake.clear()
        now_dt = self.clock.now()
        if time.monotonic() - self._started_due_at >= IDLE_S:
            # Deferred sends: looked for every IDLE_S, not on every cycle of a busy dialer.
            self._started_due_at = time.monotonic()
            for send_id in await sends_store.start_due(self.db, now_dt):
                log.info("send.started", send_id=str(send_id))
        if time.monotonic() - self._checked_at >= self.settings.trunk_check_s or not self.pool.trunks:
            self._checked_at = time.monotonic()
            await self.watch.check()
        if not self.ari.ready:
            self.state.blocked_reason = "asterisk unavailable"
            return
        if not self.adoption.done_after_connect.is_set():
            return
        now = time.monotonic()
        if not self.pool.trunks:
            self.state.blocked_reason = (
                "no trunk: add one with `vocalcast trunk add`, or run in demo mode (VOCALCAST_DEMO=1)"
            )
        elif all(t.unhealthy_reason(now) for t in self.pool.trunks.values()):
            self.state.blocked_reason = "no usable trunk: " + "; ".join(
                f"{name} {t.unhealthy_reason(now)}" for name, t in self.pool.trunks.items()
            )
        else:
            self.state.blocked_reason = ""
            await self._dispatch(now_dt)
        await self._complete()
        if time.monotonic() - self._reconciled_at > RECONCILE_EVERY_S:
            self._reconciled_at = time.monotonic()
            await self.adoption.reconcile()

    async def _complete(self) -> None:
        now = time.monotonic()
        if now - self._completed_at < 1.0:
            return
        self._completed_at = now
        for send_id in await sends_store.complete_finished(self.db):
            self._contexts.pop(send_id, None)
            log.info("send.completed", send_id=str(send_id))

    def _wait_s(self) -> float:
        """Until the next cycle: a tick while calls run, longer when idle, and exactly the next token's
        time when work waits only for a token (buckets save up little: the pace stays even)."""
        wait = TICK_S if self._tasks else IDLE_S
        if self._token_due is not None:
            wait = min(wait, max(0.005, self._token_due - time.monotonic()))
            self._token_due = None
        return wait

    def _note_token_wait(self, now: float) -> None:
        wait = self.pool.token_wait_s(now)
        if wait is not None:
            self._token_due = now + wait

    def _on_originate_latency(self, latency_s: float, overloaded: bool) -> None:
        """Asterisk's answer to an originate: slow or refused as overloaded slows the engine's pace."""
        if self.pace is None:
            return
        now = time.monotonic()
        before = self.pace.current(now)
        self.pace.observe(now, latency_s=latency_s, overloaded=overloaded)
        after = self.pace.current(now)
        self.pool.set_engine_rate(after, now)
        if after < before:
            log.warning("dialer.pace_lowered", calls_per_s=round(after, 1), latency_s=round(latency_s, 3))
        self.metrics.pace.set(after)

    async def _dispatch(self, now_dt: datetime) -> None:
        now = time.monotonic()
        if self.pace is not None:
            self.pool.set_engine_rate(self.pace.current(now), now)
        free = self.pool.free_slots(now)
        if free <= 0:
            if self.active < self.settings.max_channels:
                self._note_token_wait(now)
            return
        sends = await sends_store.runnable_sends(self.db, now_dt)
        if not sends:
            return
        classes = self.pool.plan(now)
        if not classes:
            self._note_token_wait(now)
            return
        # Each send in turn, least served first, gets its share of what is left: of the engine's free
        # slots and of every route class's slots (what one send's numbers cannot use, the next may).
        rooms = [list(c.trunks) for c in classes]
        for index, send in enumerate(sends):
            if free <= 0 or not any(rooms):
                break
            share = -(-free // (len(sends) - index))  # ceil
            take = functools.partial(
                attempts_store.claim,
                send_id=send.id,
                classes=[(c.pattern, len(room)) for c, room in zip(classes, rooms, strict=True)],
                slots=[
                    Slot(t, i + 1, self.pool.trunks[t].trunk.demo)
                    for i, room in enumerate(rooms)
                    for t in room
                ],
                limit=share,
                node=self.node,
                app=self.ari.app,
                now=now_dt,
            )
            if send.commercial and send.account_id is not None:
                # The law first: only the recipients it allows now are claimed (the others wait).
                claims = await lawgate.claim_lawfully(
                    self.db, send.id, send.account_id, now_dt, limit=share + 10, claim=take
                )
            else:
                claims = await take(self.db)
            if not claims:
                continue
            context = await self.send_context(send.id)
            for claim in claims:
                for room in rooms:
                    if claim.trunk in room:
                        room.remove(claim.trunk)
                        break
                if self.pool.take(claim.trunk, time.monotonic()):
                    self._spawn(self.attempts.run(claim, context), claim)
                else:  # a failover took its token while it was being claimed: it keeps the pace
                    self._spawn(self._run_when_paced(claim, context), claim)
            free -= len(claims)
        if free > 0:
            self._note_token_wait(now)

    async def _run_when_paced(self, claim: Claim, context: SendContext) -> None:
        await self.pool.wait_for_token(claim.trunk)
        await self.attempts.run(claim, context)

    def _spawn(self, coro: Coroutine[Any, Any, None], claim: Claim) -> None:
        task = asyncio.create_task(coro, name=f"attempt-{claim.attempt_id}")
        self._tasks.add(task)
        task.add_done_callback(self._attempt_done)

    def _attempt_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Its attempt stays open: reconciliation follows it to an outcome (never a second call).
            log.error("call.attempt_failed", task=task.get_name(), exc_info=task.exception())

    async def send_context(self, send_id: UUID) -> SendContext:
        context = self._contexts.get(send_id)
        if context is not None:
            return context
        row = await attempts_store.dial_context(self.db, send_id)
        if row is None:
            raise RuntimeError(f"send {send_id} vanished")
        media = self.settings.media_dir
        message = sound_uri(self.settings, media / row.audio_stem)
        greeting = sound_uri(self.settings, media / row.greeting_stem) if row.greeting_stem else None
        plan = CallPlan(
            message=message,
            greeting=greeting,
            transfer_number=row.transfer_number,
            drop_mode=DropMode.amd if row.voicemail_drop else DropMode.none,
            transfer_wait_media=prompt_uri(self.settings, "transfer_wait"),
            transfer_apology_media=prompt_uri(self.settings, "transfer_failed"),
            star_wait_s=self.settings.star_wait_s,
            transfer_ring_timeout_s=self.settings.transfer_ring_timeout_s,
            transfer_max_s=self.settings.transfer_max_s,
            # A lost event is caught by the deadline of the stage it left the call in (ringing: the ring
            # timeout; a playback: its medium's length; plus a margin), rather than by a cap on the call.
            ring_timeout_s=self.settings.ring_timeout_s,
            message_s=row.message_duration_s or None,
            greeting_s=row.greeting_duration_s or None,
        )
        context = SendContext(send_id, row.account_id, plan, row.sender_e164, row.retry, row.demo)
        self._contexts[send_id] = context
        return context

    # --- results, and adoption (engine.services.dialing.adoption) ----------------------------------------
    async def record(
        self,
        claim: Claim,
        result: CallResult,
        policy: RetryPolicy,
        *,
        failed_over: bool = False,
        reconciled: str | None = None,
    ) -> None:
        await self.attempts.record(claim, result, policy, failed_over=failed_over, reconciled=reconciled)

    def release_slot(self, trunk: str) -> None:
        self.pool.release_slot(trunk)

    async def reconcile(self) -> None:
        """After a (re)connection: follow this node's open attempts to an outcome (see Adoption)."""
        await self.adoption.after_connect()

    def connection_lost(self) -> None:
        self.adoption.connection_lost()
        self.watch.connection_lost()

    def follows(self, attempt_id: UUID) -> bool:
        return str(attempt_id) in self.calls.calls or attempt_id in self.attempts.recording

    async def call_request(self, claim: Claim) -> CallRequest | None:
        if not self.pool.trunks:  # just started: the trunks are read on the first cycle, or now
            await self.watch.check()
        trunk = self.pool.trunks.get(claim.trunk)
        if trunk is None:
            return None
        return self.attempts.request(claim, await self.send_context(claim.send_id), trunk.trunk)

    def take_slot(self, trunk: str) -> None:
        self.pool.take_slot(trunk)

    # --- what monitoring reads (engine.services.health.Telephony) ------------------------------------------
    @property
    def ready(self) -> bool:
        return self.ari.ready

    @property
    def active_calls(self) -> int:
        return self.calls.active

    @property
    def dialer_state(self) -> str:
        return self.state.blocked_reason or "ready"

    async def endpoint_states(self) -> dict[str, str]:
        """Each PJSIP endpoint's state as Asterisk reports it (TelephonyUnavailable when it cannot)."""
        try:
            endpoints = await self.ari.endpoints("PJSIP")
        except AriError as exc:
            raise TelephonyUnavailable(f"ARI endpoints: {exc}") from exc
        return {str(e.get("resource")): str(e.get("state", "unknown")) for e in endpoints}
