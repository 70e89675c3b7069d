"""Tests of the media tooling the integration tests rely on: G.711, tone/DTMF detection, RTP capture,
pcap generation for SIPp, and the SIPp runner (a real SIPp caller replaying our pcap to a SIPp callee)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import random
import socket
import subprocess
import sys
import wave
from array import array
from pathlib import Path

import pytest

from lab import dtmfpcap, g711, tones
from lab.rtpcapture import (
    RtpCapture,
    RtpPacket,
    TelephoneEvent,
    UdpDatagram,
    read_pcap,
    samples_to,
    streams_from_datagrams,
)
from lab.sipp import (
    SippError,
    SippProcess,
    count_events,
    free_udp_ports,
    parse_log_line,
    parse_message_trace,
)

REPO = Path(__file__).resolve().parents[2]
SIPP_DIR = REPO / "tests" / "sipp"

ALL_INT16 = array("h", range(-32768, 32768))


def tshark_fields(pcap: Path, *fields: str, options: tuple[str, ...] = ()) -> list[list[str]]:
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(pcap),
            *options,
            "-T",
            "fields",
            "-E",
            "separator=,",
            *[a for f in fields for a in ("-e", f)],
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [line.split(",") for line in out.splitlines()]


# --- G.711 -----------------------------------------------------------------------------------------


def test_g711_matches_the_itu_reference_bit_for_bit() -> None:
    # Digests of CPython's audioop (Sun's ITU-T G.711 reference code) over every input, recorded once.
    assert hashlib.sha256(g711.ulaw_encode(ALL_INT16)).hexdigest() == (
        "81d633c9e6972a18c74a58720b96cb8ca0bdd096d4060b646dd708c3b846019a"
    )
    assert hashlib.sha256(g711.alaw_encode(ALL_INT16)).hexdigest() == (
        "38488f6fd710f4686360edc4d38639f96c491595ef93f8eb8d62d5e07ca6ce7b"
    )
    assert hashlib.sha256(g711.ulaw_decode(bytes(range(256))).tobytes()).hexdigest() == (
        "3dab54339e520bb2c924826e3b72a917a2b612e9fd12fc867500f1d983a75827"
    )
    assert hashlib.sha256(g711.alaw_decode(bytes(range(256))).tobytes()).hexdigest() == (
        "e04788d110e58ff8c70c93b8480190d973e3b67876b6119abbaec766cc75c174"
    )


def test_g711_known_codes() -> None:
    assert list(g711.ulaw_decode(bytes([0x00, 0x80, 0xFF, 0x7F]))) == [-32124, 32124, 0, 0]
    assert list(g711.alaw_decode(bytes([0xD5, 0x55, 0xAA, 0x2A]))) == [8, -8, 32256, -32256]
    assert g711.ulaw_encode([0]) == bytes([g711.ULAW_SILENCE])
    assert g711.alaw_encode([0]) == bytes([g711.ALAW_SILENCE])
    # Out-of-range input is clipped, not wrapped.
    assert g711.ulaw_encode([40000, -40000]) == g711.ulaw_encode([32767, -32768])


@pytest.mark.parametrize("codec", ["ulaw", "alaw"])
def test_g711_round_trips(codec: g711.Codec) -> None:
    codes = bytes(range(256))
    again = g711.encode(g711.decode(codes, codec), codec)
    differing = {code for code, back in zip(codes, again, strict=True) if code != back}
    # µ-law has two zeros (0x7F is -0); everything else survives decode then encode.
    assert differing == ({0x7F} if codec == "ulaw" else set())

    signal = tones.sine(1000, 0.1, 0.8)
    decoded = g711.decode(g711.encode(signal, codec), codec)
    assert len(decoded) == len(signal)
    # Logarithmic quantisation: error within ~6 % of the value plus one small step.
    assert all(abs(a - b) <= 0.065 * abs(a) + 16 for a, b in zip(signal, decoded, strict=True))


@pytest.mark.parametrize(("codec", "ffmpeg_format"), [("ulaw", "mulaw"), ("alaw", "alaw")])
def test_g711_decoding_agrees_with_ffmpeg(tmp_path: Path, codec: g711.Codec, ffmpeg_format: str) -> None:
    raw = tmp_path / "codes.raw"
    raw.write_bytes(bytes(range(256)))
    out = tmp_path / "out.s16"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            ffmpeg_format,
            "-ar",
            "8000",
            "-ac",
            "1",
            "-i",
            str(raw),
            "-f",
            "s16le",
            str(out),
        ],
        check=True,
        timeout=60,
    )
    expected = array("h")
    expected.frombytes(out.read_bytes())
    assert list(g711.decode(bytes(range(256)), codec)) == list(expected)


# --- tones -----------------------------------------------------------------------------------------


def test_goertzel_recurrence_and_frame_scan_agree() -> None:
    frame = tones.mix(tones.sine(697, 0.02, 0.3), tones.sine(1336, 0.02, 0.2))
    for freq in (697, 1000, 1336):
        reference = tones.goertzel_power(frame, freq)
        scanned = tones.frame_powers(frame, freq)[0].power
        assert math.isclose(reference, scanned, rel_tol=1e-6, abs_tol=1e-3)
    pure = tones.frame_powers(tones.sine(1000, 0.02, 0.5), 1000)[0]
    assert pure.ratio == pytest.approx(1.0, abs=1e-6)
    assert pure.level_dbfs == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.05)


def test_tone_segments_find_a_marker_tone_to_the_millisecond() -> None:
    signal = (
        tones.silence(0.013)
        + tones.sine(1000, 1.0, 0.3)
        + tones.silence(0.5)
        + tones.sine(440, 0.5)
        + tones.silence(0.2)
    )
    [(start, end)] = tones.tone_segments(signal, 1000)
    assert start == pytest.approx(0.013, abs=0.002)
    assert end == pytest.approx(1.013, abs=0.002)
    assert tones.tone_duration_s(signal, 1000) == pytest.approx(1.0, abs=0.004)
    [(start_440, end_440)] = tones.tone_segments(signal, 440)
    assert (start_440, end_440) == (pytest.approx(1.513, abs=0.002), pytest.approx(2.013, abs=0.002))


@pytest.mark.parametrize("codec", ["ulaw", "alaw"])
def test_tone_survives_g711(codec: g711.Codec) -> None:
    signal = tones.silence(0.2) + tones.sine(1000, 0.8, 0.1) + tones.silence(0.2)
    decoded = g711.decode(g711.encode(signal, codec), codec)
    assert tones.tone_duration_s(decoded, 1000) == pytest.approx(0.8, abs=0.01)


def test_tone_segments_negative_cases() -> None:
    rng = random.Random(7)
    noise = array("h", (rng.randint(-8000, 8000) for _ in range(8000)))
    assert tones.tone_segments(noise, 1000) == []
    # A neighbouring frequency is not the tone.
    assert tones.tone_segments(tones.sine(1200, 1.0), 1000) == []
    # The tone drowned in a louder other tone does not dominate its frames.
    assert tones.tone_segments(tones.mix(tones.sine(1000, 1.0, 0.1), tones.sine(440, 1.0, 0.5)), 1000) == []
    # Too quiet to count (-60 dBFS).
    assert tones.tone_segments(tones.sine(1000, 1.0, 0.0014), 1000) == []
    assert tones.tone_duration_s(tones.silence(1.0), 1000) == 0.0


def test_dtmf_detection_reads_every_key_even_through_g711() -> None:
    keys = "0123456789*#ABCD"
    signal = tones.silence(0.05) + tones.dtmf_sequence(keys, tone_s=0.06, gap_s=0.05) + tones.silence(0.05)
    assert tones.dtmf_digits(signal) == keys
    for codec in ("ulaw", "alaw"):
        assert tones.dtmf_digits(g711.decode(g711.encode(signal, codec), codec)) == keys  # type: ignore[arg-type]
    found = tones.detect_dtmf(tones.silence(0.3) + tones.dtmf_tone("5", 0.2))
    assert [(t.digit, round(t.start_s, 2), round(t.end_s, 2)) for t in found] == [("5", 0.3, 0.5)]
    # Repeated key with a gap gives two presses.
    assert tones.dtmf_digits(tones.dtmf_sequence("55", tone_s=0.1, gap_s=0.06)) == "55"


def test_dtmf_detection_negative_cases() -> None:
    rng = random.Random(11)
    noise = array("h", (rng.randint(-10000, 10000) for _ in range(3 * 8000)))
    assert tones.dtmf_digits(noise) == ""
    assert tones.dtmf_digits(tones.sine(697, 0.5)) == ""  # a row tone alone is not a key
    assert tones.dtmf_digits(tones.dtmf_tone("1", 0.02)) == ""  # shorter than 40 ms
    prompt = REPO / "sounds" / "fr" / "ivr_welcome.wav"
    if prompt.exists():  # real speech must not trigger the detector
        speech, rate = tones.read_wav(prompt)
        assert rate == 8000
        assert tones.dtmf_digits(speech) == ""
        assert tones.tone_duration_s(speech, 1000) < 0.1


def test_wav_round_trip(tmp_path: Path) -> None:
    signal = tones.sine(440, 0.25, 0.4)
    path = tones.write_wav(tmp_path / "a.wav", signal)
    samples, rate = tones.read_wav(path)
    assert rate == 8000
    assert samples == signal
    stereo = tmp_path / "stereo.wav"
    with wave.open(str(stereo), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(8))
    with pytest.raises(ValueError, match="mono"):
        tones.read_wav(stereo)


# --- RTP parsing and streams -----------------------------------------------------------------------


def test_rtp_packet_round_trip_and_rejects() -> None:
    packet = RtpPacket(8, 65535, 0xFFFFFF00, 0xDEADBEEF, b"\xd5" * 160, marker=True)
    assert RtpPacket.parse(packet.to_bytes()) == packet
    # CSRC, header extension and padding are skipped to reach the payload.
    header = bytes([0xB1, 0x00]) + (5).to_bytes(2, "big") + (160).to_bytes(4, "big") + (7).to_bytes(4, "big")
    csrc = (99).to_bytes(4, "big")
    extension = (0xBEDE).to_bytes(2, "big") + (1).to_bytes(2, "big") + bytes(4)
    parsed = RtpPacket.parse(header + csrc + extension + b"abc" + bytes([0, 2]))
    assert parsed is not None
    assert (parsed.seq, parsed.payload) == (5, b"abc")
    assert RtpPacket.parse(b"hello, not rtp") is None
    assert RtpPacket.parse(bytes([0x80, 200]) + bytes(10)) is None  # RTCP sender report


def _datagrams(packets: list[RtpPacket], dst_port: int = 4000) -> list[UdpDatagram]:
    return [
        UdpDatagram(i * 0.02, "10.0.0.1", 5000, "10.0.0.2", dst_port, p.to_bytes())
        for i, p in enumerate(packets)
    ]


def test_streams_order_by_seq_across_wrap_and_fill_losses() -> None:
    chunks = [g711.ulaw_encode(tones.sine(1000, 0.02, 0.2 + 0.1 * i)) for i in range(5)]
    seqs = [65533, 65534, 65535, 0, 1]
    packets = [RtpPacket(0, s, 160 * i, 42, c) for i, (s, c) in enumerate(zip(seqs, chunks, strict=True))]
    arrival = [packets[0], packets[2], packets[1], packets[4]]  # reordered, seq 0 lost
    [stream] = streams_from_datagrams(_datagrams(arrival))
    assert stream.seqs() == [65533, 65535, 65534, 1]
    samples = stream.decoded_samples()
    assert len(samples) == 5 * 160
    expected = [g711.ulaw_decode(c) for c in chunks]
    assert samples[0:160] == expected[0]
    assert samples[320:480] == expected[2]
    assert samples[480:640] == array("h", bytes(320))  # the lost packet became silence
    assert samples[640:800] == expected[4]


def test_timestamp_timing_places_audio_after_a_sending_pause() -> None:
    chunk = g711.alaw_encode(tones.sine(1000, 0.02, 0.3))
    packets = [RtpPacket(8, 1, 0, 1, chunk), RtpPacket(8, 2, 160, 1, chunk), RtpPacket(8, 3, 800, 1, chunk)]
    [stream] = streams_from_datagrams(_datagrams(packets))
    assert len(stream.decoded_samples()) == 480
    by_time = stream.decoded_samples(timing="timestamp")
    assert len(by_time) == 960
    assert by_time[320:800] == array("h", bytes(960))


def test_telephone_events_become_dtmf_events() -> None:
    builder = (
        dtmfpcap.RtpPcapBuilder(event_payload_type=96).silence(0.04).digits("7*", tone_s=0.1, pause_s=0.06)
    )
    [stream] = streams_from_datagrams(builder.datagrams(), event_payload_types=[96])
    events = stream.dtmf_events()
    assert [e.digit for e in events] == ["7", "*"]
    assert all(e.ended and e.end_packets == 3 and e.marker and e.packets == 8 for e in events)
    assert all(e.duration == 800 for e in events)
    # With the wrong event payload type the same packets are not DTMF.
    [other] = streams_from_datagrams(builder.datagrams())
    assert other.dtmf_digits() == ""


# --- pcap generation -------------------------------------------------------------------------------


def _check_one_monotonic_stream(datagrams: list[UdpDatagram]) -> list[RtpPacket]:
    packets = [RtpPacket.parse(d.payload) for d in datagrams]
    assert all(p is not None for p in packets)
    rtp = [p for p in packets if p is not None]
    assert len({p.ssrc for p in rtp}) == 1
    assert len({(d.src_port, d.dst_port) for d in datagrams}) == 1  # SIPp shifts ports by dport - base
    seqs = [p.seq for p in rtp]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    stamps = [p.timestamp for p in rtp]
    assert stamps == sorted(stamps)
    times = [d.time_s for d in datagrams]
    assert all(b - a == pytest.approx(0.02, abs=1e-5) for a, b in itertools.pairwise(times))
    return rtp


def test_rfc2833_pcap_layout(tmp_path: Path) -> None:
    path = tmp_path / "digits.pcap"
    duration_s = dtmfpcap.write_rfc2833_pcap(path, "123#", pause_s=0.1)
    rtp = _check_one_monotonic_stream(read_pcap(path))
    assert [p.payload_type for p in rtp[:5]] == [0] * 5  # 100 ms of PCMU silence first
    assert all(p.payload == bytes([0xFF]) * 160 for p in rtp[:5])
    events = [p for p in rtp if p.payload_type == 101]
    assert len(events) == 4 * 13  # per digit: 10 updates + 3 end packets
    event_stamps = []
    for index, digit in enumerate("123#"):
        group = events[13 * index : 13 * (index + 1)]
        parsed = [TelephoneEvent.parse(p.payload) for p in group]
        assert all(e is not None and e.event == "0123456789*#".index(digit) for e in parsed)
        assert [p.marker for p in group] == [True] + [False] * 12
        assert len({p.timestamp for p in group}) == 1
        assert [e.duration for e in parsed if e] == [160 * i for i in range(1, 11)] + [1600] * 3
        assert [e.end for e in parsed if e] == [False] * 10 + [True] * 3
        event_stamps.append(group[0].timestamp)
    assert event_stamps == sorted(set(event_stamps))  # strictly increasing from digit to digit
    [stream] = streams_from_datagrams(read_pcap(path))
    assert stream.dtmf_digits() == "123#"
    assert duration_s == pytest.approx(0.1 + 4 * 0.26 + 3 * 0.1)


def test_audio_pcap_from_wav_and_samples(tmp_path: Path) -> None:
    wav = tones.write_wav(
        tmp_path / "tone.wav", tones.silence(0.1) + tones.sine(1000, 0.5, 0.3) + tones.silence(0.015)
    )
    for codec, payload_type in (("ulaw", 0), ("alaw", 8)):
        path = tmp_path / f"audio-{codec}.pcap"
        duration_s = dtmfpcap.write_audio_pcap(path, wav, codec=codec)  # type: ignore[arg-type]
        assert duration_s == pytest.approx(0.62)  # 615 ms padded to whole 20 ms packets
        rtp = _check_one_monotonic_stream(read_pcap(path))
        assert {p.payload_type for p in rtp} == {payload_type}
        assert all(len(p.payload) == 160 for p in rtp)
        [stream] = streams_from_datagrams(read_pcap(path))
        assert tones.tone_duration_s(stream.decoded_samples(), 1000) == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="16000 Hz"):
        dtmfpcap.write_audio_pcap(
            tmp_path / "x.pcap", tones.write_wav(tmp_path / "w16.wav", [0] * 320, 16000)
        )


def test_audio_then_digits_pcap_is_one_continuous_stream(tmp_path: Path) -> None:
    path = tmp_path / "both.pcap"
    dtmfpcap.write_audio_then_digits_pcap(path, tones.sine(1000, 0.4, 0.3), "42#", codec="alaw")
    rtp = _check_one_monotonic_stream(read_pcap(path))
    audio = [p for p in rtp if p.payload_type == 8]
    assert [b.timestamp - a.timestamp for a, b in itertools.pairwise(audio)][:29] == [160] * 29
    [stream] = streams_from_datagrams(read_pcap(path))
    assert stream.dtmf_digits() == "42#"
    assert tones.tone_duration_s(stream.decoded_samples(), 1000) == pytest.approx(0.4, abs=0.01)


def test_inband_dtmf_pcap(tmp_path: Path) -> None:
    path = tmp_path / "inband.pcap"
    dtmfpcap.write_inband_dtmf_pcap(path, "0*9#")
    rtp = _check_one_monotonic_stream(read_pcap(path))
    assert {p.payload_type for p in rtp} == {0}
    [stream] = streams_from_datagrams(read_pcap(path))
    assert stream.dtmf_digits() == ""  # nothing out of band
    assert tones.dtmf_digits(stream.decoded_samples()) == "0*9#"


def test_pcap_bytes_are_reproducible(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    dtmfpcap.write_rfc2833_pcap(a, "12")
    dtmfpcap.write_rfc2833_pcap(b, "12")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes()[20:24] == (1).to_bytes(4, "little")  # Ethernet link type: SIPp 3.6 accepts it


def test_tshark_reads_generated_pcaps(tmp_path: Path) -> None:
    digits = tmp_path / "digits.pcap"
    dtmfpcap.write_audio_then_digits_pcap(digits, tones.sine(1000, 0.1), "9*")
    rows = tshark_fields(
        digits,
        "rtp.seq",
        "rtp.p_type",
        "rtpevent.event_id",
        "rtpevent.end_of_event",
        options=("-d", "udp.port==40000,rtp"),
    )
    assert len(rows) == len(read_pcap(digits))
    seqs = [int(r[0]) for r in rows]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    ends = [(r[2], r[3]) for r in rows if r[1] == "101" and r[3] == "1"]
    assert ends == [("9", "1")] * 3 + [("10", "1")] * 3


# --- live capture on lo ----------------------------------------------------------------------------


def _receive(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    return sock.recv(2048)


async def test_capture_sees_each_loopback_packet_once(tmp_path: Path) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    port, other_port, sender_port = receiver.getsockname()[1], other.getsockname()[1], sender.getsockname()[1]
    chunks = [g711.ulaw_encode(tones.sine(1000, 0.02, 0.3)) for _ in range(3)]
    try:
        capture = RtpCapture([port])
        capture.start()  # synchronous: packets sent right after are seen
        for i, chunk in enumerate(chunks):
            sender.sendto(RtpPacket(0, 10 + i, 160 * i, 77, chunk).to_bytes(), ("127.0.0.1", port))
        sender.sendto(RtpPacket(0, 1, 0, 78, chunks[0]).to_bytes(), ("127.0.0.1", other_port))
        sender.sendto(b"not rtp", ("127.0.0.1", port))
        # Sent last: on loopback everything sent before it (a duplicate copy of a packet, the other
        # port's packet) reaches the capture before it, so once it is seen nothing else can come.
        sender.sendto(b"last", ("127.0.0.1", port))
        await capture.wait_for(lambda c: any(d.payload == b"last" for d in c.datagrams), timeout_s=5)
        # And the kernel delivered every datagram, the one to the other port included.
        assert [_receive(receiver) for _ in range(5)][-1] == b"last"
        assert RtpPacket.parse(_receive(other)) == RtpPacket(0, 1, 0, 78, chunks[0])
        streams = capture.stop()
    finally:
        for sock in (receiver, other, sender):
            sock.close()
    # One copy of each, in order, the other port's packet filtered out.
    assert [d.payload for d in capture.datagrams] == [
        *(RtpPacket(0, 10 + i, 160 * i, 77, chunk).to_bytes() for i, chunk in enumerate(chunks)),
        b"not rtp",
        b"last",
    ]
    [stream] = streams
    assert stream.key == ("127.0.0.1", sender_port, "127.0.0.1", port, 77)
    assert stream.seqs() == [10, 11, 12]
    assert stream.decoded_samples() == g711.ulaw_decode(b"".join(chunks))
    saved = capture.save_pcap(tmp_path / "capture.pcap")
    assert [d.payload for d in read_pcap(saved)] == [d.payload for d in capture.datagrams]
    rows = tshark_fields(saved, "udp.dstport", "rtp.seq", options=("-d", f"udp.port=={port},rtp"))
    assert rows == [[str(port), "10"], [str(port), "11"], [str(port), "12"], [str(port), ""], [str(port), ""]]


# --- SIPp --------------------------------------------------------------------------------------------


def test_log_line_and_message_trace_parsing() -> None:
    assert parse_log_line('event=INVITE number=100 reason="Q.850;cause=16" empty=') == {
        "event": "INVITE",
        "number": "100",
        "reason": "Q.850;cause=16",
        "empty": "",
    }
    trace = (
        "----------------------------------------------- 2026-11-25 13:57:44.510568\n"
        "UDP message received [100] bytes :\n\n"
        "INVITE sip:100@127.0.0.1:29060 SIP/2.0\r\nCall-ID: abc\r\nPrivacy: id\r\n"
        "P-Asserted-Identity: <sip:+33172360170@example.net>\r\nContent-Length: 3\r\n\r\nv=0\n\n"
        "----------------------------------------------- 2026-11-25 13:57:44.510762\n"
        "UDP message sent (50 bytes):\n\n"
        "SIP/2.0 486 Busy Here\r\nCall-ID: abc\r\nContent-Length: 0\r\n\r\n\n"
    )
    invite, busy = parse_message_trace(trace)
    assert (invite.direction, invite.method, invite.status, invite.call_id) == (
        "received",
        "INVITE",
        None,
        "abc",
    )
    assert invite.header("privacy") == "id"
    assert invite.header("P-Asserted-Identity") == "<sip:+33172360170@example.net>"
    assert invite.body == "v=0"
    assert (busy.direction, busy.method, busy.status) == ("sent", None, 486)


def test_free_udp_ports_skips_held_ones() -> None:
    held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        first = free_udp_ports(1, span=3)[0]
        held.bind(("127.0.0.1", first + 2))
        again = free_udp_ports(2, span=3)
        assert all(not (p <= first + 2 < p + 3) for p in again)
        assert all(p >= 29000 and p + 2 <= 29999 for p in again)
    finally:
        held.close()


async def test_sipp_start_fails_clearly_on_a_busy_port(tmp_path: Path) -> None:
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port = free_udp_ports(1)[0]
    busy.bind(("127.0.0.1", port))
    try:
        uas = SippProcess(SIPP_DIR / "media_uas_answer.xml", local_port=port, workdir=tmp_path)
        with pytest.raises(SippError, match="exited"):
            await uas.start()
    finally:
        busy.close()


async def test_sipp_idle_uas_stops_on_request(tmp_path: Path) -> None:
    sip_port, media_port = free_udp_ports(1)[0], free_udp_ports(1, span=3, first=29500)[0]
    uas = SippProcess(
        SIPP_DIR / "media_uas_answer.xml", local_port=sip_port, media_port=media_port, workdir=tmp_path
    )
    await uas.start()
    assert uas.pid is not None
    rc = await uas.stop()
    assert uas.returncode == rc
    assert not await asyncio.to_thread(Path(f"/proc/{uas.pid}").exists)
    assert uas.log_events() == []


async def test_sipp_replays_our_pcap_and_the_capture_sees_it(tmp_path: Path) -> None:
    """A SIPp caller plays audio + RFC 4733 digits from our pcap after ACK; a SIPp callee answers; our
    capture on the callee's media port sees every packet once, in order, with the digits and the tone."""
    sip_ports = free_udp_ports(2)
    media_ports = free_udp_ports(2, span=3, first=29400)
    pcap = tmp_path / "media.pcap"
    duration_s = dtmfpcap.write_audio_then_digits_pcap(
        pcap, tones.sine(1000, 0.3, 0.3), "1*#", tone_s=0.1, pause_s=0.06
    )
    sent = read_pcap(pcap)

    uas = SippProcess(
        SIPP_DIR / "media_uas_answer.xml",
        local_port=sip_ports[0],
        media_port=media_ports[0],
        calls=1,
        recv_timeout_ms=15000,
        workdir=tmp_path,
        name="uas",
    )
    uac = SippProcess(
        SIPP_DIR / "media_uac_pcap.xml",
        local_port=sip_ports[1],
        media_port=media_ports[1],
        remote=f"127.0.0.1:{sip_ports[0]}",
        service="555",
        calls=1,
        pause_ms=round(duration_s * 1000) + 300,
        recv_timeout_ms=15000,
        keys={"pcap": str(pcap)},
        workdir=tmp_path,
        name="uac",
    )
    # The capture starts (synchronously) before the caller exists, so no packet can be missed.
    async with uas, RtpCapture([media_ports[0]]) as capture:
        async with uac:
            assert await uac.wait(timeout_s=30) == 0, uac.diagnostics()
        assert await uas.wait(timeout_s=10) == 0, uas.diagnostics()
        await capture.wait_for(lambda c: len(c.datagrams) >= len(sent), timeout_s=5)
        capture.save_pcap(tmp_path / "seen.pcap")  # kept in tmp_path for post-mortems
        streams = capture.stop()

    [stream] = streams
    assert stream.key.dst_port == media_ports[0]
    assert stream.key.src_port == media_ports[1]  # SIPp sends from its own media port
    wire = [p.to_bytes() for p in stream.in_seq_order()]
    assert wire == [d.payload for d in sent]  # RTP replayed byte for byte
    seqs = stream.seqs()
    assert all(b == a + 1 for a, b in itertools.pairwise(seqs))  # arrived in order, none lost
    assert stream.dtmf_digits() == "1*#"
    assert tones.tone_duration_s(samples_to(streams, media_ports[0]), 1000) == pytest.approx(0.3, abs=0.02)

    assert count_events(uas.log_events(), event="INVITE", number="555") == 1
    assert [e["event"] for e in uas.log_events()] == ["INVITE", "ACK", "BYE"]
    assert [e["event"] for e in uac.log_events()] == ["ANSWERED", "PLAY", "BYE_OK"]
    assert uac.call_counts() == (1, 0)
    methods = [(m.direction, m.method or m.status) for m in uas.messages()]
    assert methods == [
        ("received", "INVITE"),
        ("sent", 200),
        ("received", "ACK"),
        ("received", "BYE"),
        ("sent", 200),
    ]
    answer = uas.messages()[1]
    assert f"m=audio {media_ports[0]} RTP/AVP 0 8 101" in answer.body


# --- generated prompts -----------------------------------------------------------------------------


def _sounds_generator():  # sounds/ is not a package: load the script as a module
    import importlib.util

    spec = importlib.util.spec_from_file_location("sounds_generate", REPO / "sounds" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_number_composition_follows_french_rules() -> None:
    generate = _sounds_generator()
    assert generate.french_number(21) == "vingt et un"
    assert generate.french_number(71) == "soixante et onze"
    assert generate.french_number(80) == "quatre-vingts"
    assert generate.french_number(81) == "quatre-vingt-un"
    assert generate.french_number(97) == "quatre-vingt-dix-sept"
    assert generate.number_prompts(32) == ["num_32"]
    assert generate.number_prompts(100) == ["num_100"]
    assert generate.number_prompts(200) == ["num_2", "num_cents"]
    assert generate.number_prompts(232) == ["num_2", "num_100", "num_32"]
    assert generate.number_prompts(1001) == ["num_1000", "num_1"]
    assert generate.number_prompts(200_000) == ["num_2", "num_100", "num_1000"]


def test_every_prompt_exists_in_the_three_formats() -> None:
    generate = _sounds_generator()
    names = generate.load_prompts(REPO / "sounds" / "prompts.toml").keys() | generate.number_texts().keys()
    assert "greeting_default" in names
    assert "num_99" in names
    fr = REPO / "sounds" / "fr"
    for name in sorted(names):
        samples, rate = tones.read_wav(fr / f"{name}.wav")
        assert rate == 8000, name
        alaw = (fr / f"{name}.alaw").read_bytes()
        ulaw = (fr / f"{name}.ulaw").read_bytes()
        assert len(alaw) == len(ulaw) == len(samples), name
        assert -30 < tones.rms_dbfs(g711.alaw_decode(alaw)) < -10, name  # speech, not silence or clipping
        assert max(abs(s) for s in samples) < 32767 * 10 ** (-1 / 20), name  # sample peak under -1 dBFS
