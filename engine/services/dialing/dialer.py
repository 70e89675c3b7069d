"""The dialer: due work from PostgreSQL → calls through the call-flow adapter, as fast as the trunks and
Asterisk allow and never faster; retries, credits, failover, and reconciliation after crashes and gaps.

Never call anyone twice by mistake: an attempt row is committed before its originate request, and
an attempt whose originate may have been sent is only ever reconciled (channels, then CDRs).

The parts: the trunk pool and its watch (which trunk may take which call: trunkpool.py, trunkwatch.py),
the gates a claim passes (claims.py), each send's call plan (contexts.py), one attempt from originate to
recorded result (attempt.py), adoption of calls that outlived a gap (adoption.py), results written in
batches (results.py).
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
from engine.domain.pacing import AdaptivePace
from engine.domain.quality import QualityRules
from engine.domain.retries import RetryPolicy, RetryTiming
from engine.errors import DatabaseUnavailable, TelephonyUnavailable
from engine.metrics import Metrics
from engine.services.dialing.adoption import Adoption
from engine.services.dialing.attempt import Attempts, SendContext
from engine.services.dialing.claims import Claims
from engine.services.dialing.clock import Clock
from engine.services.dialing.contexts import SendContexts
from engine.services.dialing.membership import Membership
from engine.services.dialing.results import ResultWriter
from engine.services.dialing.stages import StageRecorder
from engine.services.dialing.takeover import Foster
from engine.services.dialing.trunkpool import TrunkPool
from engine.services.dialing.trunkshare import SharedLimits, keep, within
from engine.services.dialing.trunkwatch import TrunkWatch
from engine.settings import Settings
from engine.store import Database
from engine.store import attempts as attempts_store
from engine.store import sends as sends_store
from engine.store import transfers as transfers_store
from engine.store.attempts import Claim, Slot
from engine.store.nodes import TakenOver
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
            stop_key=settings.require("secret_key"),
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
        self.contexts = SendContexts(settings, db)  # each send's call plan, made once per engine
        self._tasks: set[asyncio.Task[None]] = set()
        self._checked_at = float("-inf")
        self._completed_at = 0.0
        self._started_due_at = float("-inf")
        self._token_due: float | None = None
        self._reconciled_at = time.monotonic()
        # This engine as a node of the cluster: heartbeat, epoch (fencing), drain, takeovers (issue 19).
        self.membership = Membership(
            settings,
            db,
            node=self.node,
            app=ari.app,
            on_takeover=self._on_takeover,
            on_change=self.wake,
            on_fenced=self._drop_calls,
        )
        self.attempts.membership = self.membership
        self._results.holder = self.membership.holder  # a fenced node's late writes are refused
        self.claims = Claims(settings, db, node=self.node, app=ari.app, membership=self.membership)
        # No ARI request of a node fenced meanwhile (it learns so before it acts: Membership.confirm).
        ari.gate = self.membership.confirm
        if settings.cluster:
            # Its name and epoch in every INVITE: Kamailio checks them (issue 19, fencing at the edge).
            ari.originate_headers = self.membership.edge_headers
        # VOCALCAST_CLUSTER: the trunks' channels, pace and pauses taken from PostgreSQL's counters.
        self.shared = SharedLimits(db, self.node, self.pool) if settings.cluster else None
        self.attempts.shared = self.shared
        self._fosters: dict[str, asyncio.Task[None]] = {}  # app of a node taken over → its foster
        self.adoption = Adoption(settings, db, ari, calls, self, node=self.node, fostered=self._fosters.keys)
        # Each call's stage, kept where a restarted engine finds it (run by the engine: stages.run).
        self.stages = StageRecorder(db, ari)
        self.stages.holder = self.membership.holder
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
        for foster in list(self._fosters.values()):
            foster.cancel()
        await asyncio.gather(*self._fosters.values(), return_exceptions=True)
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
        if self.membership.epoch is None:
            await self.membership.ensure_joined()
        if self.membership.fenced:
            self.state.blocked_reason = "fenced: another node took this one over; restart the engine"
        elif self.membership.draining:
            self.state.blocked_reason = f"draining: claims nothing new, {self.active} call(s) to finish"
        elif not self.pool.trunks:
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
        if self.shared is not None:
            await self.shared.sync_if_due()
        await self._complete()
        if time.monotonic() - self._reconciled_at > RECONCILE_EVERY_S:
            self._reconciled_at = time.monotonic()
            await self.adoption.reconcile()

    async def _complete(self) -> None:
        now = time.monotonic()
        if now - self._completed_at < 1.0:
            return
        self._completed_at = now
        charged = await transfers_store.bill(self.db, unit=self.settings.transfer_minute_credits)
        if charged:
            log.info("transfers.billed", credits=charged)
        for send_id in await sends_store.complete_finished(self.db):
            self.contexts.forget(send_id)
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
        if not self.membership.may_call():
            return  # its lease expired (PostgreSQL slow or away): the next heartbeat renews it
        if self.pace is not None:
            self.pool.set_engine_rate(self.pace.current(now), now)
        free = self.pool.free_slots(now)
        if free <= 0:
            if self.active < self.settings.max_channels:
                self._note_token_wait(now)
            return
        sends = await sends_store.runnable_sends(self.db, now_dt, default_cap=self.settings.daily_spend_cap)
        if not sends:
            return
        classes = self.pool.plan(now)
        if not classes:
            self._note_token_wait(now)
            return
        # Each send in turn, least served first, gets its share of what is left: of the engine's free
        # slots and of every route class's slots (what one send's numbers cannot use, the next may). A
        # send presenting a number has the classes of the trunks accepting it (issue 18).
        claimed = False
        granted: dict[str, int] | None = None
        if self.shared is not None:
            # The cluster's counters: no more calls per trunk than every node together may place.
            granted = await self.shared.reserve(within([list(c.trunks) for c in classes], free))
            if not any(granted.values()):
                self._token_due = time.monotonic() + TICK_S
                return
        for index, send in enumerate(sends):
            if free <= 0:
                break
            # The pool counts each claim at once (TrunkPool.take): a new plan sees what is left.
            fresh = claimed or send.presented is not None
            mine = self.pool.plan(now, presented=send.presented) if fresh else classes
            rooms = [list(c.trunks) for c in mine]
            if granted is not None:
                rooms = keep(rooms, granted)
            if not any(rooms):
                continue
            share = -(-free // (len(sends) - index))  # ceil
            if send.commercial and not await self.contexts.preamble_ready(send.id):
                continue
            claims = await self.claims.take(
                send,
                classes=[(c.pattern, len(room)) for c, room in zip(mine, rooms, strict=True)],
                slots=[
                    Slot(t, i + 1, self.pool.trunks[t].trunk.demo)
                    for i, room in enumerate(rooms)
                    for t in room
                ],
                limit=share,
                now_dt=now_dt,
            )
            if not claims:
                continue
            context = await self.send_context(send.id)
            claimed = True
            for claim in claims:
                if granted is not None and granted.get(claim.trunk, 0) > 0:
                    granted[claim.trunk] -= 1
                if self.pool.take(claim.trunk, time.monotonic()):
                    self._spawn(self.attempts.run(claim, context), claim)
                else:  # a failover took its token while it was being claimed: it keeps the pace
                    self._spawn(self._run_when_paced(claim, context), claim)
            free -= len(claims)
            await attempts_store.touch_send(self.db, send.id, now_dt)
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
        return await self.contexts.get(send_id)

    # --- nodes taken over (engine.services.dialing.takeover) -------------------------------------------
    async def _on_takeover(self, taken: TakenOver) -> None:
        """A dead node's open attempts are ours now: those in our own application are reconciled by our
        adoption, the others by a foster serving their application."""
        self._reconciled_at = float("-inf")
        adopted = functools.partial(self._adopted, taken.node)
        fostered = [app for app in taken.apps if app != self.ari.app]
        if not fostered:
            await adopted()
        for app in fostered:
            if app in self._fosters:
                continue
            foster = Foster(
                self.settings,
                self.db,
                self,
                node=self.node,
                app=app,
                on_adopted=adopted,
                fenced_at=taken.at,
                holder=self.membership.holder,
            )
            task = asyncio.create_task(foster.run(), name=f"foster-{app}")
            self._fosters[app] = task
            task.add_done_callback(functools.partial(self._foster_done, app))
        self.wake()

    async def _drop_calls(self) -> None:
        """This node was fenced: its calls are another node's now. Forget them without touching Asterisk
        (its ARI client refuses every request from now on, its events websocket is closed) and record
        nothing for them: whoever took them over drives their channels and records their outcomes."""
        await self.ari.fence()
        dropped = self.calls.abandon_all()
        tasks = [*self._tasks, *self._fosters.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        log.error(
            "node.fenced_calls_dropped",
            node=self.node,
            calls=dropped,
            attempts=len(self._tasks),
            fostered=sorted(self._fosters),
        )
        self.wake()

    async def _adopted(self, node: str) -> None:
        """The dead node's calls still up are followed here: its trunk legs are ours to count now."""
        if self.shared is not None:
            await self.shared.adopted(node)

    def _foster_done(self, app: str, task: asyncio.Task[None]) -> None:
        self._fosters.pop(app, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("node.foster_failed", app=app, exc_info=task.exception())
            self._reconciled_at = float("-inf")

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

    def node_report(self) -> dict[str, object]:
        return {**self.membership.report(), "fostering": sorted(self._fosters)}

    async def endpoint_states(self) -> dict[str, str]:
        """Each PJSIP endpoint's state as Asterisk reports it (TelephonyUnavailable when it cannot)."""
        try:
            endpoints = await self.ari.endpoints("PJSIP")
        except AriError as exc:
            raise TelephonyUnavailable(f"ARI endpoints: {exc}") from exc
        return {str(e.get("resource")): str(e.get("state", "unknown")) for e in endpoints}
