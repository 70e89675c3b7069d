"""The voicemail beep heard at any frequency (engine/domain/beeptone.py), and the RTP that brings the
callee's audio to it (engine/telephony/beepears.py)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import pytest

from engine.domain.beeptone import BLOCK, ULAW, BeepDetector, measure_block, ulaw_samples
from engine.telephony.ari import AriUnprocessable
from engine.telephony.beepears import BeepEar, BeepEars, ear_bridge_id, ear_id, rtp_payload, snoop_id
from lab import tones

RATE = 8000
MIN_MS = 150  # engine/domain/beepwait.py's BEEP_MIN_MS


def ulaw_encode(sample: int) -> int:
    """G.711 µ-law encoding (the inverse of ULAW, to hear what the line carries)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = 7
    while exponent > 0 and not magnitude & (0x4000 >> (7 - exponent)):
        exponent -= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def over_the_line(samples: Sequence[int]) -> list[int]:
    return ulaw_samples(bytes(ulaw_encode(s) for s in samples))


def noise(seconds: float, rms: float, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [round(rng.gauss(0.0, rms)) for _ in range(int(seconds * RATE))]


def mix(*parts: Sequence[int]) -> list[int]:
    size = max(len(p) for p in parts)
    return [max(-32768, min(32767, sum(p[i] for p in parts if i < len(p)))) for i in range(size)]


def vowel(seconds: float, pitch_hz: float, *, glide: float = 0.1, seed: int = 0) -> list[int]:
    """A sung vowel: a fundamental with harmonics shaped by two formants, its pitch gliding slowly
    (a voice is never a pure, steady tone)."""
    rng = random.Random(seed)
    formants = (rng.uniform(500, 800), rng.uniform(1000, 1800))
    out: list[int] = []
    phase = 0.0
    for n in range(int(seconds * RATE)):
        t = n / RATE
        f0 = pitch_hz * (1 + glide * math.sin(2 * math.pi * 3 * t))
        phase += 2 * math.pi * f0 / RATE
        value = 0.0
        for k in range(1, 20):
            if k * f0 > 3400:
                break
            weight = sum(1.0 / (1.0 + ((k * f0 - f) / 150.0) ** 2) for f in formants) + 0.05
            value += weight * math.sin(k * phase)
        out.append(round(3000 * value))
    return out


def first_beep_at(samples: Sequence[int], min_ms: int = MIN_MS, slice_size: int = 160) -> float | None:
    """When the detector, fed the audio as RTP would (20 ms slices), says a beep was heard (seconds)."""
    detector = BeepDetector(min_ms)
    for start in range(0, len(samples), slice_size):
        if detector.feed(samples[start : start + slice_size]):
            return (start + slice_size) / RATE
    return None


@pytest.mark.parametrize("hz", [400.0, 425.0, 440.0, 800.0, 850.0, 950.0, 1000.0, 1400.0, 2000.0])
@pytest.mark.parametrize("seconds", [0.2, 0.35, 0.5, 1.0])
def test_a_beep_of_any_usual_frequency_and_length_is_heard_while_it_sounds(hz: float, seconds: float) -> None:
    lead = 0.7
    audio = over_the_line(tones.silence(lead) + tones.sine(hz, seconds, 0.3) + tones.silence(2.0))
    heard = first_beep_at(audio)
    assert heard is not None, f"{hz} Hz {seconds} s not heard"
    # Heard once it has lasted MIN_MS (give or take a block at each end), before it ends.
    assert lead + MIN_MS / 1000 <= heard <= lead + MIN_MS / 1000 + 2 * BLOCK / RATE, heard
    assert heard <= lead + seconds + BLOCK / RATE


@pytest.mark.parametrize("hz", [440.0, 1400.0])
def test_a_beep_is_heard_over_line_noise_and_in_odd_slices(hz: float) -> None:
    beep = tones.silence(0.5) + tones.sine(hz, 0.4, 0.2) + tones.silence(1.0)
    audio = over_the_line(mix(beep, noise(len(beep) / RATE, 100.0, seed=int(hz))))  # about -50 dBFS
    assert first_beep_at(audio, slice_size=97) is not None
    detector = BeepDetector(MIN_MS)
    assert detector.feed(audio) is True
    assert detector.heard_hz is not None and abs(detector.heard_hz - hz) < 0.02 * hz


def test_a_beep_is_reported_once() -> None:
    detector = BeepDetector(MIN_MS)
    beep = tones.sine(1000.0, 1.0, 0.3)
    reports = [detector.feed(beep[i : i + 160]) for i in range(0, len(beep), 160)]
    assert reports.count(True) == 1
    assert detector.feed(tones.sine(440.0, 1.0, 0.3)) is False


def test_a_tone_shorter_than_the_minimum_is_not_a_beep() -> None:
    audio = over_the_line(tones.silence(0.3) + tones.sine(1000.0, 0.1, 0.3) + tones.silence(1.0))
    assert first_beep_at(audio) is None


@pytest.mark.parametrize("pitch", [110.0, 180.0, 240.0])
def test_voices_noise_and_silence_are_not_beeps(pitch: float) -> None:
    assert first_beep_at(over_the_line(vowel(2.0, pitch, seed=int(pitch)))) is None
    assert first_beep_at(over_the_line(noise(2.0, 3000.0, seed=1))) is None  # street noise, -20 dBFS
    assert first_beep_at(over_the_line(noise(2.0, 30.0, seed=2))) is None  # hiss
    assert first_beep_at([0] * 16000) is None


def test_a_glide_is_not_a_beep() -> None:
    # A whistle or a siren sweeping through the band: tonal, but at no frequency for 150 ms.
    samples, phase = [], 0.0
    for n in range(16000):
        phase += 2 * math.pi * (500.0 + 1500.0 * n / 16000) / RATE
        samples.append(round(9000 * math.sin(phase)))
    assert first_beep_at(over_the_line(samples)) is None


def test_a_block_says_its_frequency_and_purity() -> None:
    block = measure_block(tones.sine(850.0, BLOCK / RATE, 0.3))
    assert block.tonal and block.hz is not None and abs(block.hz - 850.0) < 5.0 and block.purity > 0.95
    assert not measure_block(vowel(BLOCK / RATE, 150.0)).tonal
    assert not measure_block(tones.sine(100.0, BLOCK / RATE, 0.3)).tonal  # hum, below the band


def test_ulaw_decodes_as_g711_says() -> None:
    assert ULAW[0xFF] == 0 and ULAW[0x7F] == 0
    assert ULAW[0x80] == 32124 and ULAW[0x00] == -32124
    for sample in (-30000, -1000, -5, 0, 7, 999, 12345, 32000):
        assert abs(ULAW[ulaw_encode(sample)] - sample) <= max(4, abs(sample) // 16)


def test_rtp_payload_skips_what_the_header_carries() -> None:
    header = bytes([0x80, 0x00]) + (1).to_bytes(2, "big") + (160).to_bytes(4, "big") + (7).to_bytes(4, "big")
    assert rtp_payload(header + b"\x01\x02") == b"\x01\x02"
    with_csrc = bytes([0x81]) + header[1:] + b"CSRC" + b"\x03"
    assert rtp_payload(with_csrc) == b"\x03"
    extension = b"\xbe\xde" + (1).to_bytes(2, "big") + b"XXXX"
    assert rtp_payload(bytes([0x90]) + header[1:] + extension + b"\x04") == b"\x04"
    assert rtp_payload(bytes([0xA0]) + header[1:] + b"\x05\x00\x00\x03") == b"\x05"
    assert rtp_payload(b"\x00" * 20) is None  # not RTP version 2
    assert rtp_payload(header[:8]) is None


def test_the_listening_channels_have_ids_of_their_own_derived_from_the_call() -> None:
    call = "3f1e4c1a-0000-4000-8000-000000000001"
    ids = {snoop_id(call), ear_id(call), ear_bridge_id(call)}
    assert len(ids) == 3 and call not in ids
    assert snoop_id(call) == snoop_id(call) and snoop_id(call) != snoop_id(call[:-1] + "2")


# --- the listening's life on a fake ARI ------------------------------------------------------------------


class FakeAri:
    """What BeepEar asks of ARI, recorded; the snoop channel enters the application late (422 twice)."""

    app = "vocalcast-test"

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.join_refusals = 2

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None) -> object:
        self.requests.append(f"{method} {path}")
        if path == "/channels/externalMedia":
            return {
                "channelvars": {"UNICASTRTP_LOCAL_ADDRESS": "127.0.0.1", "UNICASTRTP_LOCAL_PORT": "40123"}
            }
        return {}

    async def create_bridge(self, bridge_id: str, bridge_type: str = "mixing") -> object:
        self.requests.append(f"POST /bridges/{bridge_id}")
        return {}

    async def add_to_bridge(self, bridge_id: str, channel_ids: list[str]) -> None:
        self.requests.append(f"addChannel {','.join(channel_ids)}")
        if self.join_refusals:
            self.join_refusals -= 1
            raise AriUnprocessable(422, "POST", "addChannel", "Channel not in Stasis application")

    async def hangup(self, channel_id: str, reason: str = "normal") -> bool:
        self.requests.append(f"hangup {channel_id}")
        return False

    async def destroy_bridge(self, bridge_id: str) -> bool:
        self.requests.append(f"destroy {bridge_id}")
        return False


def rtp(payload: bytes, seq: int) -> bytes:
    return bytes([0x80, 0x00]) + seq.to_bytes(2, "big") + (160 * seq).to_bytes(4, "big") + b"SSRC" + payload


async def test_a_call_listens_until_its_beep_then_lets_go() -> None:
    ari = FakeAri()
    ears = BeepEars()
    call = "3f1e4c1a-0000-4000-8000-000000000001"
    ear = BeepEar(ari, call)  # type: ignore[arg-type]
    beeps: list[str] = []
    await ear.start(ears, MIN_MS, lambda: beeps.append("beep"))
    try:
        assert ear.active and ears.port > 0
        assert ari.requests[-1] == f"addChannel {snoop_id(call)},{ear_id(call)}"  # bridged once it could be
        assert ari.requests.count(f"addChannel {snoop_id(call)},{ear_id(call)}") == 3
        audio = tones.silence(0.2) + tones.sine(440.0, 0.5, 0.3)
        packets = [bytes(ulaw_encode(s) for s in audio[i : i + 160]) for i in range(0, len(audio), 160)]
        for seq, payload in enumerate(packets):
            ears.datagram_received(rtp(payload, seq), ("127.0.0.1", 40999))  # another call's port
        assert beeps == []
        for seq, payload in enumerate(packets):
            ears.datagram_received(rtp(payload, seq), ("127.0.0.1", 40123))
        assert beeps == ["beep"]
    finally:
        await ear.stop()
    assert not ear.active and ears._transport is None  # the last listener gone: the socket closed
    assert {f"hangup {ear_id(call)}", f"hangup {snoop_id(call)}", f"destroy {ear_bridge_id(call)}"} <= set(
        ari.requests[-3:]
    )
