"""Outbound calls over ARI: the service that places them (originate) and follows them to their end,
and the sweep that ends what events can no longer end (each call itself: engine/telephony/outbound.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import structlog

from engine.domain import callevents as ce
from engine.domain.callevents import CallResult
from engine.domain.callflow import CallFlow
from engine.domain.callstage import Stage, StageSnapshot
from engine.telephony.ari import AriClient, AriError, AriNotFound, AriUnavailable
from engine.telephony.beepears import BeepEars
from engine.telephony.callrequest import CallRequest, OriginateUncertain, OriginateWithheld
from engine.telephony.outbound import ChannelVanished, OutboundCall, Resumed, StageHook, TransferVanished
from engine.telephony.sipwatch import ATTEMPT_HEADER
from engine.telephony.stasis import StasisRouter

log = structlog.get_logger(__name__)


class CallService:
    """Places calls and follows them to the end; the dialer awaits their results."""

    def __init__(
        self,
        ari: AriClient,
        router: StasisRouter,
        on_result: Callable[[CallRequest, CallResult], None] | None = None,
        on_originate: Callable[[float, bool], None] | None = None,
        on_stage: StageHook | None = None,
    ) -> None:
        self.ari = ari
        self.router = router
        self._on_result = on_result
        # (seconds the originate request took, whether Asterisk refused it as overloaded): the dialer's pace
        self.on_originate = on_originate
        # Each StageChanged of each call (the stage to persist); awaited in the call's order when it
        # returns an awaitable. Its snapshot names the machine's playback: callids.playback_id gives
        # Asterisk's, and callids.transfer_leg_id / bridge_id the transfer's channel and bridge.
        self.on_stage = on_stage
        self.calls: dict[str, OutboundCall] = {}
        self._unknown_since: dict[str, float] = {}  # channel id -> monotonic time first seen unknown
        # The UDP socket that hears the callees in beep wait (open while one of them listens).
        self.ears = BeepEars()

    def close(self) -> None:
        """Close the beep wait's socket, should a call still hold it (the engine stops)."""
        self.ears.close()

    def abandon_all(self) -> int:
        """This node was fenced (issue 19): forget every call, touching nothing in Asterisk."""
        calls = list(self.calls.values())
        for call in calls:
            call.abandon()
        self.calls.clear()
        return len(calls)

    def on_finished(self, request: CallRequest, result: CallResult) -> None:
        self.calls.pop(request.attempt_id, None)
        if self._on_result is not None:
            self._on_result(request, result)

    async def start(self, request: CallRequest, *, gate: Callable[[], bool] | None = None) -> OutboundCall:
        """Register the call, then originate it. Raises OriginateUncertain when the request may have
        reached Asterisk without an answer (the attempt must then be reconciled, never resent), and
        OriginateWithheld when ``gate``, asked right before the request is sent, says no (nothing sent)."""
        call = OutboundCall(self, request)
        call.route = self.router.attach(request.attempt_id, call)  # before the POST: events may win
        self.calls[request.attempt_id] = call
        variables = {
            "VC_APP": self.ari.app,
            # Every leg of a trunk is counted in its group: the dialplan refuses an inbound call when the
            # trunk's channels are all taken (extensions.conf, [vocalcast-inbound-legs]).
            "GROUP(vc_trunk)": request.trunk,
            # The attempt id in our INVITE: what the trunk answered is tied to the call (sipwatch).
            f"PJSIP_HEADER(add,{ATTEMPT_HEADER})": request.attempt_id,
            **request.caller_id.variables(),
            **request.variables,
        }
        if gate is not None and not gate():
            self.calls.pop(request.attempt_id, None)
            call.route.close()
            raise OriginateWithheld(request.attempt_id)
        sent = time.monotonic()
        try:
            await self.ari.originate(
                endpoint=request.endpoint,
                channel_id=request.attempt_id,
                app_args="call",
                timeout_s=request.ring_timeout_s,
                caller_id=request.caller_id.ari_caller_id(),
                variables=variables,
                formats=request.codecs,
            )
        except AriError as exc:
            # An error reply: Asterisk refused it, nothing was dialled. Fed through the call's queue,
            # so it is ordered with any event that raced the reply.
            overloaded = _overloaded(exc)
            self._originated(sent, overloaded=overloaded)
            reason = f"{'overloaded' if overloaded else 'refused'}: {exc}"
            call.route.put(ce.OriginateFailed(reason))
            return call
        except AriUnavailable as exc:
            if _surely_unsent(exc):
                call.route.put(ce.OriginateFailed(str(exc)))
                return call
            self.calls.pop(request.attempt_id, None)
            call.route.close()
            raise OriginateUncertain(str(exc)) from exc
        self._originated(sent, overloaded=False)
        call.originated = True
        call.route.put(ce.Originated())
        return call

    def resume(self, request: CallRequest, snapshot: StageSnapshot) -> OutboundCall:
        """Follow a call placed by an earlier engine (or before a websocket gap) from its last stage
        snapshot: its channel, transfer leg and bridge get their events routed to it, and the resumed
        machine's first actions run in its queue (CallFlow.resume: timers for what is left of them, no
        playback started again). ValueError for a snapshot at `ended`, which has nothing to resume.
        The transfer leg of a resumed call is not counted in the trunk's slots (the caller's to do)."""
        plan = request.plan
        if plan.ring_timeout_s != request.ring_timeout_s:
            plan = dataclasses.replace(plan, ring_timeout_s=request.ring_timeout_s)
        flow, actions = CallFlow.resume(plan, snapshot, time.time())
        call = OutboundCall(self, request, flow)
        call.route = self.router.attach(request.attempt_id, call)
        self.calls[request.attempt_id] = call
        call.adopt_legs(transfer_leg=snapshot.transfer_leg, bridged=snapshot.stage is Stage.bridged)
        call.route.put(Resumed(tuple(actions)))
        return call

    def _originated(self, sent: float, *, overloaded: bool) -> None:
        if self.on_originate is not None:
            self.on_originate(time.monotonic() - sent, overloaded)

    async def place(self, request: CallRequest) -> CallResult:
        call = await self.start(request)
        return await call.done

    @property
    def active(self) -> int:
        return len(self.calls)

    # --- the sweep: what Asterisk has against what we follow ------------------------------------------

    async def sweep(self, *, confirm_s: float = 1.0, unknown_grace_s: float = 60.0) -> SweepReport:
        """Compare /channels with the calls in progress; end what events can no longer end.

        - A call whose channel is gone (missing from /channels, and still missing confirm_s later, so
          that a ChannelDestroyed already on its way wins) ends with Abort(channel_gone): its events
          were lost (a websocket gap, an Asterisk restart). Same for a transfer leg that vanished.
        - A channel of our Stasis app that no call follows is hung up once it has stayed unknown for
          unknown_grace_s across sweeps (time for the dialer to adopt the calls of a previous run).
        """
        present = await self._channel_ids()
        lost, lost_legs = self._missing(present)
        if (lost or lost_legs) and confirm_s > 0:
            await asyncio.sleep(confirm_s)
            present = await self._channel_ids()
            lost, lost_legs = self._missing(present)
        for call in lost:
            call.route_put(ChannelVanished())
        for call in lost_legs:
            call.route_put(TransferVanished())
        hung_up = await self._hang_up_unknown(unknown_grace_s)
        if lost or lost_legs or hung_up:
            log.warning(
                "calls.swept",
                vanished=[c.channel_id for c in lost],
                transfer_legs_vanished=[c.channel_id for c in lost_legs],
                unknown_hung_up=hung_up,
            )
        return SweepReport(
            vanished=[c.channel_id for c in lost],
            transfer_legs_vanished=[c.channel_id for c in lost_legs],
            hung_up=hung_up,
        )

    async def run_sweeps(self, interval_s: float = 30.0) -> None:
        """Sweep every interval_s while ARI is connected (a task of the engine; cancel to stop)."""
        while True:
            await asyncio.sleep(interval_s)
            if not self.ari.ready:
                continue  # after the reconnection, the dialer reconciles first; the next sweep follows
            try:
                await self.sweep()
            except (AriError, AriUnavailable) as exc:
                log.warning("calls.sweep_failed", error=str(exc))

    async def _channel_ids(self) -> set[str]:
        return {str(c.get("id")) for c in await self.ari.channels()}

    def _missing(self, present: set[str]) -> tuple[list[OutboundCall], list[OutboundCall]]:
        lost = [
            call
            for call in self.calls.values()
            if call.originated and not call.flow.finished and call.channel_id not in present
        ]
        legs = [
            call
            for call in self.calls.values()
            if call.transfer_leg_id is not None
            and not call.transfer_leg_gone
            and call.transfer_originated
            and call.transfer_leg_id not in present
            and call not in lost
        ]
        return lost, legs

    async def _hang_up_unknown(self, grace_s: float) -> list[str]:
        try:
            app = await self.ari.request("GET", f"/applications/{self.ari.app}")
        except AriNotFound:
            return []  # not registered right now: nothing is ours to judge
        ours = {str(cid) for cid in (app or {}).get("channel_ids", [])}
        unknown = {cid for cid in ours if not self.router.owns(cid)}
        now = time.monotonic()
        for cid in list(self._unknown_since):
            if cid not in unknown:
                del self._unknown_since[cid]
        hung_up = []
        for cid in sorted(unknown):
            since = self._unknown_since.setdefault(cid, now)
            if now - since >= grace_s:
                with contextlib.suppress(AriError):
                    await self.ari.hangup(cid)
                hung_up.append(cid)
                del self._unknown_since[cid]
        return hung_up


@dataclass(frozen=True)
class SweepReport:
    """What one sweep ended: calls whose channel vanished, transfer legs that vanished (by the callee's
    channel id), and unknown channels of our app it hung up."""

    vanished: list[str]
    transfer_legs_vanished: list[str]
    hung_up: list[str]


def _overloaded(exc: AriError) -> bool:
    """Asterisk (or what stands in front of its HTTP server) could not take the request now — not a
    refusal of this call: 502/503/504, or a 500 other than "Allocation failed" (the trunk's endpoint is
    unavailable, a trunk-side refusal)."""
    if exc.status in {502, 503, 504}:
        return True
    return exc.status == 500 and "Allocation failed" not in str(exc)


def _surely_unsent(exc: AriUnavailable) -> bool:
    """Connection refused: the request never left. A timeout or a reset may have reached Asterisk."""
    return isinstance(exc.__cause__, aiohttp.ClientConnectorError)
