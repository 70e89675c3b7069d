"""RTP on the wire for tests: packet parsing/building, streams with G.711 decoding and RFC 4733 DTMF,
an asyncio capture on the loopback interface (AF_PACKET, root), and a small pcap writer/reader.

The capture is ready when start() returns, so a test can start it, then trigger the call, with no race.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import socket
import struct
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from lab import g711, tones

TELEPHONE_EVENT_PT = 101
EVENT_DIGITS = "0123456789*#ABCD"  # RFC 4733 event codes 0-15
_RTCP_PT = range(72, 77)  # RTCP packet types 200-204 seen through the RTP header (RFC 5761)

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4  # sll_pkttype of the copy seen on the way out; lo shows every packet twice
_SO_ATTACH_FILTER = 26
_SO_RCVBUFFORCE = 33
_SO_TIMESTAMPNS = 35  # Linux; the ancillary message type has the same value

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228


# --- RTP -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket | None:
        """The RTP packet in a UDP payload, or None when it is not RTP version 2 (or is RTCP)."""
        if len(data) < 12 or data[0] >> 6 != 2:
            return None
        first, second, seq, timestamp, ssrc = struct.unpack_from("!BBHII", data)
        payload_type = second & 0x7F
        if payload_type in _RTCP_PT:
            return None
        offset = 12 + 4 * (first & 0x0F)  # CSRC list
        if first & 0x10:  # header extension: 16-bit profile, 16-bit length in words
            if len(data) < offset + 4:
                return None
            offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
        end = len(data)
        if first & 0x20:  # padding: the last byte says how much
            end -= data[-1]
        if offset > end:
            return None
        return cls(payload_type, seq, timestamp, ssrc, bytes(data[offset:end]), bool(second & 0x80))

    def to_bytes(self) -> bytes:
        return (
            struct.pack(
                "!BBHII",
                0x80,
                (0x80 if self.marker else 0) | self.payload_type,
                self.seq & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc,
            )
            + self.payload
        )


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 payload (4 bytes)."""

    event: int
    end: bool
    volume: int
    duration: int  # in timestamp units (samples at 8 kHz)

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent | None:
        if len(payload) < 4:
            return None
        event, flags, duration = struct.unpack_from("!BBH", payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def to_bytes(self) -> bytes:
        return struct.pack(
            "!BBH", self.event, (0x80 if self.end else 0) | (self.volume & 0x3F), self.duration
        )


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    """A key press sent as RFC 4733 events: all packets sharing one RTP timestamp."""

    digit: str
    timestamp: int
    duration: int  # the largest duration reported, in samples
    ended: bool  # an end packet (E bit) arrived
    end_packets: int
    marker: bool  # the first packet carried the marker bit
    first_seq: int
    packets: int
    first_time_s: float
    last_time_s: float


class UdpDatagram(NamedTuple):
    time_s: float
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    payload: bytes


class StreamKey(NamedTuple):
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    ssrc: int


def _unwrap_seq(previous: int | None, seq: int) -> int:
    if previous is None:
        return seq
    delta = (seq - previous) & 0xFFFF
    if delta >= 0x8000:
        delta -= 0x10000
    return previous + delta


@dataclass
class RtpStream:
    """Packets of one SSRC from one address to another, in arrival order."""

    key: StreamKey
    event_payload_types: frozenset[int] = frozenset({TELEPHONE_EVENT_PT})
    packets: list[tuple[float, int, RtpPacket]] = field(default_factory=list)  # (time_s, ext_seq, packet)

    def add(self, time_s: float, packet: RtpPacket) -> None:
        previous = self.packets[-1][1] if self.packets else None
        self.packets.append((time_s, _unwrap_seq(previous, packet.seq), packet))

    @property
    def payload_types(self) -> set[int]:
        return {p.payload_type for _, _, p in self.packets}

    def seqs(self) -> list[int]:
        """Sequence numbers in arrival order (16-bit, as on the wire)."""
        return [p.seq for _, _, p in self.packets]

    def in_seq_order(self) -> list[RtpPacket]:
        """Packets ordered by (unwrapped) sequence number, duplicates dropped."""
        seen: dict[int, RtpPacket] = {}
        for _, ext_seq, packet in self.packets:
            seen.setdefault(ext_seq, packet)
        return [seen[s] for s in sorted(seen)]

    def _audio(self) -> list[tuple[int, RtpPacket]]:
        seen: dict[int, RtpPacket] = {}
        for _, ext_seq, packet in self.packets:
            if packet.payload_type in g711.PAYLOAD_TYPES:
                seen.setdefault(ext_seq, packet)
        return [(s, seen[s]) for s in sorted(seen)]

    def decoded_samples(self, *, timing: str = "seq", max_gap_s: float = 5.0) -> array[int]:
        """G.711 audio (PT 0 and 8) decoded to int16 samples.

        timing="seq": payloads concatenated in sequence order; sequence numbers missing from the
        stream (lost packets, not telephone-event ones) become silence of the previous packet's size.
        timing="timestamp": each payload placed at its RTP timestamp, so pauses in sending (DTMF
        events, silence suppression) become silence; a jump above max_gap_s counts as a discontinuity.
        """
        audio = self._audio()
        out = array("h")
        if not audio:
            return out
        all_seqs = {ext for _, ext, _ in self.packets}
        if timing == "seq":
            previous_seq, previous_len = audio[0][0] - 1, len(audio[0][1].payload)
            for ext_seq, packet in audio:
                missing = sum(1 for s in range(previous_seq + 1, ext_seq) if s not in all_seqs)
                out.frombytes(bytes(2 * previous_len * missing))
                out += g711.decode(packet.payload, g711.PAYLOAD_TYPES[packet.payload_type])
                previous_seq, previous_len = ext_seq, len(packet.payload)
            return out
        if timing != "timestamp":
            raise ValueError(f"timing must be 'seq' or 'timestamp', not {timing!r}")
        max_gap = round(max_gap_s * 8000)
        position = 0  # where the next payload is written
        expected_ts = audio[0][1].timestamp
        for _, packet in audio:
            gap = (packet.timestamp - expected_ts) & 0xFFFFFFFF
            if gap >= 0x80000000:  # earlier than expected (reordering or a reset): overwrite in place
                gap -= 0x100000000
            if abs(gap) > max_gap:
                gap = 0
            position = max(0, position + gap)
            samples = g711.decode(packet.payload, g711.PAYLOAD_TYPES[packet.payload_type])
            if position > len(out):
                out.frombytes(bytes(2 * (position - len(out))))
            out[position : position + len(samples)] = samples
            position += len(samples)
            expected_ts = (packet.timestamp + len(samples)) & 0xFFFFFFFF
        return out

    def dtmf_events(self) -> list[DtmfEvent]:
        """RFC 4733 key presses (event codes 0-15), in sequence order."""
        groups: dict[int, list[tuple[float, int, RtpPacket, TelephoneEvent]]] = {}  # by RTP timestamp
        for time_s, ext_seq, packet in self.packets:
            if packet.payload_type not in self.event_payload_types:
                continue
            event = TelephoneEvent.parse(packet.payload)
            if event is None or event.event >= len(EVENT_DIGITS):
                continue
            groups.setdefault(packet.timestamp, []).append((time_s, ext_seq, packet, event))
        result = []
        for entries in groups.values():
            entries.sort(key=lambda e: e[1])
            result.append(
                (
                    entries[0][1],
                    DtmfEvent(
                        digit=EVENT_DIGITS[entries[0][3].event],
                        timestamp=entries[0][2].timestamp,
                        duration=max(e[3].duration for e in entries),
                        ended=any(e[3].end for e in entries),
                        end_packets=sum(1 for e in entries if e[3].end),
                        marker=entries[0][2].marker,
                        first_seq=entries[0][2].seq,
                        packets=len(entries),
                        first_time_s=min(e[0] for e in entries),
                        last_time_s=max(e[0] for e in entries),
                    ),
                )
            )
        return [event for _, event in sorted(result, key=lambda r: r[0])]

    def dtmf_digits(self) -> str:
        return "".join(event.digit for event in self.dtmf_events())

    @property
    def first_time_s(self) -> float:
        return self.packets[0][0] if self.packets else 0.0


def streams_from_datagrams(
    datagrams: Iterable[UdpDatagram], *, event_payload_types: Iterable[int] = (TELEPHONE_EVENT_PT,)
) -> list[RtpStream]:
    """Group the RTP datagrams into streams keyed by (src ip, src port, dst ip, dst port, ssrc)."""
    events = frozenset(event_payload_types)
    streams: dict[StreamKey, RtpStream] = {}
    for datagram in datagrams:
        _add_to_streams(streams, datagram, events)
    return list(streams.values())


def _add_to_streams(
    streams: dict[StreamKey, RtpStream], datagram: UdpDatagram, events: frozenset[int]
) -> None:
    packet = RtpPacket.parse(datagram.payload)
    if packet is None:
        return
    key = StreamKey(datagram.src_ip, datagram.src_port, datagram.dst_ip, datagram.dst_port, packet.ssrc)
    stream = streams.get(key)
    if stream is None:
        stream = streams[key] = RtpStream(key, events)
    stream.add(datagram.time_s, packet)


def samples_to(streams: Iterable[RtpStream], dst_port: int, *, timing: str = "seq") -> array[int]:
    """Audio of every stream sent to dst_port, streams concatenated in order of their first packet
    (Asterisk may change SSRC when the source changes, e.g. from a playback to a bridge)."""
    out = array("h")
    for stream in sorted((s for s in streams if s.key.dst_port == dst_port), key=lambda s: s.first_time_s):
        out += stream.decoded_samples(timing=timing)
    return out


# --- IPv4/UDP framing and pcap files ---------------------------------------------------------------


def _ip_checksum(header: bytes) -> int:
    total = int(sum(struct.unpack(f"!{len(header) // 2}H", header)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_udp_packet(datagram: UdpDatagram, *, ident: int = 0) -> bytes:
    """An IPv4 packet carrying the datagram (UDP checksum 0 = not computed, allowed over IPv4)."""
    udp = struct.pack("!HHHH", datagram.src_port, datagram.dst_port, 8 + len(datagram.payload), 0)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp) + len(datagram.payload),
        ident & 0xFFFF,
        0x4000,  # don't fragment
        64,
        socket.IPPROTO_UDP,
        0,
        socket.inet_aton(datagram.src_ip),
        socket.inet_aton(datagram.dst_ip),
    )
    header = header[:10] + struct.pack("!H", _ip_checksum(header)) + header[12:]
    return header + udp + datagram.payload


def parse_ipv4_udp(packet: bytes, time_s: float) -> UdpDatagram | None:
    """The UDP datagram in an IPv4 packet, or None (not IPv4/UDP, a fragment, or truncated)."""
    if len(packet) < 28 or packet[0] >> 4 != 4 or packet[9] != socket.IPPROTO_UDP:
        return None
    if struct.unpack_from("!H", packet, 6)[0] & 0x3FFF:  # more-fragments flag or an offset
        return None
    header_len = 4 * (packet[0] & 0x0F)
    total_len = struct.unpack_from("!H", packet, 2)[0]
    src_port, dst_port, udp_len = struct.unpack_from("!HHH", packet, header_len)
    end = min(len(packet), total_len, header_len + udp_len)
    return UdpDatagram(
        time_s,
        socket.inet_ntoa(packet[12:16]),
        src_port,
        socket.inet_ntoa(packet[16:20]),
        dst_port,
        bytes(packet[header_len + 8 : end]),
    )


_ETHERNET_HEADER = bytes(6) + bytes(6) + struct.pack("!H", ETH_P_IP)  # zero MACs, as lo shows them


def write_pcap(path: Path | str, datagrams: Iterable[UdpDatagram]) -> Path:
    """Classic pcap (microseconds, Ethernet link type: the one SIPp 3.6 replays, read by tshark)."""
    path = Path(path)
    chunks = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET)]
    for ident, datagram in enumerate(datagrams):
        frame = _ETHERNET_HEADER + ipv4_udp_packet(datagram, ident=ident)
        seconds = int(datagram.time_s)
        micros = round((datagram.time_s - seconds) * 1_000_000)
        if micros >= 1_000_000:
            seconds, micros = seconds + 1, micros - 1_000_000
        chunks.append(struct.pack("<IIII", seconds, micros, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(chunks))
    return path


def _network_offset(linktype: int, frame: bytes) -> int | None:
    if linktype == LINKTYPE_ETHERNET:
        offset, ethertype = 12, struct.unpack_from("!H", frame, 12)[0]
        while ethertype == 0x8100:  # 802.1Q VLAN tags
            offset += 4
            ethertype = struct.unpack_from("!H", frame, offset)[0]
        return offset + 2 if ethertype == ETH_P_IP else None
    if linktype == LINKTYPE_LINUX_SLL:
        return 16 if struct.unpack_from("!H", frame, 14)[0] == ETH_P_IP else None
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4):
        return 0
    if linktype == LINKTYPE_NULL:
        return 4
    raise ValueError(f"unsupported pcap link type {linktype}")


def read_pcap(path: Path | str) -> list[UdpDatagram]:
    """IPv4/UDP datagrams of a classic pcap file (either byte order, µs or ns timestamps)."""
    data = Path(path).read_bytes()
    magic = data[:4]
    formats = {
        b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
        b"\xa1\xb2\xc3\xd4": (">", 1e-6),
        b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
        b"\xa1\xb2\x3c\x4d": (">", 1e-9),
    }
    if magic not in formats:
        raise ValueError(f"{path}: not a classic pcap file (pcapng is not supported)")
    order, unit = formats[magic]
    linktype = struct.unpack_from(f"{order}I", data, 20)[0] & 0x0FFFFFFF
    offset = 24
    datagrams = []
    while offset + 16 <= len(data):
        seconds, fraction, caplen, _ = struct.unpack_from(f"{order}IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + caplen]
        offset += 16 + caplen
        start = _network_offset(linktype, frame)
        if start is None:
            continue
        datagram = parse_ipv4_udp(frame[start:], seconds + fraction * unit)
        if datagram is not None:
            datagrams.append(datagram)
    return datagrams


# --- live capture ----------------------------------------------------------------------------------


def _udp_port_filter(ports: Sequence[int]) -> bytes:
    """Classic BPF for SOCK_DGRAM packet sockets (data starts at the IP header): unfragmented UDP
    with a source or destination port in `ports`. Keeps Python from waking up for other traffic."""
    accept, drop = 0xFFFFFFFF, 0
    prog: list[tuple[int, int, int, int]] = []
    count = len(ports)
    # Layout: 0 ldb proto, 1 jeq udp, 2 ldh frag, 3 jset, 4 ldxb hdrlen, 5 ldh src, 6.. jeq ports,
    # then ldh dst, jeq ports, then ret drop, ret accept.
    total = 5 + 1 + count + 1 + count + 2
    drop_at, accept_at = total - 2, total - 1

    def jump(at: int, target: int) -> int:
        return target - at - 1

    prog.append((0x30, 0, 0, 9))  # ldb [9]
    prog.append((0x15, 0, jump(1, drop_at), socket.IPPROTO_UDP))  # jeq #17
    prog.append((0x28, 0, 0, 6))  # ldh [6]
    prog.append((0x45, jump(3, drop_at), 0, 0x3FFF))  # jset #0x3fff -> fragment
    prog.append((0xB1, 0, 0, 0))  # ldxb 4*([0]&0xf)
    for port_offset in (0, 2):
        prog.append((0x48, 0, 0, port_offset))  # ldh [x+off]
        for port in ports:
            at = len(prog)
            prog.append((0x15, jump(at, accept_at), 0, port))
    prog.append((0x06, 0, 0, drop))
    prog.append((0x06, 0, 0, accept))
    return b"".join(struct.pack("HBBI", *insn) for insn in prog)


class RtpCapture:
    """Capture of UDP traffic to or from some ports on one interface (default lo), as RTP streams.

    Needs root (AF_PACKET). Use `start()` (synchronous: the socket is bound and filtering when it
    returns) then `stop()`, or `async with RtpCapture(ports) as capture:`.
    """

    def __init__(
        self,
        ports: Iterable[int],
        *,
        interface: str = "lo",
        event_payload_types: Iterable[int] = (TELEPHONE_EVENT_PT,),
        rcvbuf_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.ports = frozenset(ports)
        if not self.ports:
            raise ValueError("RtpCapture needs at least one UDP port")
        self.interface = interface
        self.event_payload_types = frozenset(event_payload_types)
        self.datagrams: list[UdpDatagram] = []  # every UDP datagram on the ports, RTP or not
        self._streams: dict[StreamKey, RtpStream] = {}
        self._rcvbuf_bytes = rcvbuf_bytes
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()

    def start(self) -> None:
        if self._sock is not None:
            raise RuntimeError("capture already started")
        self._loop = asyncio.get_running_loop()
        # Protocol 0 receives nothing until bind(), so the filter is in place before the first packet.
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
        try:
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, self._rcvbuf_bytes)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf_bytes)
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            ports = sorted(self.ports)
            if len(ports) <= 100:  # BPF jump offsets are 8-bit
                program = _udp_port_filter(ports)
                buffer = ctypes.create_string_buffer(program)
                fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buffer))
                sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
            sock.bind((self.interface, ETH_P_IP))
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._loop.add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        cmsg_size = socket.CMSG_SPACE(16)
        got = False
        while True:
            try:
                data, ancdata, _, address = sock.recvmsg(65535, cmsg_size)
            except (BlockingIOError, InterruptedError):
                break
            if address[2] == PACKET_OUTGOING:
                continue
            time_s = time.time()
            for level, kind, value in ancdata:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= 16:
                    seconds, nanos = struct.unpack_from("qq", value)
                    time_s = seconds + nanos / 1e9
            datagram = parse_ipv4_udp(data, time_s)
            if datagram is None or not ({datagram.src_port, datagram.dst_port} & self.ports):
                continue
            self.datagrams.append(datagram)
            _add_to_streams(self._streams, datagram, self.event_payload_types)
            got = True
        if got:
            self._changed.set()

    def stop(self) -> list[RtpStream]:
        """Stop capturing (packets already queued in the socket are read first); returns the streams."""
        if self._sock is not None:
            self._on_readable()
            if self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        return self.streams

    @property
    def running(self) -> bool:
        return self._sock is not None

    @property
    def streams(self) -> list[RtpStream]:
        """RTP streams seen so far, in order of their first packet."""
        return list(self._streams.values())

    def streams_to(self, port: int) -> list[RtpStream]:
        return [s for s in self.streams if s.key.dst_port == port]

    def streams_from(self, port: int) -> list[RtpStream]:
        return [s for s in self.streams if s.key.src_port == port]

    async def wait_for(self, predicate: Callable[[RtpCapture], bool], timeout_s: float) -> None:
        """Wait until predicate(capture) holds, checked as packets arrive (TimeoutError after timeout_s)."""
        async with asyncio.timeout(timeout_s):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    def save_pcap(self, path: Path | str) -> Path:
        """Write what was captured, e.g. as a test artifact for tshark/Wireshark (`-d udp.port==N,rtp`)."""
        return write_pcap(path, self.datagrams)

    async def __aenter__(self) -> RtpCapture:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with contextlib.suppress(OSError):
            self.stop()


def tone_packet_times(streams: Iterable[RtpStream], freq_hz: float) -> list[float]:
    """Arrival times of the audio packets (20 ms each) dominated by freq_hz."""
    times = []
    for stream in streams:
        for time_s, _, packet in stream.packets:
            codec = g711.PAYLOAD_TYPES.get(packet.payload_type)
            if codec is None:
                continue
            powers = tones.frame_powers(g711.decode(packet.payload, codec), freq_hz)
            if powers and powers[0].ratio >= 0.6 and powers[0].level_dbfs >= -45:
                times.append(time_s)
    return sorted(times)
