"""Outbound calls over ARI: each ARI event of a call becomes a call-flow event; each action the
call flow returns becomes an ARI request. No decision is made here (see engine/domain/callflow.py).

One handler per call, fed in order by the Stasis router (the callee's channel, its transfer leg
and its bridge share one queue); timers are events on that same queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog

from engine.domain import callflow as cf
from engine.domain.callflow import CallFlow, CallPlan, CallResult
from engine.logs import mask_number
from engine.telephony.ari import AriClient, AriError, AriNotFound, AriUnavailable, AriUnprocessable, Event
from engine.telephony.stasis import Route, StasisRouter

log = structlog.get_logger(__name__)

AMD_CONTEXT = "vocalcast-amd"
# Talk detection for the beep wait: the silence (ms) that ends "talking", and the energy threshold.
# The greeting and its beep are "talking"; the silence after the beep is the machine recording.
TALK_DETECT = "900,256"
# How long a finished call's route stays open for its last events (ChannelDestroyed of both legs).
LINGER_S = 10.0


class OriginateUncertain(AriUnavailable):
    """The originate request may or may not have reached Asterisk: reconcile, never resend."""


@dataclass(frozen=True)
class CallerId:
    """What the INVITE presents. Hidden: presentation prohibited (Privacy: id), with the identity
    the trunk operator vouches for in P-Asserted-Identity."""

    number: str | None
    hidden: bool

    def ari_caller_id(self) -> str | None:
        return f'"" <{self.number}>' if self.number else None

    def variables(self) -> dict[str, str]:
        return {"CALLERID(pres)": "prohib" if self.hidden else "allowed_passed_screen"}


@dataclass(frozen=True)
class CallRequest:
    attempt_id: str  # a UUID: becomes the channel id (ids that prefix each other collide)
    endpoint: str  # PJSIP/<number as the trunk wants it>@<trunk>
    trunk: str
    plan: CallPlan
    caller_id: CallerId
    ring_timeout_s: float
    callee_number: str = ""  # E.164, for logs (masked) and the transfer leg's caller ID
    # Endpoint and caller ID of the transfer leg, from the transfer number.
    transfer_endpoint: Callable[[str], str] | None = None
    transfer_caller_id: CallerId | None = None
    variables: dict[str, str] = field(default_factory=dict)


class _Timer:
    def __init__(self, route: Route, name: str, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self.handle = loop.call_later(seconds, route.put, {"type": "_TimerFired", "name": name})


class OutboundCall:
    """The CallHandler of one attempt."""

    def __init__(self, service: CallService, request: CallRequest) -> None:
        self.service = service
        self.ari = service.ari
        self.request = request
        self.channel_id = request.attempt_id
        self.flow = CallFlow(request.plan, time.time())
        self.done: asyncio.Future[CallResult] = asyncio.get_running_loop().create_future()
        self.route: Route | None = None
        self._timers: dict[str, _Timer] = {}
        self._playbacks: dict[str, str] = {}  # ARI playback id -> machine playback id
        self._machine_playbacks: dict[str, str] = {}  # machine id -> ARI id
        self._dialstatus: str | None = None
        self._transfer_id: str | None = None
        self._transfer_dialstatus: str | None = None
        self._bridge_id: str | None = None
        self._callee_gone = False
        self._transfer_gone = True
        self._beep_detection = False
        self._log = log.bind(
            attempt_id=self.channel_id, trunk=request.trunk, number=mask_number(request.callee_number)
        )

    # --- events in -------------------------------------------------------------------------------
    async def on_event(self, event: Event) -> None:
        kind = event.get("type")
        if kind == "_TimerFired":
            name = str(event["name"])
            if self._timers.pop(name, None) is not None:
                await self._feed(cf.TimerFired(name))
            return
        if kind == "_Linger":
            self._close()
            return
        if kind == "_Originated":
            await self._feed(cf.Originated())
            return
        if kind == "_OriginateError":
            await self._feed(cf.OriginateFailed(str(event.get("reason", ""))))
            self._callee_gone = True  # no channel was created
            self._maybe_close()
            return
        channel = event.get("channel") or {}
        cid = channel.get("id")
        is_transfer = self._transfer_id is not None and (
            cid == self._transfer_id or (event.get("peer") or {}).get("id") == self._transfer_id
        )
        if is_transfer:
            await self._on_transfer_event(kind, event)
        else:
            await self._on_callee_event(kind, event)
        self._maybe_close()

    async def _on_callee_event(self, kind: Any, event: Event) -> None:
        channel = event.get("channel") or {}
        if kind == "Dial" and (event.get("peer") or {}).get("id") == self.channel_id:
            status = str(event.get("dialstatus") or "")
            if status:
                self._dialstatus = status
            if status == "RINGING":
                await self._feed(cf.Ringing())
            elif status == "PROGRESS":
                await self._feed(cf.Progress())
        elif kind == "ChannelStateChange" and channel.get("state") == "Ringing":
            await self._feed(cf.Ringing())
        elif kind == "StasisStart":
            args = [str(a) for a in event.get("args") or []]
            if args and args[0] == "amd":
                status = args[1] if len(args) > 1 else "NOTSURE"
                await self._feed(cf.AmdResult(status, args[2] if len(args) > 2 else None))
            else:
                await self._feed(cf.Answered())
        elif kind == "ChannelDtmfReceived":
            await self._feed(cf.Dtmf(str(event.get("digit", ""))))
        elif kind in {"PlaybackStarted", "PlaybackFinished"}:
            playback = event.get("playback") or {}
            machine_id = self._playbacks.get(str(playback.get("id")))
            if machine_id is None:
                return
            if kind == "PlaybackStarted":
                await self._feed(cf.PlaybackStarted(machine_id))
            else:
                await self._feed(cf.PlaybackFinished(machine_id, completed=playback.get("state") == "done"))
        elif kind == "ChannelTalkingFinished" and self._beep_detection:
            # The greeting (and its beep) ended and silence followed: the machine is recording.
            await self._feed(cf.BeepDetected())
        elif kind == "ChannelHangupRequest":
            await self._feed(cf.HangupRequested(_int(event.get("cause")), _sip_code(event)))
        elif kind == "ChannelDestroyed":
            self._callee_gone = True
            await self._feed(cf.Hangup(_int(event.get("cause")), _sip_code(event), self._dialstatus))

    async def _on_transfer_event(self, kind: Any, event: Event) -> None:
        if kind == "Dial":
            status = str(event.get("dialstatus") or "")
            if status:
                self._transfer_dialstatus = status
        elif kind == "StasisStart":
            await self._feed(cf.TransferAnswered())
        elif kind == "ChannelDestroyed":
            self._transfer_gone = True
            await self._feed(
                cf.TransferEnded(_int(event.get("cause")), _sip_code(event), self._transfer_dialstatus)
            )

    async def on_failure(self, exc: Exception) -> None:
        self._log.error("call.adapter_failed", error=f"{exc.__class__.__name__}: {exc}")
        await self._feed(cf.Abort(f"adapter error: {exc.__class__.__name__}"))
        with contextlib.suppress(AriError, AriUnavailable):
            await self.ari.hangup(self.channel_id)

    # --- the machine ------------------------------------------------------------------------------
    async def _feed(self, event: cf.Event) -> None:
        actions = self.flow.handle(event, time.time())
        for action in actions:
            await self._execute(action)

    async def _execute(self, action: cf.Action) -> None:
        try:
            await self._run(action)
        except (AriNotFound, AriUnprocessable):
            # The channel (or playback) just went away: its hang-up events follow.
            self._log.debug("call.action_on_gone_channel", action=type(action).__name__)
        except (AriError, AriUnavailable) as exc:
            self._log.warning("call.action_failed", action=type(action).__name__, error=str(exc))
            if not self.flow.finished:
                await self._feed(cf.Abort(f"{type(action).__name__} failed: {exc}"))
                with contextlib.suppress(AriError, AriUnavailable):
                    await self.ari.hangup(self.channel_id)

    async def _run(self, action: cf.Action) -> None:
        match action:
            case cf.Play(playback_id=machine_id, media=media):
                ari_id = str(uuid.uuid4())
                self._playbacks[ari_id] = machine_id
                self._machine_playbacks[machine_id] = ari_id
                await self.ari.play(self.channel_id, ari_id, media)
            case cf.StopPlayback(playback_id=stopped):
                playing = self._machine_playbacks.get(stopped)
                if playing is not None:
                    await self.ari.stop_playback(playing)
            case cf.StartTimer(name=name, seconds=seconds):
                self._timers[name] = _Timer(self._route(), name, seconds)
            case cf.CancelTimer(name=name):
                timer = self._timers.pop(name, None)
                if timer is not None:
                    timer.handle.cancel()
            case cf.RunAmd():
                await self.ari.request(
                    "POST",
                    f"/channels/{self.channel_id}/continue",
                    params={"context": AMD_CONTEXT, "extension": "s", "priority": 1},
                )
            case cf.StartBeepDetection():
                self._beep_detection = True
                await self.ari.set_variable(self.channel_id, "TALK_DETECT(set)", TALK_DETECT)
            case cf.StopBeepDetection():
                self._beep_detection = False
                await self.ari.set_variable(self.channel_id, "TALK_DETECT(remove)", "")
            case cf.OriginateTransfer(number=number, timeout_s=timeout_s):
                await self._originate_transfer(number, timeout_s)
            case cf.BridgeWithTransfer():
                if self._transfer_id is None:
                    raise RuntimeError("BridgeWithTransfer without a transfer leg")
                self._bridge_id = str(uuid.uuid4())
                self.service.router.alias(self._route(), "bridge:" + self._bridge_id)
                await self.ari.create_bridge(self._bridge_id, "mixing")
                await self.ari.add_to_bridge(self._bridge_id, [self.channel_id, self._transfer_id])
            case cf.HangupTransfer():
                if self._transfer_id is not None:
                    await self.ari.hangup(self._transfer_id)
            case cf.DestroyBridge():
                if self._bridge_id is not None:
                    await self.ari.destroy_bridge(self._bridge_id)
            case cf.HangupCallee():
                await self.ari.hangup(self.channel_id)
            case cf.Finished(result=result):
                self._finish(result)

    async def _originate_transfer(self, number: str, timeout_s: float) -> None:
        request = self.request
        if request.transfer_endpoint is None:
            await self._feed(cf.TransferEnded())
            return
        self._transfer_id = str(uuid.uuid4())
        self._transfer_gone = False
        self.service.router.alias(self._route(), self._transfer_id)
        caller = request.transfer_caller_id or CallerId(None, hidden=True)
        try:
            await self.ari.originate(
                endpoint=request.transfer_endpoint(number),
                channel_id=self._transfer_id,
                app_args="transfer",
                timeout_s=timeout_s,
                caller_id=caller.ari_caller_id(),
                variables=caller.variables(),
                originator=self.channel_id,
            )
        except (AriError, AriUnavailable) as exc:
            self._log.warning("call.transfer_originate_failed", error=str(exc))
            self._transfer_gone = True
            await self._feed(cf.TransferEnded())

    def _finish(self, result: CallResult) -> None:
        for timer in self._timers.values():
            timer.handle.cancel()
        self._timers.clear()
        if not self.done.done():
            self.done.set_result(result)
        self.service.on_finished(self.request, result)
        self._log.info(
            "call.finished",
            outcome=result.outcome.value,
            cause=result.cause,
            sip_code=result.sip_code,
            end_reason=result.end_reason.value,
        )
        # Stay subscribed a little for the last ChannelDestroyed events, then let go.
        if self.route is not None:
            asyncio.get_running_loop().call_later(LINGER_S, self.route.put, {"type": "_Linger"})

    def _route(self) -> Route:
        if self.route is None:
            raise RuntimeError("call used before it was registered with the router")
        return self.route

    def _maybe_close(self) -> None:
        if self.flow.finished and self._callee_gone and self._transfer_gone:
            self._close()

    def _close(self) -> None:
        if self.route is not None:
            self.route.close()


class CallService:
    """Places calls and follows them to the end; the dialer awaits their results."""

    def __init__(
        self,
        ari: AriClient,
        router: StasisRouter,
        on_result: Callable[[CallRequest, CallResult], None] | None = None,
    ) -> None:
        self.ari = ari
        self.router = router
        self._on_result = on_result
        self.calls: dict[str, OutboundCall] = {}

    def on_finished(self, request: CallRequest, result: CallResult) -> None:
        self.calls.pop(request.attempt_id, None)
        if self._on_result is not None:
            self._on_result(request, result)

    async def start(self, request: CallRequest) -> OutboundCall:
        """Register the call, then originate it. Raises OriginateUncertain when the request may have
        reached Asterisk without an answer (the attempt must then be reconciled, never resent)."""
        call = OutboundCall(self, request)
        call.route = self.router.attach(request.attempt_id, call)  # before the POST: events may win
        self.calls[request.attempt_id] = call
        variables = {"VC_APP": self.ari.app, **request.caller_id.variables(), **request.variables}
        try:
            await self.ari.originate(
                endpoint=request.endpoint,
                channel_id=request.attempt_id,
                app_args="call",
                timeout_s=request.ring_timeout_s,
                caller_id=request.caller_id.ari_caller_id(),
                variables=variables,
            )
        except AriError as exc:
            # An error reply: Asterisk refused it, nothing was dialled. Fed through the call's queue,
            # so it is ordered with any event that raced the reply.
            call.route.put({"type": "_OriginateError", "reason": str(exc)})
            return call
        except AriUnavailable as exc:
            if _surely_unsent(exc):
                call.route.put({"type": "_OriginateError", "reason": str(exc)})
                return call
            self.calls.pop(request.attempt_id, None)
            call.route.close()
            raise OriginateUncertain(str(exc)) from exc
        call.route.put({"type": "_Originated"})
        return call

    async def place(self, request: CallRequest) -> CallResult:
        call = await self.start(request)
        return await call.done

    @property
    def active(self) -> int:
        return len(self.calls)


def _surely_unsent(exc: AriUnavailable) -> bool:
    """Connection refused: the request never left. A timeout or a reset may have reached Asterisk."""
    return isinstance(exc.__cause__, aiohttp.ClientConnectorError)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _sip_code(event: Event) -> int | None:
    """ARI's tech_cause (Asterisk 22) carries the SIP response code of the hang-up, when known."""
    code = _int(event.get("tech_cause"))
    return code if code and code >= 100 else None
