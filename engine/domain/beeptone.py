"""The voicemail beep, at whatever frequency the machine uses: a steady pure tone heard in the callee's audio.

Asterisk's TONE_DETECT watches one frequency per channel; voicemail beeps use many (400, 425, 440, 800,
850, 1000, 1400 Hz...). This detector needs no frequency: every 20 ms block, it estimates the block's
frequency from its zero crossings, measures by Goertzel how much of the block's energy sits at that
frequency, and calls the block tonal when nearly all of it does. A beep is a run of tonal blocks at one
frequency for at least ``min_ms``. Speech is never that pure for that long: a voice has harmonics and
formants, and its pitch moves. Samples are 16-bit signed integers at 8 kHz (what telephony carries).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

RATE_HZ: Final = 8000
BLOCK: Final = 160  # 20 ms
LOW_HZ: Final = 250.0  # below: mains hum, a voice's fundamental; telephony passes 300-3400 Hz
HIGH_HZ: Final = 3000.0
# Share of the block's energy at its own frequency: a pure tone gives about 1 (line noise and µ-law lower
# it a little); vowels stay far below (their energy is spread over harmonics).
PURITY: Final = 0.85
# The run's blocks keep the frequency of its first within this share (a beep does not glide).
DRIFT: Final = 0.03
# Quieter than this (RMS, about -50 dBFS) is silence or line noise, whatever its shape.
MIN_RMS: Final = 100.0


@dataclass(frozen=True, slots=True)
class Block:
    """What one 20 ms block is: its RMS, its frequency (None: no usable zero crossings) and purity."""

    rms: float
    hz: float | None
    purity: float

    @property
    def tonal(self) -> bool:
        return (
            self.rms >= MIN_RMS
            and self.hz is not None
            and LOW_HZ <= self.hz <= HIGH_HZ
            and self.purity >= PURITY
        )


def measure_block(samples: Sequence[int]) -> Block:
    """The RMS, the zero-crossing frequency and the share of energy at that frequency of one block."""
    size = len(samples)
    energy = float(sum(s * s for s in samples))
    rms = math.sqrt(energy / size) if size else 0.0
    hz = _zero_crossing_hz(samples)
    if hz is None or energy == 0.0:
        return Block(rms, hz, 0.0)
    # |X(f)|² by Goertzel at the estimated frequency (not a bin centre: the recurrence does not need one).
    coeff = 2.0 * math.cos(2.0 * math.pi * hz / RATE_HZ)
    s1 = s2 = 0.0
    for sample in samples:
        s1, s2 = sample + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    # A sine of amplitude A over N samples: energy N·A²/2, |X|² about (N·A/2)²; so this is about 1.
    return Block(rms, hz, 2.0 * power / (size * energy))


def _zero_crossing_hz(samples: Sequence[int]) -> float | None:
    """The frequency from the first to the last zero crossing, crossings placed by linear interpolation."""
    first = last = None
    count = 0
    previous = samples[0] if samples else 0
    for index in range(1, len(samples)):
        current = samples[index]
        if (previous < 0) != (current < 0):
            where = index - 1 + previous / (previous - current) if previous != current else float(index)
            if first is None:
                first = where
            last = where
            count += 1
        previous = current
    if first is None or last is None or count < 3 or last <= first:
        return None
    return (count - 1) / 2.0 / (last - first) * RATE_HZ


class BeepDetector:
    """Fed the callee's audio in any slices; says once that a beep of at least ``min_ms`` was heard."""

    def __init__(self, min_ms: int) -> None:
        self._blocks_needed = max(1, math.ceil(min_ms / (1000 * BLOCK / RATE_HZ)))
        self._pending: list[int] = []
        self._run_hz: float | None = None
        self._run = 0
        self.heard_hz: float | None = None  # the beep's frequency, once heard

    @property
    def heard(self) -> bool:
        return self.heard_hz is not None

    def feed(self, samples: Sequence[int]) -> bool:
        """Take more audio; True the first time a beep is complete (never again after)."""
        if self.heard:
            return False
        self._pending.extend(samples)
        while len(self._pending) >= BLOCK:
            block, self._pending = self._pending[:BLOCK], self._pending[BLOCK:]
            if self._take(measure_block(block)):
                return True
        return False

    def _take(self, block: Block) -> bool:
        if not block.tonal or block.hz is None:
            self._run_hz, self._run = None, 0
            return False
        if self._run_hz is None or abs(block.hz - self._run_hz) > DRIFT * self._run_hz:
            self._run_hz, self._run = block.hz, 0
        self._run += 1
        if self._run >= self._blocks_needed:
            self.heard_hz = self._run_hz
            return True
        return False


# G.711 µ-law to 16-bit linear, the table every codec uses (ITU-T G.711).
def _ulaw_to_linear(byte: int) -> int:
    byte = ~byte & 0xFF
    sign, exponent, mantissa = byte & 0x80, (byte >> 4) & 0x07, byte & 0x0F
    magnitude = ((mantissa << 3) + 0x84) << exponent
    return 0x84 - magnitude if sign else magnitude - 0x84


ULAW: Final = tuple(_ulaw_to_linear(b) for b in range(256))


def ulaw_samples(payload: bytes) -> list[int]:
    """µ-law bytes (an RTP payload) as 16-bit linear samples."""
    return [ULAW[b] for b in payload]
