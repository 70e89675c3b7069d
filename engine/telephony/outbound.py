"""One outbound call over ARI: each ARI event of the call becomes a call-flow event; each action the
call flow returns becomes an ARI request. No decision is made here (see engine/domain/callflow.py).

One handler per call, fed in order by the Stasis router (the callee's channel, its transfer leg
and its bridge share one queue); timers are events on that same queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from engine.domain import callevents as ce
from engine.domain.callevents import CallResult, StageChanged
from engine.domain.callflow import CallFlow
from engine.domain.numbers import mask_number
from engine.telephony import callids
from engine.telephony.ari import AriClient, AriError, AriNotFound, AriUnavailable, AriUnprocessable, Event
from engine.telephony.beepears import BeepEar, BeepEars
from engine.telephony.callrequest import CallerId, CallRequest
from engine.telephony.stasis import Queued, Route, Signal, StasisRouter

log = structlog.get_logger(__name__)

AMD_CONTEXT = "vocalcast-amd"
# The transfer leg's way into the application, and the subroutine both detours enter it through
# (dialplan/extensions.conf: it waits for an engine rather than hang up while none is connected).
TRANSFER_CONTEXT = "vocalcast-transfer"
STASIS_CONTEXT = "vocalcast-stasis"
# Dial statuses that say how the dial is going, not how it ended: the result keeps the last final one
# (a ring timeout has none: the originate gives up without a final Dial event).
_PROGRESS_DIALSTATUSES = frozenset({"", "RINGING", "PROGRESS", "PROCEEDING"})
# How long a finished call's route stays open for its last events (ChannelDestroyed of both legs).
LINGER_S = 10.0
# Soft-hangup flags (a soft ChannelHangupRequest's "cause"): Asterisk shutting down, or the Stasis
# application's module unloading — a cut of ours, never the callee's (lab: `core stop now` gives 4).
_SOFTHANGUP_SHUTDOWN = 1 << 2
_SOFTHANGUP_APPUNLOAD = 1 << 4

StageHook = Callable[[CallRequest, StageChanged], Awaitable[None] | None]


# --- what the telephony side queues for a call besides ARI events (the machine's own: callevents) ------


@dataclass(frozen=True, slots=True)
class Linger(Signal):
    """The finished call's last events had their time: let go of its route."""


@dataclass(frozen=True, slots=True)
class ChannelVanished(Signal):
    """The sweep saw the callee's channel gone twice, and no ChannelDestroyed came: its events were lost.
    After a reconnection, adoption may say who ended it meanwhile (`cut`, a Cut value) and when."""

    cut: str | None = None
    ended_at: float | None = None


@dataclass(frozen=True, slots=True)
class TransferVanished(Signal):
    """The sweep saw the transfer leg gone, and no ChannelDestroyed came for it."""


@dataclass(frozen=True, slots=True)
class Recheck(Signal):
    """After a gap in the events (a websocket cut, a resume by another engine): the end of the playback
    the call waits on may have been lost; look at Asterisk's playback by its id."""


@dataclass(frozen=True, slots=True)
class Resumed(Signal):
    """A resumed call's first actions (CallFlow.resume), run in the call's queue before its events."""

    actions: tuple[ce.Action, ...]


class CallOwner(Protocol):
    """What a call needs from the service that placed it."""

    ari: AriClient
    router: StasisRouter
    on_stage: StageHook | None
    ears: BeepEars  # the beep wait's listening socket, shared by the calls

    def on_finished(self, request: CallRequest, result: CallResult) -> None: ...


class OutboundCall:
    """The CallHandler of one attempt."""

    def __init__(self, service: CallOwner, request: CallRequest, flow: CallFlow | None = None) -> None:
        self.service = service
        self.ari = service.ari
        self.request = request
        self.channel_id = request.attempt_id
        # The machine follows the originate's own ring timeout: it tells a ring timeout by the time.
        plan = request.plan
        if plan.ring_timeout_s != request.ring_timeout_s:
            plan = dataclasses.replace(plan, ring_timeout_s=request.ring_timeout_s)
        self.flow = flow if flow is not None else CallFlow(plan, time.time())
        self.done: asyncio.Future[CallResult] = asyncio.get_running_loop().create_future()
        self.route: Route | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._dialstatus: str | None = None
        self._transfer_id: str | None = None
        self._transfer_dialstatus: str | None = None
        self._bridge_id: str | None = None
        self._ear = BeepEar(self.ari, self.channel_id)  # the beep wait's listening (any frequency)
        self._callee_gone = False
        self._transfer_gone = True
        self._transfer_slot_held = False
        self._linger: asyncio.TimerHandle | None = None
        self._soft_hangup = False
        self._abandoned = False  # its node was fenced (abandon)
        self._asterisk_stopping = False  # Asterisk said it hangs the call up because it shuts down
        self.originated = False  # POST /channels succeeded: the channel exists until it is destroyed
        self.transfer_originated = False  # the same for the transfer leg
        self._log = log.bind(
            attempt_id=self.channel_id, trunk=request.trunk, number=mask_number(request.callee_number)
        )

    def adopt_legs(self, *, transfer_leg: bool, bridged: bool) -> None:
        """A resumed call: its channel exists, and so may its transfer leg and bridge (their ids derive
        from the attempt id); their events come to this call."""
        self.originated = True
        if transfer_leg:
            self._transfer_id = callids.transfer_leg_id(self.channel_id)
            self._transfer_gone = False
            self.transfer_originated = True
            self.service.router.alias(self._route(), self._transfer_id)
        if bridged:
            self._bridge_id = callids.bridge_id(self.channel_id)
            self.service.router.alias(self._route(), "bridge:" + self._bridge_id)

    # --- events in -------------------------------------------------------------------------------
    async def on_event(self, event: Queued) -> None:
        if isinstance(event, Signal):
            await self._on_signal(event)
        elif isinstance(event, dict):
            await self._on_ari_event(event)
        else:
            await self._on_machine_event(event)
        self._maybe_close()

    async def _on_signal(self, signal: Signal) -> None:
        match signal:
            case Linger():
                self._close()
            case ChannelVanished(cut=cut, ended_at=ended_at):
                self._callee_gone = True
                if not self.flow.finished:
                    self._log.warning("call.channel_vanished", cut=cut)
                    await self._feed(
                        ce.Abort(
                            "channel vanished without events", channel_gone=True, cut=cut, ended_at=ended_at
                        )
                    )
            case TransferVanished():
                if not self._transfer_gone:
                    self._log.warning("call.transfer_vanished")
                    self._transfer_gone = True
                    self._release_transfer_slot()
                    await self._feed(ce.TransferEnded())
            case Resumed(actions=actions):
                for action in actions:
                    await self._execute(action)
                await self._recheck_playback()
            case Recheck():
                await self._recheck_playback()
            case _:
                self._log.warning("call.unknown_signal", signal=type(signal).__name__)

    async def _recheck_playback(self) -> None:
        """The playback the call waits on is gone from Asterisk while the channel is up: it ended during
        the gap, by itself (nobody stopped it): its end is fed as the lost PlaybackFinished."""
        if self.flow.finished or self._callee_gone:
            return
        snapshot = self.flow.snapshot()
        if snapshot.playback_id is None or snapshot.playback_stopped_at is not None:
            return
        try:
            await self.service.ari.request(
                "GET", f"/playbacks/{callids.playback_id(self.channel_id, snapshot.playback_id)}"
            )
        except AriNotFound:
            if await self.service.ari.get_variable(self.channel_id, "CHANNEL(state)") is None:
                return  # the channel went too: its ChannelDestroyed (or the sweep) ends the call
            self._log.info("call.playback_ended_in_gap", playback=snapshot.playback_id)
            await self._feed(ce.PlaybackFinished(snapshot.playback_id, completed=True))
        except (AriError, AriUnavailable) as exc:
            self._log.warning("call.recheck_failed", error=str(exc))

    async def _on_machine_event(self, event: ce.Event) -> None:
        """An event the call queued for itself: its timers, the originate's reply."""
        match event:
            case ce.TimerFired(name=name):
                if self._soft_hangup:
                    return  # the channel is going away: its ChannelDestroyed ends the call
                if self._timers.pop(name, None) is not None:
                    await self._feed(event)
            case ce.OriginateFailed():
                await self._feed(event)
                self._callee_gone = True  # no channel was created
            case _:
                await self._feed(event)

    async def _on_ari_event(self, event: Event) -> None:
        kind = event.get("type")
        channel = event.get("channel") or {}
        cid = channel.get("id")
        if self._ear.owns(cid):
            return  # the beep wait's snoop and external-media channels: nothing the call acts on
        is_transfer = self._transfer_id is not None and (
            cid == self._transfer_id or (event.get("peer") or {}).get("id") == self._transfer_id
        )
        if is_transfer:
            await self._on_transfer_event(kind, event)
        else:
            await self._on_callee_event(kind, event)

    async def _on_callee_event(self, kind: Any, event: Event) -> None:
        channel = event.get("channel") or {}
        if self._soft_hangup and kind != "ChannelDestroyed":
            return  # Asterisk is hanging the channel up: what happens meanwhile does not count
        if kind == "Dial" and (event.get("peer") or {}).get("id") == self.channel_id:
            status = str(event.get("dialstatus") or "")
            if status not in _PROGRESS_DIALSTATUSES:
                self._dialstatus = status
            if status == "RINGING":
                await self._feed(ce.Ringing())
            elif status == "PROGRESS":
                await self._feed(ce.Progress())
        elif kind == "ChannelStateChange" and channel.get("state") == "Ringing":
            await self._feed(ce.Ringing())
        elif kind == "StasisStart":
            args = [str(a) for a in event.get("args") or []]
            if args and args[0] == "amd":
                status = args[1] if len(args) > 1 else "NOTSURE"
                await self._feed(ce.AmdResult(status, args[2] if len(args) > 2 else None))
            else:
                await self._feed(ce.Answered())
        elif kind == "ChannelDtmfReceived":
            await self._feed(ce.Dtmf(str(event.get("digit", ""))))
        elif kind in {"PlaybackStarted", "PlaybackFinished"}:
            playback = event.get("playback") or {}
            machine_id = callids.machine_playback_id(self.channel_id, str(playback.get("id")))
            if machine_id is None:
                return
            if kind == "PlaybackStarted":
                await self._feed(ce.PlaybackStarted(machine_id))
            else:
                await self._feed(ce.PlaybackFinished(machine_id, completed=playback.get("state") == "done"))
        elif kind == "ChannelToneDetected":
            await self._feed(ce.ToneDetected())
        elif kind == "ChannelTalkingStarted":
            await self._feed(ce.TalkingStarted())
        elif kind == "ChannelTalkingFinished":
            await self._feed(ce.TalkingFinished())
        elif kind == "ChannelHangupRequest" and event.get("soft"):
            # Asterisk itself hangs up (RTP timeout, session timer...): "cause" then holds soft-hangup
            # flags, not a Q.850 cause (lab: cause 1 for an RTP timeout, then ChannelDestroyed 44).
            # ChannelDestroyed follows at once with the real cause; until then, nothing counts.
            self._soft_hangup = True
            if (_int(event.get("cause")) or 0) & (_SOFTHANGUP_SHUTDOWN | _SOFTHANGUP_APPUNLOAD):
                self._asterisk_stopping = True
        elif kind == "ChannelHangupRequest":
            # A BYE without a Reason header comes without a cause; ChannelDestroyed then says 0
            # (unknown), and so do we, rather than None ("not reported yet").
            cause = _int(event.get("cause"))
            await self._feed(ce.HangupRequested(0 if cause is None else cause, _sip_code(event)))
        elif kind == "ChannelDestroyed":
            self._callee_gone = True
            if self._asterisk_stopping:  # Asterisk hung it up on its way down: the unobserved rule
                await self._feed(ce.Abort("asterisk stopped", channel_gone=True, cut="ours"))
            else:
                await self._feed(ce.Hangup(_int(event.get("cause")), _sip_code(event), self._dialstatus))

    async def _execute_detection(self, variable: str, value: str = "") -> None:
        """Set up, adjust or remove a detector. A channel that just went away is not an error (its hang-up
        follows), and a failure only costs time: the beep wait's cap still ends the wait."""
        try:
            await self.ari.set_variable(self.channel_id, variable, value)
        except (AriNotFound, AriUnprocessable):
            pass
        except (AriError, AriUnavailable) as exc:
            self._log.warning("call.detection_failed", variable=variable, error=str(exc))

    async def _on_transfer_event(self, kind: Any, event: Event) -> None:
        if kind == "Dial":
            status = str(event.get("dialstatus") or "")
            if status not in _PROGRESS_DIALSTATUSES:
                self._transfer_dialstatus = status
        elif kind == "StasisStart":
            await self._feed(ce.TransferAnswered())
        elif kind == "ChannelDestroyed":
            self._transfer_gone = True
            self._release_transfer_slot()
            await self._feed(
                ce.TransferEnded(_int(event.get("cause")), _sip_code(event), self._transfer_dialstatus)
            )

    async def on_failure(self, exc: Exception) -> None:
        self._log.error("call.adapter_failed", error=f"{exc.__class__.__name__}: {exc}")
        await self._feed(ce.Abort(f"adapter error: {exc.__class__.__name__}"))
        with contextlib.suppress(AriError, AriUnavailable):
            await self.ari.hangup(self.channel_id)

    # --- the machine ------------------------------------------------------------------------------
    async def _feed(self, event: ce.Event) -> None:
        actions = self.flow.handle(event, time.time())
        for action in actions:
            await self._execute(action)

    async def _execute(self, action: ce.Action) -> None:
        try:
            await self._run(action)
        except (AriNotFound, AriUnprocessable):
            # The channel (or playback) just went away: its hang-up events follow.
            self._log.debug("call.action_on_gone_channel", action=type(action).__name__)
        except (AriError, AriUnavailable) as exc:
            self._log.warning("call.action_failed", action=type(action).__name__, error=str(exc))
            if not self.flow.finished:
                await self._feed(ce.Abort(f"{type(action).__name__} failed: {exc}"))
                with contextlib.suppress(AriError, AriUnavailable):
                    await self.ari.hangup(self.channel_id)

    async def _run(self, action: ce.Action) -> None:
        match action:
            case ce.Play(playback_id=machine_id, media=media):
                await self.ari.play(self.channel_id, callids.playback_id(self.channel_id, machine_id), media)
            case ce.StopPlayback(playback_id=machine_id):
                await self.ari.stop_playback(callids.playback_id(self.channel_id, machine_id))
            case ce.StartTimer(name=name, seconds=seconds):
                loop = asyncio.get_running_loop()
                self._timers[name] = loop.call_later(seconds, self._route().put, ce.TimerFired(name))
            case ce.CancelTimer(name=name):
                handle = self._timers.pop(name, None)
                if handle is not None:
                    handle.cancel()
            case ce.RunAmd():
                await self.ari.request(
                    "POST",
                    f"/channels/{self.channel_id}/continue",
                    params={"context": AMD_CONTEXT, "extension": "s", "priority": 1},
                )
            case ce.SetTalkDetection(silence_ms=silence_ms, threshold=threshold):
                await self._execute_detection("TALK_DETECT(set)", f"{silence_ms},{threshold}")
            case ce.ListenForBeep(min_ms=min_ms):
                route = self._route()
                self.service.router.alias(route, self._ear.snoop_id)  # before they exist: events may win
                self.service.router.alias(route, self._ear.ear_id)
                await self._ear.start(self.service.ears, min_ms, lambda: route.put(ce.ToneDetected()))
            case ce.StopDetection():
                await self._execute_detection("TALK_DETECT(remove)")
                await self._ear.stop()
            case ce.OriginateTransfer(number=number, timeout_s=timeout_s):
                await self._originate_transfer(number, timeout_s)
            case ce.BridgeWithTransfer():
                if self._transfer_id is None:
                    raise RuntimeError("BridgeWithTransfer without a transfer leg")
                self._bridge_id = callids.bridge_id(self.channel_id)
                self.service.router.alias(self._route(), "bridge:" + self._bridge_id)
                await self.ari.create_bridge(self._bridge_id, "mixing")
                await self.ari.add_to_bridge(self._bridge_id, [self.channel_id, self._transfer_id])
            case ce.HangupTransfer():
                if self._transfer_id is not None:
                    await self.ari.hangup(self._transfer_id)
            case ce.DestroyBridge():
                if self._bridge_id is not None:
                    await self.ari.destroy_bridge(self._bridge_id)
            case ce.HangupCallee():
                await self.ari.hangup(self.channel_id)
            case ce.StageChanged():
                await self._stage_changed(action)
            case ce.Finished(result=result):
                await self._ear.stop()  # the callee left during the beep wait: its snoop went, not the rest
                self._finish(result)

    async def _stage_changed(self, change: StageChanged) -> None:
        """Hand the stage to the owner's hook (persistence), awaited when it returns an awaitable, so that
        what it writes is in order with the call's actions."""
        self._log.debug("call.stage", stage=change.stage.value, detail=change.detail)
        hook = self.service.on_stage
        if hook is None:
            return
        try:
            pending = hook(self.request, change)
            if pending is not None:
                await pending
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the owner's code: a failed record of a stage must not end the call
            self._log.exception("call.stage_hook_failed", stage=change.stage.value)

    async def _originate_transfer(self, number: str, timeout_s: float) -> None:
        request = self.request
        if request.transfer_endpoint is None:
            await self._feed(ce.TransferEnded())
            return
        slots = request.transfer_slots
        if slots is not None and not await slots.acquire():
            # The trunk's channels (or its pace) are all taken: placing the leg would break the carrier's
            # limit. The transfer fails: the callee hears the apology and the message again.
            self._log.warning("call.transfer_refused_trunk_full")
            await self._feed(ce.TransferEnded())
            return
        self._transfer_slot_held = slots is not None
        self._transfer_id = callids.transfer_leg_id(self.channel_id)
        self._transfer_gone = False
        self.service.router.alias(self._route(), self._transfer_id)
        caller = request.transfer_caller_id or CallerId(None, hidden=True)
        try:
            # Into the dialplan, which enters the application once answered: an answer while no engine
            # is connected then waits for the next engine (a leg originated straight into the
            # application would be hung up by Asterisk, and the transfer lost).
            await self.ari.originate(
                endpoint=request.transfer_endpoint(number),
                channel_id=self._transfer_id,
                context=TRANSFER_CONTEXT,
                timeout_s=timeout_s,
                caller_id=caller.ari_caller_id(),
                variables={"GROUP(vc_trunk)": request.trunk, "VC_APP": self.ari.app, **caller.variables()},
                originator=self.channel_id,
            )
        except (AriError, AriUnavailable) as exc:
            self._log.warning("call.transfer_originate_failed", error=str(exc))
            self._transfer_gone = True
            self._release_transfer_slot()
            await self._feed(ce.TransferEnded())
            return
        self.transfer_originated = True
        try:
            # Its ringing and failure reach us only through a subscription (it is not in the application
            # before the answer). Gone already: it failed before we could listen, and told nobody.
            await self.ari.subscribe_channel(self._transfer_id)
        except (AriNotFound, AriUnprocessable):
            if not self._transfer_gone:
                self._transfer_gone = True
                self._release_transfer_slot()
                await self._feed(ce.TransferEnded())
        except (AriError, AriUnavailable) as exc:  # the sweep notices the leg's end if no event does
            self._log.warning("call.transfer_subscribe_failed", error=str(exc))

    def _release_transfer_slot(self) -> None:
        if self._transfer_slot_held and self.request.transfer_slots is not None:
            self._transfer_slot_held = False
            self.request.transfer_slots.release()

    def abandon(self) -> None:
        """Forget the call without a request to Asterisk nor a result (its node was fenced: another node
        drives its channel now)."""
        self._abandoned = True
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._linger is not None:
            self._linger.cancel()
        if not self.done.done():
            self.done.cancel()
        self._log.warning("call.abandoned_fenced")

    def _finish(self, result: CallResult) -> None:
        if self._abandoned:
            return
        for handle in self._timers.values():
            handle.cancel()
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
        # Stay subscribed a little for the last ChannelDestroyed events, then let go (_close cancels
        # this when they came: the timer would otherwise keep the whole call in memory for LINGER_S).
        if self.route is not None:
            self._linger = asyncio.get_running_loop().call_later(LINGER_S, self.route.put, Linger())

    def route_put(self, event: Queued) -> None:
        """Queue an event behind the ones already received (the sweep's findings)."""
        if self.route is not None:
            self.route.put(event)

    @property
    def transfer_leg_id(self) -> str | None:
        return self._transfer_id

    @property
    def transfer_leg_gone(self) -> bool:
        return self._transfer_gone

    def _route(self) -> Route:
        if self.route is None:
            raise RuntimeError("call used before it was registered with the router")
        return self.route

    def _maybe_close(self) -> None:
        if self.flow.finished and self._callee_gone and self._transfer_gone:
            self._close()

    def _close(self) -> None:
        self._release_transfer_slot()  # its ChannelDestroyed was lost: the sweep or the linger ends it
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self.route is not None:
            self.route.close()


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _sip_code(event: Event) -> int | None:
    """ARI's tech_cause (Asterisk 22) carries the SIP response code of the hang-up, when known."""
    code = _int(event.get("tech_cause"))
    return code if code and code >= 100 else None
