"""A probe call: originate through a trunk, play one sound, collect DTMF, hang up when it ends.

Operators use it to check a trunk end to end (`vocalcast call probe`); the foundation tests use
it to prove that audio really reaches a callee. Real broadcasts use the call flow instead.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from engine.domain.trunks import DEFAULT_CODECS
from engine.telephony.ari import AriClient, AriError
from engine.telephony.stasis import Queued, StasisRouter

log = structlog.get_logger(__name__)


@dataclass
class ProbeResult:
    channel_id: str
    answered: bool = False
    played_to_end: bool = False
    digits: str = ""
    cause: int | None = None
    cause_txt: str = ""
    events: list[str] = field(default_factory=list)
    error: str = ""


class _ProbeCall:
    def __init__(self, ari: AriClient, result: ProbeResult, media: str, hangup_after_playback: bool) -> None:
        self.ari = ari
        self.result = result
        self.media = media
        self.hangup_after_playback = hangup_after_playback
        self.done = asyncio.Event()
        self.playback_id = str(uuid.uuid4())
        self.started_at = time.monotonic()

    async def on_event(self, event: Queued) -> None:
        if not isinstance(event, dict):
            return  # nothing queues typed events for a probe
        kind = str(event.get("type"))
        self.result.events.append(kind)
        cid = self.result.channel_id
        if kind == "StasisStart":
            self.result.answered = event.get("channel", {}).get("state") == "Up"
            await self.ari.play(cid, self.playback_id, self.media)
        elif kind == "ChannelDtmfReceived":
            self.result.digits += str(event.get("digit", ""))
        elif kind == "PlaybackFinished" and event.get("playback", {}).get("id") == self.playback_id:
            # PlaybackFinished also fires on hang-up: only "done" before any hang-up counts.
            if event["playback"].get("state") == "done" and "ChannelHangupRequest" not in self.result.events:
                self.result.played_to_end = True
            if self.hangup_after_playback:
                await self.ari.hangup(cid)
        elif kind == "ChannelDestroyed":
            self.result.cause = event.get("cause")
            self.result.cause_txt = str(event.get("cause_txt", ""))
            self.done.set()

    async def on_failure(self, exc: Exception) -> None:
        self.result.error = f"{exc.__class__.__name__}: {exc}"
        await self.ari.hangup(self.result.channel_id)
        self.done.set()


async def probe_call(
    ari: AriClient,
    router: StasisRouter,
    *,
    endpoint: str,
    media: str,
    ring_timeout_s: float = 30,
    max_duration_s: float = 120,
    hangup_after_playback: bool = True,
    caller_id: str | None = None,
    codecs: Sequence[str] = DEFAULT_CODECS,
) -> ProbeResult:
    channel_id = str(uuid.uuid4())
    result = ProbeResult(channel_id)
    call = _ProbeCall(ari, result, media, hangup_after_playback)
    route = router.attach(channel_id, call)  # before the POST: events can arrive before its reply
    try:
        try:
            await ari.originate(
                endpoint=endpoint,
                channel_id=channel_id,
                app_args="probe",
                timeout_s=ring_timeout_s,
                caller_id=caller_id,
                formats=codecs,
            )
        except AriError as exc:
            result.error = str(exc)
            return result
        try:
            await asyncio.wait_for(call.done.wait(), ring_timeout_s + max_duration_s)
        except TimeoutError:
            result.error = "probe call did not end in time"
            await ari.hangup(channel_id)
    finally:
        route.close()
        await route.task
    return result
