"""One outbound call over ARI: each ARI event of the call becomes a call-flow event; each action the
call flow returns becomes an ARI request. No decision is made here (see engine/domain/callflow.py).

One handler per call, fed in order by the Stasis router (the callee's channel, its transfer leg
and its bridge share one queue); timers are events on that same queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any, Protocol

import structlog

from engine.domain import callevents as ce
from engine.domain.callevents import CallResult
from engine.domain.callflow import CallFlow
from engine.domain.numbers import mask_number
from engine.telephony.ari import AriClient, AriError, AriNotFound, AriUnavailable, AriUnprocessable, Event
from engine.telephony.callrequest import CallerId, CallRequest
from engine.telephony.stasis import Route, StasisRouter

log = structlog.get_logger(__name__)

AMD_CONTEXT = "vocalcast-amd"
# The beep wait of the answering-machine mode. AMD said MACHINE while the greeting still plays; the
# machine records after the greeting's beep, so the message starts when the beep ends. Two detectors
# run on what the callee sends: TONE_DETECT for the beep itself, and TALK_DETECT, whose "talking
# finished" marks the end of sound. Before a beep is heard, only a long silence ends the wait (a
# greeting without a beep, or with a beep at another frequency: pauses between sentences are shorter);
# once the beep is heard, a short silence does.
BEEP_HZ = 1000  # the usual voicemail beep (bench/amd.py measures the detection)
BEEP_MIN_MS = 150  # shorter than voicemail beeps; speech does not hold a pure tone that long
GREETING_END_SILENCE_MS = 1500
AFTER_BEEP_SILENCE_MS = 200
TALK_THRESHOLD = 256  # Asterisk's default energy threshold between silence and sound
# A beep is over within this long after it was detected, even when line noise hides the silence after it.
AFTER_BEEP_MAX_S = 1.0
# No sound at all this long after the wait began: the greeting is already over (AMD heard it out, or
# heard only silence); nothing is left to wait for.
NO_SOUND_S = 2.0
# A channel destroyed unanswered this close to the originate timeout was ended by that timeout.
RING_TIMEOUT_MARGIN_S = 0.5
# Dial statuses that say how the dial is going, not how it ended: the result keeps the last final one
# (a ring timeout has none: the originate gives up without a final Dial event).
_PROGRESS_DIALSTATUSES = frozenset({"", "RINGING", "PROGRESS", "PROCEEDING"})
# How long a finished call's route stays open for its last events (ChannelDestroyed of both legs).
LINGER_S = 10.0


class CallOwner(Protocol):
    """What a call needs from the service that placed it."""

    ari: AriClient
    router: StasisRouter

    def on_finished(self, request: CallRequest, result: CallResult) -> None: ...


class _Timer:
    def __init__(self, route: Route, name: str, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self.handle = loop.call_later(seconds, route.put, {"type": "_TimerFired", "name": name})


class OutboundCall:
    """The CallHandler of one attempt."""

    def __init__(self, service: CallOwner, request: CallRequest) -> None:
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
        self._beep_heard = False
        self._sound_heard = False
        self._detect_timers: dict[str, asyncio.TimerHandle] = {}
        self._linger: asyncio.TimerHandle | None = None
        self._answered = False
        self._soft_hangup = False
        self.originate_sent_at: float | None = None  # monotonic, just before POST /channels
        self.originated = False  # POST /channels succeeded: the channel exists until it is destroyed
        self.transfer_originated = False  # the same for the transfer leg
        self._log = log.bind(
            attempt_id=self.channel_id, trunk=request.trunk, number=mask_number(request.callee_number)
        )

    # --- events in -------------------------------------------------------------------------------
    async def on_event(self, event: Event) -> None:
        kind = event.get("type")
        if kind == "_TimerFired":
            if self._soft_hangup:
                return  # the channel is going away: its ChannelDestroyed ends the call
            name = str(event["name"])
            if self._timers.pop(name, None) is not None:
                await self._feed(ce.TimerFired(name))
            return
        if kind == "_Linger":
            self._close()
            return
        if kind == "_Originated":
            await self._feed(ce.Originated())
            return
        if kind in {"_BeepOver", "_NoSound"}:
            self._detect_timers.pop(kind, None)
            if (
                self._beep_detection
                and not self._soft_hangup
                and (kind == "_BeepOver" or not self._sound_heard)
            ):
                await self._feed(ce.BeepDetected())
            return
        if kind == "_Vanished":
            # The sweep saw the channel gone twice, and no ChannelDestroyed came: its events were lost.
            self._callee_gone = True
            if not self.flow.finished:
                self._log.warning("call.channel_vanished")
                await self._feed(ce.Abort("channel vanished without events", channel_gone=True))
            self._maybe_close()
            return
        if kind == "_TransferVanished":
            if not self._transfer_gone:
                self._log.warning("call.transfer_vanished")
                self._transfer_gone = True
                await self._feed(ce.TransferEnded())
            self._maybe_close()
            return
        if kind == "_OriginateError":
            await self._feed(ce.OriginateFailed(str(event.get("reason", ""))))
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
            self._answered = True
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
            machine_id = self._playbacks.get(str(playback.get("id")))
            if machine_id is None:
                return
            if kind == "PlaybackStarted":
                await self._feed(ce.PlaybackStarted(machine_id))
            else:
                await self._feed(ce.PlaybackFinished(machine_id, completed=playback.get("state") == "done"))
        elif kind == "ChannelToneDetected" and self._beep_detection and not self._beep_heard:
            # The beep: from now on, the first short silence means it ended.
            self._beep_heard = True
            self._log.debug("call.beep_heard")
            self._detection_timer("_BeepOver", AFTER_BEEP_MAX_S)
            await self._execute_detection(_talk_detect(AFTER_BEEP_SILENCE_MS))
        elif kind == "ChannelTalkingStarted" and self._beep_detection:
            self._sound_heard = True
        elif kind == "ChannelTalkingFinished" and self._beep_detection:
            # The greeting (and its beep) ended and silence followed: the machine is recording.
            await self._feed(ce.BeepDetected())
        elif kind == "ChannelHangupRequest" and event.get("soft"):
            # Asterisk itself hangs up (RTP timeout, session timer...): "cause" then holds soft-hangup
            # flags, not a Q.850 cause (lab: cause 1 for an RTP timeout, then ChannelDestroyed 44).
            # ChannelDestroyed follows at once with the real cause; until then, nothing counts.
            self._soft_hangup = True
        elif kind == "ChannelHangupRequest":
            # A BYE without a Reason header comes without a cause; ChannelDestroyed then says 0
            # (unknown), and so do we, rather than None ("not reported yet").
            cause = _int(event.get("cause"))
            await self._feed(ce.HangupRequested(0 if cause is None else cause, _sip_code(event)))
        elif kind == "ChannelDestroyed":
            self._callee_gone = True
            await self._feed(
                ce.Hangup(
                    _int(event.get("cause")),
                    _sip_code(event),
                    self._dialstatus,
                    ring_timeout=self._ring_timed_out(),
                )
            )

    def _detection_timer(self, kind: str, seconds: float) -> None:
        previous = self._detect_timers.pop(kind, None)
        if previous is not None:
            previous.cancel()
        self._detect_timers[kind] = asyncio.get_running_loop().call_later(
            seconds, self._route().put, {"type": kind}
        )

    def _cancel_detection_timers(self) -> None:
        for handle in self._detect_timers.values():
            handle.cancel()
        self._detect_timers.clear()

    async def _execute_detection(self, variable: tuple[str, str]) -> None:
        """Set up, adjust or remove a detector. A channel that just went away is not an error (its hang-up
        follows), and a failure only costs time: the beep wait's cap still ends the wait."""
        try:
            await self.ari.set_variable(self.channel_id, *variable)
        except (AriNotFound, AriUnprocessable):
            pass
        except (AriError, AriUnavailable) as exc:
            self._log.warning("call.beep_detection_failed", error=str(exc))

    def _ring_timed_out(self) -> bool:
        """Unanswered, with no final dial status, when the originate's timeout had run out."""
        if self._answered or self._dialstatus is not None or self.originate_sent_at is None:
            return False
        timeout_s = originate_timeout_s(self.request.ring_timeout_s)
        return time.monotonic() - self.originate_sent_at >= timeout_s - RING_TIMEOUT_MARGIN_S

    async def _on_transfer_event(self, kind: Any, event: Event) -> None:
        if kind == "Dial":
            status = str(event.get("dialstatus") or "")
            if status not in _PROGRESS_DIALSTATUSES:
                self._transfer_dialstatus = status
        elif kind == "StasisStart":
            await self._feed(ce.TransferAnswered())
        elif kind == "ChannelDestroyed":
            self._transfer_gone = True
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
                ari_id = str(uuid.uuid4())
                self._playbacks[ari_id] = machine_id
                self._machine_playbacks[machine_id] = ari_id
                await self.ari.play(self.channel_id, ari_id, media)
            case ce.StopPlayback(playback_id=stopped):
                playing = self._machine_playbacks.get(stopped)
                if playing is not None:
                    await self.ari.stop_playback(playing)
            case ce.StartTimer(name=name, seconds=seconds):
                self._timers[name] = _Timer(self._route(), name, seconds)
            case ce.CancelTimer(name=name):
                timer = self._timers.pop(name, None)
                if timer is not None:
                    timer.handle.cancel()
            case ce.RunAmd():
                await self.ari.request(
                    "POST",
                    f"/channels/{self.channel_id}/continue",
                    params={"context": AMD_CONTEXT, "extension": "s", "priority": 1},
                )
            case ce.StartBeepDetection():
                self._beep_detection = True
                self._beep_heard = False
                self._sound_heard = False
                self._detection_timer("_NoSound", NO_SOUND_S)
                await self._execute_detection(_talk_detect(GREETING_END_SILENCE_MS))
                await self._execute_detection((f"TONE_DETECT({BEEP_HZ},{BEEP_MIN_MS},r)", ""))
            case ce.StopBeepDetection():
                self._beep_detection = False
                self._cancel_detection_timers()
                await self._execute_detection(("TALK_DETECT(remove)", ""))
                await self._execute_detection(("TONE_DETECT(0,,x)", ""))
            case ce.OriginateTransfer(number=number, timeout_s=timeout_s):
                await self._originate_transfer(number, timeout_s)
            case ce.BridgeWithTransfer():
                if self._transfer_id is None:
                    raise RuntimeError("BridgeWithTransfer without a transfer leg")
                self._bridge_id = str(uuid.uuid4())
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
            case ce.Finished(result=result):
                self._finish(result)

    async def _originate_transfer(self, number: str, timeout_s: float) -> None:
        request = self.request
        if request.transfer_endpoint is None:
            await self._feed(ce.TransferEnded())
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
            await self._feed(ce.TransferEnded())
            return
        self.transfer_originated = True

    def _finish(self, result: CallResult) -> None:
        for timer in self._timers.values():
            timer.handle.cancel()
        self._timers.clear()
        self._cancel_detection_timers()
        self._beep_detection = False
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
            self._linger = asyncio.get_running_loop().call_later(
                LINGER_S, self.route.put, {"type": "_Linger"}
            )

    def route_put(self, event: Event) -> None:
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
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self.route is not None:
            self.route.close()


def _talk_detect(silence_ms: int) -> tuple[str, str]:
    """The channel variable that (re)configures TALK_DETECT: silence that ends talking, energy threshold."""
    return "TALK_DETECT(set)", f"{silence_ms},{TALK_THRESHOLD}"


def originate_timeout_s(ring_timeout_s: float) -> int:
    """The originate timeout ARI applies: whole seconds, at least 1 (see AriClient.originate)."""
    return max(1, round(ring_timeout_s))


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _sip_code(event: Event) -> int | None:
    """ARI's tech_cause (Asterisk 22) carries the SIP response code of the hang-up, when known."""
    code = _int(event.get("tech_cause"))
    return code if code and code >= 100 else None
