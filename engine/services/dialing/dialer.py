"""The dialer: due work from PostgreSQL → calls through the call-flow adapter, as fast as the trunks
allow and never faster; retries, credits, failover, and reconciliation after crashes and gaps.

Never call anyone twice by mistake: an attempt row is committed before its originate request, and
an attempt whose originate may have been sent is only ever reconciled (channels, then CDRs).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import structlog

from engine.domain.callevents import CallResult
from engine.domain.callplan import CallPlan, DropMode
from engine.domain.numbers import format_for_trunk, mask_number
from engine.domain.retries import RetryPolicy
from engine.domain.trunks import Trunk, usable_trunks
from engine.errors import DatabaseUnavailable, TelephonyUnavailable
from engine.media.paths import prompt_uri, sound_uri
from engine.metrics import Metrics
from engine.services.dialing.adoption import Adoption
from engine.services.dialing.results import ResultWriter
from engine.services.dialing.trunkpool import TrunkPool
from engine.settings import Settings
from engine.store import Database
from engine.store import attempts as attempts_store
from engine.store import sends as sends_store
from engine.store.attempts import Claim
from engine.store.trunks import list_trunks
from engine.telephony.ari import AriClient, AriError
from engine.telephony.callrequest import CallerId, CallRequest, OriginateUncertain
from engine.telephony.calls import CallService

log = structlog.get_logger(__name__)

TICK_S = 0.1  # the loop wakes at least this often when there is work; sooner on wake()
IDLE_S = 0.25  # and this often when idle (deferred sends start within it)
TRUNK_REFRESH_S = 5.0
RECONCILE_EVERY_S = 15.0  # open attempts nobody follows (uncertain originates, results lost) are looked at


@dataclass(frozen=True)
class SendContext:
    """What every call of a send needs, read once per send."""

    send_id: UUID
    account_id: UUID
    plan: CallPlan
    sender_e164: str | None
    policy: RetryPolicy
    demo: bool


@dataclass
class DialerState:
    blocked_reason: str = ""


class Dialer:
    def __init__(
        self, settings: Settings, db: Database, ari: AriClient, calls: CallService, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.db = db
        self.ari = ari
        self.calls = calls
        self.metrics = metrics
        self.node = settings.node_name
        self.state = DialerState()
        self.pool = TrunkPool(
            max_channels=settings.max_channels, max_cps=settings.max_cps, now=time.monotonic()
        )
        self._wake = asyncio.Event()
        self._contexts: dict[UUID, SendContext] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._trunks_at = 0.0
        self._completed_at = 0.0
        self._started_due_at = float("-inf")
        self._token_due: float | None = None
        self._reconciled_at = time.monotonic()
        self._recording: set[UUID] = set()  # attempts whose result is being written
        self._results = ResultWriter(db)
        self.adoption = Adoption(settings, db, ari, calls.router, self, node=self.node)
        self.originates = 0
        self.on_originate: Callable[[Claim], None] | None = None  # tests and benches count originates

    # --- public --------------------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    @property
    def active(self) -> int:
        return self.pool.active

    def trunk_stats(self) -> dict[str, dict[str, object]]:
        return self.pool.stats(time.monotonic())

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
        await self._results.close()

    # --- one cycle -------------------------------------------------------------------------------------
    async def _cycle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self._wait_s())
        self._wake.clear()
        now_dt = datetime.now(UTC)
        if time.monotonic() - self._started_due_at >= IDLE_S:
            # Deferred sends: looked for every IDLE_S, not on every cycle of a busy dialer.
            self._started_due_at = time.monotonic()
            for send_id in await sends_store.start_due(self.db, now_dt):
                log.info("send.started", send_id=str(send_id))
        await self._refresh_trunks()
        if not self.ari.ready:
            self.state.blocked_reason = "asterisk unavailable"
            return
        if not self.adoption.done_after_connect.is_set():
            return
        if not self.pool.trunks:
            self.state.blocked_reason = (
                "no trunk: add one with `vocalcast trunk add`, or run in demo mode (VOCALCAST_DEMO=1)"
            )
            await self._complete()
            return
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

    async def _refresh_trunks(self) -> None:
        now = time.monotonic()
        if now - self._trunks_at < TRUNK_REFRESH_S and self.pool.trunks:
            return
        self._trunks_at = now
        self.pool.refresh(usable_trunks(await list_trunks(self.db), demo=self.settings.demo), now)

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

    async def _dispatch(self, now_dt: datetime) -> None:
        now = time.monotonic()
        free = self.pool.free_slots(now)
        if free <= 0:
            if self.active < self.settings.max_channels:
                self._note_token_wait(now)
            return
        sends = await sends_store.runnable_sends(self.db, now_dt)
        if not sends:
            return
        # Share the free slots between sends, one at a time, least served first, each slot on the
        # trunk pick_trunk chooses given what the previous slots took.
        trunks = self.pool.plan(free, now)
        if len(trunks) < free:
            self._note_token_wait(now)
        wanted: dict[UUID, list[str]] = {}
        for i, trunk in enumerate(trunks):
            wanted.setdefault(sends[i % len(sends)].id, []).append(trunk)
        for send_id, trunk_names in wanted.items():
            context = await self.send_context(send_id)
            claims = await attempts_store.claim(
                self.db, send_id, trunk_names, node=self.node, app=self.ari.app, demo=context.demo, now=now_dt
            )
            for claim in claims:
                self.pool.take(claim.trunk, now)
                self._spawn(self._attempt(claim, context), claim)

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
            # Ringing, the message twice (greeting repeats, replay after a failed transfer), a transfer.
            max_call_s=self.settings.ring_timeout_s
            + 4 * row.message_duration_s
            + 120
            + self.settings.transfer_max_s,
        )
        context = SendContext(send_id, row.account_id, plan, row.sender_e164, row.retry, row.demo)
        self._contexts[send_id] = context
        return context

    # --- one attempt -------------------------------------------------------------------------------------
    def _request(self, claim: Claim, context: SendContext, trunk: Trunk) -> CallRequest:
        def wire(e164: str) -> str:
            return format_for_trunk(e164, trunk.number_format)

        if context.sender_e164:
            caller = CallerId(wire(context.sender_e164), hidden=False)
        else:
            caller = CallerId(trunk.pai_number, hidden=True)
        # The call centre sees who is calling: the callee's number.
        transfer_caller = CallerId(wire(claim.e164), hidden=False)
        plan, number, variables = context.plan, wire(claim.e164), {}
        if plan.drop_mode is not DropMode.none and trunk.offers_deposit:
            # The operator's direct deposit: its mailbox platform answers, the phone does not ring.
            plan = dataclasses.replace(plan, drop_mode=DropMode.direct)
            number = (trunk.deposit_prefix or "") + number
            header = trunk.deposit_header_pair()
            if header is not None:
                variables[f"PJSIP_HEADER(add,{header[0]})"] = header[1]
        return CallRequest(
            attempt_id=str(claim.attempt_id),
            endpoint=trunk.dial_string(number),
            trunk=trunk.name,
            plan=plan,
            variables=variables,
            caller_id=caller,
            ring_timeout_s=self.settings.ring_timeout_s,
            callee_number=claim.e164,
            transfer_endpoint=lambda number: trunk.dial_string(wire(number)),
            transfer_caller_id=transfer_caller,
            codecs=trunk.codecs,
        )

    async def _attempt(self, claim: Claim, context: SendContext) -> None:
        tried: set[str] = set()
        current = claim
        slot: str | None = current.trunk  # the trunk whose channel slot this task holds
        try:
            while True:
                tried.add(current.trunk)
                result = await self._call(current, context)
                # The call is over: its channel is free for the next one before its result is written
                # (the recipient stays "calling" and the attempt open until then: crash-safe).
                self.release_slot(current.trunk)
                slot = None
                self.wake()
                if result is None:
                    return  # uncertain: reconciled later, never resent
                if result.may_fail_over:
                    self.pool.mark_failing(current.trunk, time.monotonic())
                    other = self.pool.failover_target(frozenset(tried), time.monotonic())
                    if other is not None:
                        self.pool.take_slot(other)
                        slot = other
                        await self.pool.wait_for_token(other)
                        await self.record(current, result, context.policy, failed_over=True)
                        current = await attempts_store.failover_attempt(
                            self.db, current, other, node=self.node, app=self.ari.app, demo=context.demo
                        )
                        log.info(
                            "call.failover",
                            attempt_id=str(current.attempt_id),
                            from_trunk=claim.trunk,
                            to_trunk=other,
                        )
                        continue
                await self.record(current, result, context.policy)
                return
        finally:
            if slot is not None:
                self.release_slot(slot)
                self.wake()

    def release_slot(self, trunk: str) -> None:
        self.pool.release_slot(trunk)

    async def _call(self, claim: Claim, context: SendContext) -> CallResult | None:
        trunk_state = self.pool.trunks.get(claim.trunk)
        if trunk_state is None:
            await attempts_store.requeue(self.db, claim)
            return None
        request = self._request(claim, context, trunk_state.trunk)
        self.originates += 1
        if self.on_originate is not None:
            self.on_originate(claim)
        log.debug(
            "call.originate",
            attempt_id=str(claim.attempt_id),
            trunk=claim.trunk,
            number=mask_number(claim.e164),
            attempt_no=claim.attempt_no,
        )
        try:
            call = await self.calls.start(request)
        except OriginateUncertain as exc:
            self.metrics.originates.labels(claim.trunk, "uncertain").inc()
            log.warning("call.originate_uncertain", attempt_id=str(claim.attempt_id), error=str(exc))
            return None
        self.metrics.originates.labels(claim.trunk, "sent").inc()
        self.metrics.calls_in_progress.labels(claim.trunk).inc()
        try:
            result = await call.done
        finally:
            self.metrics.calls_in_progress.labels(claim.trunk).dec()
        self._observe(claim.trunk, result)
        return result

    def _observe(self, trunk: str, result: CallResult) -> None:
        self.metrics.outcomes.labels(trunk, result.outcome.value).inc()
        if result.sip_code:
            self.metrics.sip_codes.labels(trunk, str(result.sip_code)).inc()
        state = self.pool.trunks.get(trunk)
        if state is not None:
            state.ended += 1
            if result.answered_at is not None:
                state.answered += 1
                self.metrics.answered.labels(trunk).inc()

    async def record(
        self,
        claim: Claim,
        result: CallResult,
        policy: RetryPolicy,
        *,
        failed_over: bool = False,
        reconciled: str | None = None,
    ) -> None:
        """Write the result; while PostgreSQL is away, keep it and retry (nothing is lost)."""
        self._recording.add(claim.attempt_id)
        try:
            await self._write(claim, result, policy, failed_over=failed_over, reconciled=reconciled)
        finally:
            self._recording.discard(claim.attempt_id)

    async def _write(
        self,
        claim: Claim,
        result: CallResult,
        policy: RetryPolicy,
        *,
        failed_over: bool,
        reconciled: str | None,
    ) -> None:
        delay = 0.2
        while True:
            try:
                recorded = await self._results.record(
                    attempts_store.Result(
                        claim, result, policy, failed_over=failed_over, reconciled=reconciled
                    )
                )
                log.info(
                    "attempt.recorded",
                    attempt_id=str(claim.attempt_id),
                    send_id=str(claim.send_id),
                    outcome=result.outcome.value,
                    final=recorded.final,
                    reconciled=reconciled,
                )
                return
            except DatabaseUnavailable:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # --- adoption (engine.services.dialing.adoption) ------------------------------------------------------
    async def reconcile(self) -> None:
        """After a (re)connection: follow this node's open attempts to an outcome (see Adoption)."""
        await self.adoption.after_connect()

    def connection_lost(self) -> None:
        self.adoption.connection_lost()

    def follows(self, attempt_id: UUID) -> bool:
        return str(attempt_id) in self.calls.calls or attempt_id in self._recording

    async def message_uri(self, send_id: UUID) -> str:
        return (await self.send_context(send_id)).plan.message

    def take_slot(self, trunk: str) -> None:
        self.pool.take_slot(trunk)

    # --- what monitoring reads (engine.services.health.Telephony) -------------------------------------------
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
