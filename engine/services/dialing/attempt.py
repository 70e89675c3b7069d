"""One attempt: the call a claim asks for, through its trunk, to its end — and what the trunk's behaviour
means for it.

A trunk-side failure (a 5xx, a 408 or 429 before any ringing, a refused originate, an INVITE nobody
answered) never uses the recipient's attempt: the call moves at once to another healthy trunk that may
carry the number, or the recipient goes back to the queue until one can (VOCALCAST_TRUNK_RETRY_S later;
after VOCALCAST_TRUNK_WAIT_MAX_S of waiting in all, it ends as congestion). The trunk's breaker hears of
every result; the customer's retries are for the callee's behaviour only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

import asyncpg
import structlog

from engine.domain.callevents import CallResult, EndReason
from engine.domain.callplan import CallPlan, DropMode
from engine.domain.numbers import format_for_trunk, mask_number
from engine.domain.outcomes import trunk_failure_reason
from engine.domain.retries import RetryPolicy
from engine.domain.trunks import Trunk
from engine.errors import DatabaseUnavailable
from engine.metrics import Metrics
from engine.services.dialing.identity import caller_ids
from engine.services.dialing.membership import Membership, Verdict
from engine.services.dialing.results import ResultWriter
from engine.services.dialing.trunkpool import TrunkPool
from engine.services.dialing.trunkshare import SharedLimits
from engine.settings import Settings
from engine.store import attempts as attempts_store
from engine.store import transfers as transfers_store
from engine.store.attempts import Claim
from engine.store.db import Database
from engine.telephony.callrequest import CallRequest, OriginateUncertain, OriginateWithheld
from engine.telephony.calls import CallService
from engine.telephony.sipwatch import SipWatch

log = structlog.get_logger(__name__)

# A 503 or 429 reaches us by ARI and by HEP at about the same time; its Retry-After (HEP) may come a
# moment after the call's end (ARI): wait this long for it at most.
RETRY_AFTER_WAIT_S = 0.2


@dataclass(frozen=True)
class SendContext:
    """What every call of a send needs, read once per send."""

    send_id: UUID
    account_id: UUID
    plan: CallPlan
    sender_e164: str | None
    policy: RetryPolicy
    demo: bool
    transfer_cap: int | None = None  # the account's simultaneous transfers at most (None: no cap)


class Attempts:
    """Runs attempts; owned by the dialer, which it tells when a channel is free (``wake``)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        calls: CallService,
        *,
        pool: TrunkPool,
        results: ResultWriter,
        metrics: Metrics,
        node: str,
        app: str,
        wake: Callable[[], None],
        sipwatch: SipWatch | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.calls = calls
        self.pool = pool
        self.results = results
        self.account_transfers: TransferPlaces = AccountTransfers(db)
        self.metrics = metrics
        self.node = node
        self.app = app
        self.wake = wake
        self.sipwatch = sipwatch
        self.recording: set[UUID] = set()  # attempts whose result is being written
        self.originates = 0
        self.on_originate: Callable[[Claim], None] | None = None  # tests and benches count originates
        self.membership: Membership | None = None  # the node's fencing (set by the dialer)
        self.shared: SharedLimits | None = None  # the cluster's trunk counters (VOCALCAST_CLUSTER)
        # Told once an attempt's result is written (the stage kept in Asterisk may then go).
        self.on_recorded: Callable[[str], Awaitable[None]] | None = None

    async def run(self, claim: Claim, context: SendContext) -> None:
        """The attempt of ``claim`` (its trunk's channel and token already taken) to its recorded end."""
        tried: set[str] = set()
        current = claim
        slot: str | None = current.trunk  # the trunk whose channel slot this task holds
        try:
            while True:
                tried.add(current.trunk)
                result = await self._call(current, context)
                # The call is over: its channel is free for the next one before its result is written
                # (the recipient stays "calling" and the attempt open until then: crash-safe).
                self.pool.release_slot(current.trunk)
                slot = None
                self.wake()
                if result is None:
                    return  # uncertain: reconciled later, never resent
                now = time.monotonic()
                if result.cut == "ours":
                    # Asterisk restarted under the call (adoption said so): neither the trunk's fault nor
                    # the callee's; the retry table gives the recipient its attempt back.
                    await self.record(current, result, context.policy)
                    return
                if _overloaded(result):
                    # Asterisk could not take the call now: neither the trunk's fault nor the callee's.
                    await self.record(current, result, context.policy, trunk_failure=True)
                    return
                reason, retry_after_s = await self._trunk_failure(current, result)
                if reason is None:
                    self.pool.callee_reached(
                        current.trunk, now, answered=result.answered_at is not None, talk_s=result.talk_s or 0
                    )
                    await self.record(current, result, context.policy)
                    return
                self.pool.trunk_failed(current.trunk, now, reason, retry_after_s=retry_after_s)
                self._share_pause(current.trunk, now, reason)
                self.metrics.trunk_failures.labels(current.trunk).inc()
                log.warning(
                    "call.trunk_failure",
                    attempt_id=str(current.attempt_id),
                    trunk=current.trunk,
                    reason=reason,
                    retry_after_s=retry_after_s,
                )
                other = self.pool.pick(
                    current.e164, time.monotonic(), exclude=frozenset(tried), presented=context.sender_e164
                )
                if other is not None and self.shared is not None:
                    granted = await self.shared.reserve({other: 1})
                    other = other if granted.get(other) else None
                if other is None:
                    # No other trunk may take it now: back to the queue, its attempt given back.
                    await self.record(current, result, context.policy, trunk_failure=True)
                    return
                self.pool.take_slot(other)
                slot = other
                await self.pool.wait_for_token(other)
                await self.record(current, result, context.policy, failed_over=True, trunk_failure=True)
                current = await attempts_store.failover_attempt(
                    self.db,
                    current,
                    other,
                    node=self.node,
                    app=self.app,
                    demo=self.pool.trunks[other].trunk.demo,
                )
                log.info(
                    "call.failover",
                    attempt_id=str(current.attempt_id),
                    from_trunk=claim.trunk,
                    to_trunk=other,
                )
        finally:
            if slot is not None:
                self.pool.release_slot(slot)
                self.wake()

    async def _trunk_failure(self, claim: Claim, result: CallResult) -> tuple[str | None, float | None]:
        """(why the trunk failed this call, the pause its carrier asked for), or (None, None)."""
        observation = self.sipwatch.observation(str(claim.attempt_id)) if self.sipwatch else None
        final_seen = observation is not None and observation.final_code is not None
        refused = result.sip_code in {429, 503, 500} and not final_seen
        unanswered = observation is not None and bool(observation.invites) and not observation.answered_at_all
        if self.sipwatch is not None and (refused or unanswered):
            # The HEP copy of a response may trail the ARI event that ended the call: wait for it once.
            await asyncio.sleep(RETRY_AFTER_WAIT_S)
            observation = self.sipwatch.observation(str(claim.attempt_id))
        reason = trunk_failure_reason(
            may_fail_over=result.may_fail_over,
            answered=result.answered_at is not None,
            rang=result.ringing_at is not None,
            sip_code=result.sip_code,
            cause=result.cause,
            trunk_answered_at_all=observation.answered_at_all
            if observation and observation.invites
            else None,
        )
        if self.sipwatch is not None:
            self.sipwatch.forget(str(claim.attempt_id))
        if reason is None:
            return None, None
        return reason, observation.retry_after_s if observation else None

    async def _call(self, claim: Claim, context: SendContext) -> CallResult | None:
        trunk_state = self.pool.trunks.get(claim.trunk)
        if trunk_state is None:
            await attempts_store.requeue(self.db, claim)
            return None
        request = self.request(claim, context, trunk_state.trunk)
        try:
            if self.membership is None:
                self._originating(claim)
                call = await self.calls.start(request)
            else:
                # The node's epoch and lease, checked in the transaction the request is sent in.
                async with self.membership.originating(claim.attempt_id) as verdict:
                    if verdict is Verdict.requeue:
                        log.warning("call.not_placed_lease_expired", attempt_id=str(claim.attempt_id))
                        await attempts_store.requeue(self.db, claim)
                        return None
                    if verdict is Verdict.drop:
                        log.warning("call.not_placed_fenced", attempt_id=str(claim.attempt_id))
                        return None  # not ours any more: whoever holds it now reconciles it
                    self._originating(claim)
                    try:
                        # The lease once more, right before the request is written: a node frozen since
                        # the verdict (SIGSTOP, a long pause) may have been taken over meanwhile.
                        call = await self.calls.start(request, gate=self.membership.may_call)
                    except OriginateWithheld:
                        log.warning("call.not_placed_lease_lost", attempt_id=str(claim.attempt_id))
                        return None  # whoever holds the attempt now reconciles it
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
        self.metrics.outcomes.labels(claim.trunk, result.outcome.value).inc()
        if result.sip_code:
            self.metrics.sip_codes.labels(claim.trunk, str(result.sip_code)).inc()
        if result.answered_at is not None:
            self.metrics.answered.labels(claim.trunk).inc()
        return result

    def _share_pause(self, trunk: str, now: float, reason: str) -> None:
        """An open breaker (a Retry-After included) pauses the trunk for every node of the cluster."""
        state = self.pool.trunks.get(trunk)
        if self.shared is None or state is None or state.breaker.allows(now):
            return
        self.shared.note_pause(trunk, state.breaker.open_for_s(now), reason)

    def _originating(self, claim: Claim) -> None:
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

    def request(self, claim: Claim, context: SendContext, trunk: Trunk) -> CallRequest:
        def wire(e164: str) -> str:
            return format_for_trunk(e164, trunk.number_format)

        caller, transfer_caller = caller_ids(trunk, context.sender_e164, claim.e164)
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
            transfer_slots=self._transfer_leg(claim, context, trunk),
        )

    def _transfer_leg(
        self, claim: Claim, context: SendContext, trunk: Trunk
    ) -> TransferLeg | AccountTransferLeg:
        leg = TransferLeg(self.pool, trunk.name, self.wake)
        if context.transfer_cap is None:
            return leg
        return AccountTransferLeg(
            leg, self.account_transfers, claim.attempt_id, context.account_id, context.transfer_cap
        )

    # --- results -------------------------------------------------------------------------------------------
    async def record(
        self,
        claim: Claim,
        result: CallResult,
        policy: RetryPolicy,
        *,
        failed_over: bool = False,
        reconciled: str | None = None,
        trunk_failure: bool = False,
    ) -> None:
        """Write the result; while PostgreSQL is away, keep it and retry (nothing is lost)."""
        if self.membership is not None and not await self.membership.holds():
            # Not this node's attempt any more (its lease ran out: it beat first, and learnt it was fenced):
            # the node that took it over records its outcome.
            log.warning("attempt.not_recorded_fenced", attempt_id=str(claim.attempt_id))
            return
        item = attempts_store.Result(
            claim,
            result,
            policy,
            failed_over=failed_over,
            reconciled=reconciled,
            trunk_failure=trunk_failure,
            retry_at=time.time() + self.settings.trunk_retry_s if trunk_failure else None,
            wait_max_s=self.settings.trunk_wait_max_s,
        )
        self.recording.add(claim.attempt_id)
        delay = 0.2
        try:
            while True:
                try:
                    recorded = await self.results.record(item)
                except DatabaseUnavailable:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                if self.on_recorded is not None:
                    await self.on_recorded(str(claim.attempt_id))
                log.info(
                    "attempt.recorded",
                    attempt_id=str(claim.attempt_id),
                    send_id=str(claim.send_id),
                    outcome=result.outcome.value,
                    final=recorded.final,
                    reconciled=reconciled,
                    trunk_failure=trunk_failure,
                )
                return
        finally:
            self.recording.discard(claim.attempt_id)


@dataclass
class TransferLeg:
    """A transfer leg's channel and token, taken from its trunk (engine.telephony.callrequest.LegSlots)."""

    pool: TrunkPool
    trunk: str
    wake: Callable[[], None]

    async def acquire(self) -> bool:
        return self.pool.take_leg(self.trunk, time.monotonic())

    def release(self) -> None:
        self.pool.release_slot(self.trunk)
        self.wake()


class TransferPlaces(Protocol):
    """The places of each account's simultaneous transfers."""

    async def take(self, attempt_id: UUID, account_id: UUID, cap: int) -> bool:
        """A place for the attempt's transfer leg among the account's ``cap``; False when all are taken."""
        ...

    def give_back(self, attempt_id: UUID) -> None:
        """The attempt's transfer leg is gone."""
        ...


class AccountTransfers:
    """Transfers in progress per account, counted in PostgreSQL for the whole cluster (issue 17: one credit
    must not buy a call centre line for many callees at once, whichever engines place the calls).

    Taking a place waits for PostgreSQL; PostgreSQL away, no place is given (the callee hears the
    apology). Giving it back runs in the background; if that fails, the place frees when the attempt
    ends (an ended attempt holds none)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._giving_back: dict[UUID, asyncio.Task[None]] = {}

    async def take(self, attempt_id: UUID, account_id: UUID, cap: int) -> bool:
        if cap <= 0:
            return False
        previous = self._giving_back.get(attempt_id)
        if previous is not None:  # the same callee pressed 9 again: its last leg's place is freed first
            await asyncio.wait({previous})
        try:
            return await transfers_store.hold(self._db, attempt_id, account_id, cap)
        except (DatabaseUnavailable, asyncpg.PostgresError) as exc:
            log.warning("call.transfer_place_unknown", attempt_id=str(attempt_id), error=str(exc))
            return False

    def give_back(self, attempt_id: UUID) -> None:
        task = asyncio.create_task(self._give_back(attempt_id), name=f"transfer-place-{attempt_id}")
        self._giving_back[attempt_id] = task
        task.add_done_callback(lambda done: self._forget(attempt_id, done))

    def _forget(self, attempt_id: UUID, task: asyncio.Task[None]) -> None:
        if self._giving_back.get(attempt_id) is task:
            del self._giving_back[attempt_id]

    async def _give_back(self, attempt_id: UUID) -> None:
        try:
            await transfers_store.release(self._db, attempt_id)
        except (DatabaseUnavailable, asyncpg.PostgresError) as exc:
            log.warning("call.transfer_place_kept_until_the_end", attempt_id=str(attempt_id), error=str(exc))


@dataclass
class AccountTransferLeg:
    """The trunk's transfer leg, within the account's cap on simultaneous transfers: beyond it, the leg is
    refused as when the trunk is full (the callee hears the apology and the message again)."""

    leg: TransferLeg
    places: TransferPlaces
    attempt_id: UUID
    account_id: UUID
    cap: int

    async def acquire(self) -> bool:
        if not await self.places.take(self.attempt_id, self.account_id, self.cap):
            log.warning("call.transfer_refused_account_cap", account_id=str(self.account_id), cap=self.cap)
            return False
        if await self.leg.acquire():
            return True
        self.places.give_back(self.attempt_id)
        return False

    def release(self) -> None:
        self.leg.release()
        self.places.give_back(self.attempt_id)


def _overloaded(result: CallResult) -> bool:
    return result.end_reason is EndReason.originate_failed and (result.abort_reason or "").startswith(
        "overloaded"
    )
