"""Tone measurement and synthesis for test audio: Goertzel power per 20 ms frame, tone segments,
in-band DTMF detection, and small generators (sine, silence, DTMF) with a WAV writer/reader.

Samples are int16 values (array('h') or any sequence of ints), 8 kHz unless a rate is given.
"""

from __future__ import annotations

import math
import wave
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from operator import mul
from pathlib import Path
from typing import Any

RATE_HZ = 8000
FRAME_S = 0.02
FULL_SCALE = 32767

DTMF_ROWS_HZ = (697, 770, 852, 941)
DTMF_COLS_HZ = (1209, 1336, 1477, 1633)
DTMF_KEYS = ("123A", "456B", "789C", "*0#D")


def dtmf_freqs(digit: str) -> tuple[int, int]:
    """(row Hz, column Hz) of a DTMF key."""
    for row, keys in enumerate(DTMF_KEYS):
        col = keys.find(digit.upper())
        if col >= 0:
            return DTMF_ROWS_HZ[row], DTMF_COLS_HZ[col]
    raise ValueError(f"not a DTMF key: {digit!r}")


# --- measurement -----------------------------------------------------------------------------------


def goertzel_power(frame: Sequence[int], freq_hz: float, rate_hz: int = RATE_HZ) -> float:
    """|X(f)|² of one frame by the Goertzel recurrence (reference implementation, one frame)."""
    coeff = 2.0 * math.cos(2.0 * math.pi * freq_hz / rate_hz)
    s_prev = s_prev2 = 0.0
    for sample in frame:
        s_prev, s_prev2 = sample + coeff * s_prev - s_prev2, s_prev
    return s_prev * s_prev + s_prev2 * s_prev2 - coeff * s_prev * s_prev2


@cache
def _basis(freq_hz: float, rate_hz: int, size: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    step = 2.0 * math.pi * freq_hz / rate_hz
    return (
        tuple(math.cos(step * n) for n in range(size)),
        tuple(math.sin(step * n) for n in range(size)),
    )


def _bin_power(frame: Sequence[int], freq_hz: float, rate_hz: int) -> float:
    # Same |X(f)|² as goertzel_power, computed as two dot products: map(mul) runs in C, which makes
    # scanning minutes of audio for several frequencies fast enough without numpy.
    cos_t, sin_t = _basis(float(freq_hz), rate_hz, len(frame))
    real = float(sum(map(mul, frame, cos_t)))
    imag = float(sum(map(mul, frame, sin_t)))
    return real * real + imag * imag


@dataclass(frozen=True, slots=True)
class FramePower:
    """One analysis frame: start time, RMS level, and the tone's share of the frame energy (0..1)."""

    start_s: float
    level_dbfs: float
    ratio: float  # 2|X(f)|²/(N·Σx²): 1.0 for a pure sine at f, ~0.5 for each tone of a DTMF pair
    power: float  # |X(f)|², for comparing frames with each other


def _frames(samples: Sequence[int], rate_hz: int, frame_s: float) -> Iterable[tuple[int, Sequence[int]]]:
    size = round(rate_hz * frame_s)
    for index in range(len(samples) // size):
        yield index, samples[index * size : (index + 1) * size]


def _level_dbfs(energy: float, size: int) -> float:
    if energy <= 0:
        return -math.inf
    return 20.0 * math.log10(math.sqrt(energy / size) / FULL_SCALE)


def frame_powers(
    samples: Sequence[int], freq_hz: float, *, rate_hz: int = RATE_HZ, frame_s: float = FRAME_S
) -> list[FramePower]:
    """Per-frame power at freq_hz relative to the frame's energy (a trailing partial frame is dropped)."""
    size = round(rate_hz * frame_s)
    result = []
    for index, frame in _frames(samples, rate_hz, frame_s):
        energy = float(sum(map(mul, frame, frame)))
        power = _bin_power(frame, freq_hz, rate_hz)
        ratio = 2.0 * power / (size * energy) if energy > 0 else 0.0
        result.append(FramePower(index * frame_s, _level_dbfs(energy, size), ratio, power))
    return result


def rms_dbfs(samples: Sequence[int]) -> float:
    """RMS level of the whole signal in dBFS (-inf for digital silence)."""
    if not samples:
        return -math.inf
    return _level_dbfs(float(sum(map(mul, samples, samples))), len(samples))


def tone_segments(
    samples: Sequence[int],
    freq_hz: float,
    *,
    rate_hz: int = RATE_HZ,
    frame_s: float = FRAME_S,
    min_ratio: float = 0.6,
    min_level_dbfs: float = -45.0,
    min_duration_s: float = 0.04,
    max_gap_s: float = 0.0,
) -> list[tuple[float, float]]:
    """Time ranges (start_s, end_s) where freq_hz dominates the signal.

    A frame is "tone" when the tone holds at least min_ratio of the frame energy and the frame is louder
    than min_level_dbfs. Runs separated by at most max_gap_s are merged; runs shorter than
    min_duration_s are dropped. Edges are refined below one frame from the tone's amplitude in the
    boundary frames (a frame half-filled with the tone has half its amplitude).
    """
    frames = frame_powers(samples, freq_hz, rate_hz=rate_hz, frame_s=frame_s)
    hits = [f.ratio >= min_ratio and f.level_dbfs >= min_level_dbfs for f in frames]
    runs: list[list[int]] = []
    max_gap_frames = round(max_gap_s / frame_s)
    for index, hit in enumerate(hits):
        if not hit:
            continue
        if runs and index - runs[-1][1] - 1 <= max_gap_frames:
            runs[-1][1] = index
        else:
            runs.append([index, index])

    segments = []
    for first, last in runs:
        full = sorted(frames[i].power for i in range(first, last + 1) if hits[i])
        reference = full[len(full) // 2]

        def share(index: int, reference: float = reference) -> float:
            if index < 0 or index >= len(frames) or reference <= 0:
                return 0.0
            fraction = min(1.0, math.sqrt(frames[index].power / reference))
            return fraction if fraction >= 0.1 else 0.0  # ignore leakage from other sounds

        # A partial boundary frame locates the edge; only when it is full can the edge lie in the
        # neighbouring (non-hit, e.g. too quiet) frame.
        lead = share(first)
        lead += share(first - 1) if lead >= 0.95 else 0.0
        tail = share(last)
        tail += share(last + 1) if tail >= 0.95 else 0.0
        start = (first + 1 - lead) * frame_s
        end = (last + tail) * frame_s
        if end - start >= min_duration_s - 1e-9:
            segments.append((start, end))
    return segments


def tone_duration_s(samples: Sequence[int], freq_hz: float, **options: Any) -> float:
    """Total duration of freq_hz in the signal (sum of tone_segments; same options)."""
    return sum(end - start for start, end in tone_segments(samples, freq_hz, **options))


@dataclass(frozen=True, slots=True)
class DtmfTone:
    digit: str
    start_s: float
    end_s: float


def detect_dtmf(
    samples: Sequence[int],
    *,
    rate_hz: int = RATE_HZ,
    frame_s: float = FRAME_S,
    min_level_dbfs: float = -40.0,
    min_duration_s: float = 0.04,
    max_twist_db: float = 8.0,
) -> list[DtmfTone]:
    """In-band DTMF keys found in the signal, in order.

    Per frame: the strongest row and column tones must hold most of the energy (speech spreads it),
    each beat the runner-up of its group by 6 dB, and be within max_twist_db of each other. A key is
    reported when it holds for min_duration_s; a different key or a non-DTMF frame ends it.
    """
    size = round(rate_hz * frame_s)
    keys_per_frame: list[str | None] = []
    for _, frame in _frames(samples, rate_hz, frame_s):
        energy = float(sum(map(mul, frame, frame)))
        if energy <= 0 or _level_dbfs(energy, size) < min_level_dbfs:
            keys_per_frame.append(None)
            continue
        rows = [2.0 * _bin_power(frame, f, rate_hz) / (size * energy) for f in DTMF_ROWS_HZ]
        cols = [2.0 * _bin_power(frame, f, rate_hz) / (size * energy) for f in DTMF_COLS_HZ]
        row = max(range(4), key=rows.__getitem__)
        col = max(range(4), key=cols.__getitem__)
        row_p, col_p = rows[row], cols[col]
        runner_up_row = max(p for i, p in enumerate(rows) if i != row)
        runner_up_col = max(p for i, p in enumerate(cols) if i != col)
        twist_ok = row_p > 0 and col_p > 0 and abs(10 * math.log10(row_p / col_p)) <= max_twist_db
        key = None
        if row_p + col_p >= 0.7 and row_p >= 4 * runner_up_row and col_p >= 4 * runner_up_col and twist_ok:
            key = DTMF_KEYS[row][col]
        keys_per_frame.append(key)

    tones: list[DtmfTone] = []
    index = 0
    while index < len(keys_per_frame):
        key = keys_per_frame[index]
        end = index
        while end + 1 < len(keys_per_frame) and keys_per_frame[end + 1] == key:
            end += 1
        if key is not None and (end - index + 1) * frame_s >= min_duration_s - 1e-9:
            tones.append(DtmfTone(key, index * frame_s, (end + 1) * frame_s))
        index = end + 1
    return tones


def dtmf_digits(samples: Sequence[int], **options: Any) -> str:
    """The in-band DTMF keys of the signal as a string (see detect_dtmf for the options)."""
    return "".join(tone.digit for tone in detect_dtmf(samples, **options))


# --- synthesis -------------------------------------------------------------------------------------


def sine(freq_hz: float, seconds: float, amplitude: float = 0.5, *, rate_hz: int = RATE_HZ) -> array[int]:
    """A sine wave; amplitude is a fraction of full scale (0..1)."""
    peak = amplitude * FULL_SCALE
    step = 2.0 * math.pi * freq_hz / rate_hz
    return array("h", (round(peak * math.sin(step * n)) for n in range(round(seconds * rate_hz))))


def silence(seconds: float, *, rate_hz: int = RATE_HZ) -> array[int]:
    return array("h", bytes(2 * round(seconds * rate_hz)))


def mix(*signals: Sequence[int]) -> array[int]:
    """Sample-wise sum of signals (clipped to int16); the result has the longest signal's length."""
    length = max((len(s) for s in signals), default=0)
    out = array("h", bytes(2 * length))
    for signal in signals:
        for n, value in enumerate(signal):
            out[n] = max(-32768, min(32767, out[n] + value))
    return out


def dtmf_tone(
    digit: str, seconds: float = 0.1, amplitude: float = 0.25, *, rate_hz: int = RATE_HZ
) -> array[int]:
    """One DTMF key: its row and column sines, each at amplitude (fraction of full scale)."""
    row_hz, col_hz = dtmf_freqs(digit)
    return mix(
        sine(row_hz, seconds, amplitude, rate_hz=rate_hz), sine(col_hz, seconds, amplitude, rate_hz=rate_hz)
    )


def dtmf_sequence(
    digits: str,
    *,
    tone_s: float = 0.1,
    gap_s: float = 0.1,
    amplitude: float = 0.25,
    rate_hz: int = RATE_HZ,
) -> array[int]:
    """Keys separated by gap_s of silence (no silence before the first or after the last key)."""
    out = array("h")
    for index, digit in enumerate(digits):
        if index:
            out += silence(gap_s, rate_hz=rate_hz)
        out += dtmf_tone(digit, tone_s, amplitude, rate_hz=rate_hz)
    return out


def write_wav(path: Path | str, samples: Sequence[int], rate_hz: int = RATE_HZ) -> Path:
    """Write mono 16-bit PCM WAV (the "slin" WAV Asterisk plays at 8 kHz)."""
    path = Path(path)
    data = samples if isinstance(samples, array) and samples.typecode == "h" else array("h", samples)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate_hz)
        out.writeframes(data.tobytes())
    return path


def read_wav(path: Path | str) -> tuple[array[int], int]:
    """(samples, rate_hz) of a mono 16-bit PCM WAV; anything else raises ValueError."""
    with wave.open(str(path), "rb") as src:
        if src.getnchannels() != 1 or src.getsampwidth() != 2:
            raise ValueError(f"{path}: expected mono 16-bit PCM WAV")
        rate_hz = src.getframerate()
        samples = array("h")
        samples.frombytes(src.readframes(src.getnframes()))
    return samples, rate_hz
