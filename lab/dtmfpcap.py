"""pcap files for SIPp's `<exec play_pcap_audio="file.pcap"/>`: RFC 4733 (RFC 2833) DTMF, G.711 audio,
both in one stream, and in-band DTMF.

How SIPp 3.6.1 replays a pcap (src/prepare_pcap.c, src/send_packets.c): it accepts the Ethernet and
Linux-cooked link types (not raw IP), keeps each UDP payload byte for byte (RTP headers included: seq,
timestamp and SSRC are ours), sends it from its media port to the media address of the remote SDP
(ports are shifted by `dport - lowest dport in the file`, so every packet here uses one port), and paces
packets by the pcap timestamps. One SSRC with strictly increasing seq across the file, and RTP
timestamps that never go back (all packets of one DTMF event share the event's timestamp, RFC 4733),
is what lets Asterisk accept several digits from one file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lab import g711, tones
from lab.rtpcapture import (
    EVENT_DIGITS,
    TELEPHONE_EVENT_PT,
    RtpPacket,
    TelephoneEvent,
    UdpDatagram,
    write_pcap,
)

SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz
PACKET_S = 0.02
PCAP_EPOCH_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z: fixed, so a file's bytes depend only on its content


@dataclass
class RtpPcapBuilder:
    """Build one RTP stream (one SSRC) piece by piece, then write it as a pcap.

    The stream has a sample clock: audio packets carry it as their timestamp and advance it by 160;
    a DTMF event takes the clock as its timestamp and advances it by its own length.
    """

    codec: g711.Codec = "ulaw"
    event_payload_type: int = TELEPHONE_EVENT_PT
    ssrc: int = 0x56434153
    start_seq: int = 1000
    start_timestamp: int = 16000
    src: tuple[str, int] = ("192.0.2.1", 40000)  # rewritten by SIPp
    dst: tuple[str, int] = ("192.0.2.2", 40000)
    _packets: list[tuple[float, RtpPacket]] = field(default_factory=list, init=False)
    _clock: int = field(default=0, init=False)  # samples since the start of the stream

    def _add(
        self, at_samples: int, payload_type: int, timestamp: int, payload: bytes, *, marker: bool
    ) -> None:
        marker = marker or not self._packets  # first packet of the stream starts a talkspurt
        seq = self.start_seq + len(self._packets)
        packet = RtpPacket(
            payload_type, seq, (self.start_timestamp + timestamp) & 0xFFFFFFFF, self.ssrc, payload, marker
        )
        self._packets.append((at_samples / tones.RATE_HZ, packet))

    def audio(self, samples: Sequence[int]) -> RtpPcapBuilder:
        """8 kHz int16 samples as 20 ms G.711 packets (the last one padded with silence)."""
        data = g711.encode(samples, self.codec)
        pad = -len(data) % SAMPLES_PER_PACKET
        data += bytes([g711.silence_byte(self.codec)]) * pad
        payload_type = g711.PAYLOAD_TYPE_OF[self.codec]
        for offset in range(0, len(data), SAMPLES_PER_PACKET):
            self._add(
                self._clock,
                payload_type,
                self._clock,
                data[offset : offset + SAMPLES_PER_PACKET],
                marker=False,
            )
            self._clock += SAMPLES_PER_PACKET
        return self

    def silence(self, seconds: float) -> RtpPcapBuilder:
        """Digital silence as audio packets (keeps the stream going, as a phone does)."""
        packets = round(seconds / PACKET_S)
        return self.audio([0] * (packets * SAMPLES_PER_PACKET))

    def wav(self, path: Path | str) -> RtpPcapBuilder:
        """An 8 kHz mono 16-bit WAV as audio packets (convert other formats with ffmpeg first)."""
        samples, rate_hz = tones.read_wav(path)
        if rate_hz != tones.RATE_HZ:
            raise ValueError(f"{path}: {rate_hz} Hz, expected {tones.RATE_HZ} Hz")
        return self.audio(samples)

    def event(
        self, digit: str, *, tone_s: float = 0.2, volume: int = 10, end_packets: int = 3
    ) -> RtpPcapBuilder:
        """One RFC 4733 key press: an update every 20 ms (marker on the first), then the end packets."""
        code = EVENT_DIGITS.find(digit.upper())
        if len(digit) != 1 or code < 0:
            raise ValueError(f"not a DTMF key: {digit!r}")
        updates = max(1, round(tone_s / PACKET_S))
        start = self._clock
        for index in range(updates):
            duration = SAMPLES_PER_PACKET * (index + 1)
            payload = TelephoneEvent(code, False, volume, duration).to_bytes()
            self._add(
                start + SAMPLES_PER_PACKET * index, self.event_payload_type, start, payload, marker=index == 0
            )
        final = TelephoneEvent(code, True, volume, SAMPLES_PER_PACKET * updates).to_bytes()
        for index in range(end_packets):
            at = start + SAMPLES_PER_PACKET * (updates + index)
            self._add(at, self.event_payload_type, start, final, marker=False)
        self._clock = start + SAMPLES_PER_PACKET * (updates + end_packets)
        return self

    def digits(
        self, digits: str, *, tone_s: float = 0.2, pause_s: float = 0.2, volume: int = 10
    ) -> RtpPcapBuilder:
        """Key presses as RFC 4733 events, with pause_s of silence audio between two keys."""
        for index, digit in enumerate(digits):
            if index:
                self.silence(pause_s)
            self.event(digit, tone_s=tone_s, volume=volume)
        return self

    def inband_digits(
        self, digits: str, *, tone_s: float = 0.1, pause_s: float = 0.1, amplitude: float = 0.25
    ) -> RtpPcapBuilder:
        """Key presses as DTMF tones inside the G.711 audio."""
        return self.audio(tones.dtmf_sequence(digits, tone_s=tone_s, gap_s=pause_s, amplitude=amplitude))

    @property
    def duration_s(self) -> float:
        """Time from the first packet to the end of the last one, i.e. how long SIPp plays the file."""
        return self._clock / tones.RATE_HZ

    @property
    def packets(self) -> list[RtpPacket]:
        return [packet for _, packet in self._packets]

    def datagrams(self) -> list[UdpDatagram]:
        (src_ip, src_port), (dst_ip, dst_port) = self.src, self.dst
        return [
            UdpDatagram(PCAP_EPOCH_S + at_s, src_ip, src_port, dst_ip, dst_port, packet.to_bytes())
            for at_s, packet in self._packets
        ]

    def write(self, path: Path | str) -> Path:
        if not self._packets:
            raise ValueError("no packets to write")
        return write_pcap(path, self.datagrams())


def write_rfc2833_pcap(
    path: Path | str,
    digits: str,
    *,
    lead_silence_s: float = 0.1,
    tone_s: float = 0.2,
    pause_s: float = 0.2,
    event_payload_type: int = TELEPHONE_EVENT_PT,
    codec: g711.Codec = "ulaw",
) -> float:
    """(a) A digit string as RFC 4733 events after lead_silence_s of G.711 silence; returns its duration."""
    builder = RtpPcapBuilder(codec=codec, event_payload_type=event_payload_type)
    builder.silence(lead_silence_s).digits(digits, tone_s=tone_s, pause_s=pause_s)
    builder.write(path)
    return builder.duration_s


def write_audio_pcap(
    path: Path | str, source: Path | str | Sequence[int], *, codec: g711.Codec = "ulaw"
) -> float:
    """(b) An 8 kHz WAV file or sample list as G.711 RTP; returns its duration."""
    builder = RtpPcapBuilder(codec=codec)
    if isinstance(source, Path | str):
        builder.wav(source)
    else:
        builder.audio(source)
    builder.write(path)
    return builder.duration_s


def write_audio_then_digits_pcap(
    path: Path | str,
    source: Path | str | Sequence[int],
    digits: str,
    *,
    codec: g711.Codec = "ulaw",
    gap_s: float = 0.2,
    tone_s: float = 0.2,
    pause_s: float = 0.2,
    event_payload_type: int = TELEPHONE_EVENT_PT,
) -> float:
    """(c) Audio, gap_s of silence, then RFC 4733 digits, in one stream; returns its duration."""
    builder = RtpPcapBuilder(codec=codec, event_payload_type=event_payload_type)
    if isinstance(source, Path | str):
        builder.wav(source)
    else:
        builder.audio(source)
    builder.silence(gap_s).digits(digits, tone_s=tone_s, pause_s=pause_s)
    builder.write(path)
    return builder.duration_s


def write_inband_dtmf_pcap(
    path: Path | str,
    digits: str,
    *,
    codec: g711.Codec = "ulaw",
    lead_silence_s: float = 0.1,
    tone_s: float = 0.1,
    pause_s: float = 0.1,
    amplitude: float = 0.25,
) -> float:
    """(d) DTMF tones carried in the G.711 audio itself; returns its duration."""
    builder = RtpPcapBuilder(codec=codec)
    builder.silence(lead_silence_s).inband_digits(digits, tone_s=tone_s, pause_s=pause_s, amplitude=amplitude)
    builder.silence(lead_silence_s)
    builder.write(path)
    return builder.duration_s
