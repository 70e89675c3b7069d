"""The callee's audio brought to the engine during a beep wait, where engine/domain/beeptone.py hears the
voicemail beep at any frequency (Asterisk's TONE_DETECT watches one frequency per channel).

Per call: a snoop channel on the callee's channel (spy=in: what the callee sends, nothing whispered
back), an external-media channel that sends what it gets as µ-law RTP to the engine's UDP socket, and a
mixing bridge joining the two. Their ids derive from the call's (a restarted engine finds them), their
events go to the call's route (the call ignores them: engine/telephony/outbound.py), and RTP packets are
told apart by the port Asterisk sends them from. The UDP socket (127.0.0.1, a port of the system's
choosing) is open while at least one call listens, and serves every call of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from typing import Final

import structlog

from engine.domain.beeptone import BeepDetector, ulaw_samples
from engine.telephony.ari import AriClient, AriError, AriUnavailable, AriUnprocessable

log = structlog.get_logger(__name__)

# Fixed: ids derived under it must stay the same across releases (a restarted engine cleans up by them).
_NAMESPACE: Final = uuid.UUID("5b0c3f7e-2d8a-4f41-9a53-0e6f7c1d2b94")
_RTP_HEADER: Final = 12
# Pauses between tries to bridge a snoop channel not yet in the application (about 1 s in all).
JOIN_RETRIES_S: Final = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.3)


def snoop_id(channel_id: str) -> str:
    """The snoop channel listening to the callee during its beep wait."""
    return str(uuid.uuid5(_NAMESPACE, f"{channel_id}/snoop"))


def ear_id(channel_id: str) -> str:
    """The external-media channel streaming what the snoop hears to the engine."""
    return str(uuid.uuid5(_NAMESPACE, f"{channel_id}/ear"))


def ear_bridge_id(channel_id: str) -> str:
    """The bridge joining the snoop channel and the external-media channel."""
    return str(uuid.uuid5(_NAMESPACE, f"{channel_id}/ear-bridge"))


def rtp_payload(packet: bytes) -> bytes | None:
    """The payload of an RTP packet (CSRCs, header extension and padding skipped); None if malformed."""
    if len(packet) < _RTP_HEADER or packet[0] >> 6 != 2:
        return None
    start = _RTP_HEADER + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:  # a header extension: 4 bytes, then its length in 32-bit words
        if len(packet) < start + 4:
            return None
        start += 4 + 4 * int.from_bytes(packet[start + 2 : start + 4], "big")
    end = len(packet)
    if packet[0] & 0x20 and end > start:  # padding: its length is the last byte
        end -= packet[-1]
    return packet[start:end] if end >= start else None


class _Listener:
    def __init__(self, detector: BeepDetector, on_beep: Callable[[], None]) -> None:
        self.detector = detector
        self.on_beep = on_beep


class BeepEars(asyncio.DatagramProtocol):
    """The engine's UDP socket for external media: each packet is fed to the detector of its call.
    Opened by the first call that listens (acquire), closed when the last one is done (release)."""

    def __init__(self) -> None:
        self._by_port: dict[int, _Listener] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._users = 0
        self._opening = asyncio.Lock()
        self.port = 0

    async def acquire(self) -> int:
        """Count a call in (the socket opens if it is the first); the port Asterisk must send to."""
        self._users += 1
        async with self._opening:
            if self._transport is None:
                loop = asyncio.get_running_loop()
                try:
                    transport, _ = await loop.create_datagram_endpoint(
                        lambda: self, local_addr=("127.0.0.1", 0)
                    )
                except OSError:
                    self._users -= 1
                    raise
                self._transport = transport
                self.port = int(transport.get_extra_info("sockname")[1])
        return self.port

    def release(self) -> None:
        self._users = max(0, self._users - 1)
        if self._users == 0:
            self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._by_port.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def listen(self, asterisk_port: int, detector: BeepDetector, on_beep: Callable[[], None]) -> None:
        self._by_port[asterisk_port] = _Listener(detector, on_beep)

    def forget(self, asterisk_port: int) -> None:
        self._by_port.pop(asterisk_port, None)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        listener = self._by_port.get(addr[1])
        if listener is None:
            return
        payload = rtp_payload(data)
        if payload and listener.detector.feed(ulaw_samples(payload)):
            listener.on_beep()


class BeepEar:
    """One call's listening during its beep wait: started by ListenForBeep, stopped by StopDetection or
    by the call's end. A failure only costs time: the beep wait's silences and cap still end it."""

    def __init__(self, ari: AriClient, channel_id: str) -> None:
        self.ari = ari
        self.channel_id = channel_id
        self.snoop_id = snoop_id(channel_id)
        self.ear_id = ear_id(channel_id)
        self.bridge_id = ear_bridge_id(channel_id)
        self._ears: BeepEars | None = None  # acquired while active
        self._asterisk_port: int | None = None
        self.active = False

    def owns(self, channel_id: object) -> bool:
        """Whether an event's channel is one of the listening's (the call ignores their events)."""
        return channel_id in (self.snoop_id, self.ear_id)

    async def start(self, ears: BeepEars, min_ms: int, on_beep: Callable[[], None]) -> None:
        # What an engine that stopped during a beep wait may have left (a resumed call listens again).
        await self._remove()
        self.active = True
        try:
            port = await ears.acquire()
        except OSError as exc:
            self.active = False
            log.warning("call.beep_listening_failed", attempt_id=self.channel_id, error=str(exc))
            return
        self._ears = ears
        try:
            await self.ari.request(
                "POST",
                f"/channels/{self.channel_id}/snoop",
                params={"spy": "in", "whisper": "none", "app": self.ari.app, "snoopId": self.snoop_id},
            )
            ear = await self.ari.request(
                "POST",
                "/channels/externalMedia",
                params={
                    "app": self.ari.app,
                    "channelId": self.ear_id,
                    "external_host": f"127.0.0.1:{port}",
                    "format": "ulaw",
                    "encapsulation": "rtp",
                    "transport": "udp",
                },
            )
            sender = int(((ear or {}).get("channelvars") or {}).get("UNICASTRTP_LOCAL_PORT", 0))
            if not sender:
                raise AriError(500, "POST", "/channels/externalMedia", "no UNICASTRTP_LOCAL_PORT")
            self._asterisk_port = sender
            ears.listen(sender, BeepDetector(min_ms), on_beep)
            await self.ari.create_bridge(self.bridge_id, "mixing")
            await self._join()
        except (AriError, AriUnavailable) as exc:
            log.warning("call.beep_listening_failed", attempt_id=self.channel_id, error=str(exc))
            await self.stop()

    async def _join(self) -> None:
        """Both channels into the bridge. The snoop channel enters our application a moment after its
        POST is answered (Asterisk starts it on a thread of its own): until then, 422."""
        for wait_s in JOIN_RETRIES_S:
            try:
                await self.ari.add_to_bridge(self.bridge_id, [self.snoop_id, self.ear_id])
                return
            except AriUnprocessable:
                await asyncio.sleep(wait_s)
        await self.ari.add_to_bridge(self.bridge_id, [self.snoop_id, self.ear_id])

    async def stop(self) -> None:
        if not self.active:
            return
        self.active = False
        if self._ears is not None:
            if self._asterisk_port is not None:
                self._ears.forget(self._asterisk_port)
            self._ears.release()
            self._ears = None
        self._asterisk_port = None
        await self._remove()

    async def _remove(self) -> None:
        async def quietly(removal: asyncio.Future[bool] | asyncio.Task[bool]) -> None:
            with contextlib.suppress(AriError, AriUnavailable):
                await removal

        await asyncio.gather(
            quietly(asyncio.ensure_future(self.ari.hangup(self.ear_id))),
            quietly(asyncio.ensure_future(self.ari.hangup(self.snoop_id))),
            quietly(asyncio.ensure_future(self.ari.destroy_bridge(self.bridge_id))),
        )
