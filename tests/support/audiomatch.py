"""Find known audio (our prompt files) inside what a caller heard: proof from the wire of which prompts
were played, in which order, without trusting the engine's own logs.

Two passes, both Pearson correlations so that gain changes do not matter: a coarse one on 10 ms RMS
envelopes finds candidate positions quickly, a fine one on the samples themselves (around each
candidate) confirms them. Prompts played through G.711 come back nearly sample-exact (score ≈ 0.99);
another word, even one that sounds alike, scores far lower on the samples.
Pure Python: the inner products run in C through ``sum(map(mul, …))``.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from itertools import accumulate
from operator import mul
from pathlib import Path

from lab import tones

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "sounds" / "fr"
RATE_HZ = 8000
FRAME = 80  # 10 ms envelope frames
ENVELOPE_MIN_SCORE = 0.75  # candidates only: the sample pass decides
MIN_SCORE = 0.95


@dataclass(frozen=True, slots=True)
class Match:
    """Where the needle was found: sample offset in the haystack, length in samples, sample score."""

    offset: int
    length: int
    score: float

    @property
    def start_s(self) -> float:
        return self.offset / RATE_HZ

    @property
    def end_s(self) -> float:
        return (self.offset + self.length) / RATE_HZ


@cache
def prompt(name: str) -> array[int]:
    """Samples of sounds/fr/<name>.wav (8 kHz mono 16-bit)."""
    samples, rate_hz = tones.read_wav(PROMPTS_DIR / f"{name}.wav")
    if rate_hz != RATE_HZ:
        raise ValueError(f"{name}: {rate_hz} Hz")
    return samples


def envelope(samples: Sequence[int]) -> list[float]:
    """RMS of each 10 ms frame (a trailing partial frame is dropped)."""
    out = []
    for start in range(0, len(samples) - FRAME + 1, FRAME):
        frame = samples[start : start + FRAME]
        out.append(math.sqrt(sum(map(mul, frame, frame)) / FRAME))
    return out


def _centered(values: Sequence[float]) -> tuple[list[float], float]:
    mean = sum(values) / len(values)
    centered = [v - mean for v in values]
    return centered, math.sqrt(sum(map(mul, centered, centered)))


def _correlation_at(
    hay: Sequence[float],
    start: int,
    needle_c: Sequence[float],
    needle_norm: float,
    sums: tuple[list[float], list[float]],
) -> float:
    """Pearson correlation of hay[start:start+n] with the (centered) needle, with prefix sums of hay."""
    n = len(needle_c)
    prefix, prefix_sq = sums
    total = prefix[start + n] - prefix[start]
    total_sq = prefix_sq[start + n] - prefix_sq[start]
    variance = total_sq - total * total / n
    if variance <= 0 or needle_norm == 0:
        return 0.0
    window = hay[start : start + n]
    return float(sum(map(mul, window, needle_c))) / (math.sqrt(variance) * needle_norm)


def _prefix_sums(values: Sequence[float]) -> tuple[list[float], list[float]]:
    prefix, prefix_sq = [0.0], [0.0]
    for value in values:
        prefix.append(prefix[-1] + value)
        prefix_sq.append(prefix_sq[-1] + value * value)
    return prefix, prefix_sq


class Heard:
    """What a caller heard, with its envelope computed once for every search."""

    def __init__(self, samples: Sequence[int]) -> None:
        self.samples = samples
        self.envelope = envelope(samples)
        self.sums = _prefix_sums(self.envelope)
        self.found: dict[tuple[str, float | None, float], list[Match]] = {}  # find_prompt's results
        # Prefix sums of the samples and of their squares: a window's mean and energy in O(1).
        self.prefix = [0, *accumulate(samples)]
        self.prefix_sq = [0, *accumulate(map(mul, samples, samples))]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / RATE_HZ


def find(
    haystack: Heard | Sequence[int],
    needle: Sequence[int],
    *,
    min_score: float = MIN_SCORE,
    trim_end: int = 160,
) -> list[Match]:
    """Every place where ``needle`` occurs in ``haystack`` (non-overlapping, in order).

    ``trim_end`` samples are ignored at the needle's end: the last partial 20 ms frame of a file may not
    be sent. A needle shorter than 50 ms, or silent, cannot be matched (ValueError).
    """
    heard = haystack if isinstance(haystack, Heard) else Heard(haystack)
    needle = needle[: len(needle) - trim_end] if len(needle) > trim_end + 400 else needle
    if len(needle) < 400:
        raise ValueError("needle too short to match reliably")
    needle_env = envelope(needle)
    needle_c, needle_norm = _centered(needle_env)
    if needle_norm == 0:
        raise ValueError("needle is silent")
    m = len(needle_env)
    scores = [
        _correlation_at(heard.envelope, k, needle_c, needle_norm, heard.sums)
        for k in range(len(heard.envelope) - m + 1)
    ]
    candidates = _local_maxima(scores, ENVELOPE_MIN_SCORE, radius=max(1, m // 2))
    matches: list[Match] = []
    for k in candidates:
        best = _refine(heard, needle, k * FRAME)
        if best is not None and best.score >= min_score:
            if matches and best.offset < matches[-1].offset + matches[-1].length:
                if best.score > matches[-1].score:
                    matches[-1] = best
                continue
            matches.append(best)
    return matches


def _local_maxima(scores: Sequence[float], threshold: float, *, radius: int) -> list[int]:
    peaks = []
    for k, score in enumerate(scores):
        if score < threshold:
            continue
        window = scores[max(0, k - radius) : k + radius + 1]
        if score >= max(window):
            peaks.append(k)
    return peaks


def _sample_score(
    heard: Heard, offset: int, needle: Sequence[int], needle_stats: tuple[float, float]
) -> float:
    """Pearson correlation of the needle with the heard samples at ``offset``."""
    n = len(needle)
    if offset < 0 or offset + n > len(heard.samples):
        return -1.0
    needle_sum, needle_norm = needle_stats
    total = float(heard.prefix[offset + n] - heard.prefix[offset])
    energy = float(heard.prefix_sq[offset + n] - heard.prefix_sq[offset])
    variance = energy - total * total / n
    if variance <= 0 or needle_norm == 0:
        return 0.0
    # Σ(w - w̄)(x - x̄) = Σw·x - Σw·Σx/n
    covariance = float(sum(map(mul, heard.samples[offset : offset + n], needle))) - total * needle_sum / n
    return covariance / (math.sqrt(variance) * needle_norm)


def _refine(heard: Heard, needle: Sequence[int], around: int) -> Match | None:
    """Best sample offset within two envelope frames of ``around``.

    The sample correlation of speech peaks over a few samples only (at 8 kHz it falls to about 0.9 two
    samples away), so the coarse pass steps by 2 and the best few coarse points are refined.
    """
    n = len(needle)
    needle_sum = float(sum(needle))
    needle_norm = math.sqrt(max(0.0, float(sum(map(mul, needle, needle))) - needle_sum * needle_sum / n))
    if needle_norm == 0:
        return None
    stats = (needle_sum, needle_norm)
    coarse = sorted(
        range(around - 2 * FRAME, around + 2 * FRAME + 1, 2),
        key=lambda o: _sample_score(heard, o, needle, stats),
        reverse=True,
    )[:3]
    best = max(
        {o for c in coarse for o in range(c - 1, c + 2)},
        key=lambda o: _sample_score(heard, o, needle, stats),
    )
    score = _sample_score(heard, best, needle, stats)
    return Match(best, n, score) if score > 0 else None


def find_prompt(
    haystack: Heard | Sequence[int], name: str, *, first_s: float | None = None, min_score: float = MIN_SCORE
) -> list[Match]:
    """Occurrences of sounds/fr/<name>.wav in the haystack; with ``first_s``, of its beginning only
    (a prompt the caller interrupted with a key)."""
    heard = haystack if isinstance(haystack, Heard) else Heard(haystack)
    key = (name, first_s, min_score)
    if key not in heard.found:
        needle = prompt(name)
        if first_s is not None:
            needle = needle[: round(first_s * RATE_HZ)]
        trim_end = 0 if first_s is not None else 160
        heard.found[key] = find(heard, needle, min_score=min_score, trim_end=trim_end)
    return heard.found[key]


def find_sequence(
    haystack: Heard | Sequence[int],
    names: Sequence[str],
    *,
    max_gap_s: float = 0.5,
    min_score: float = MIN_SCORE,
) -> list[Match] | None:
    """The prompts ``names`` heard one right after the other (each within ``max_gap_s`` of the end of
    the previous one), first occurrence; None when the sequence is not in the haystack."""
    heard = haystack if isinstance(haystack, Heard) else Heard(haystack)
    first, *rest = names
    for start in find_prompt(heard, first, min_score=min_score):
        chain = [start]
        for name in rest:
            following = [
                match
                for match in find_prompt(heard, name, min_score=min_score)
                if -FRAME <= match.offset - chain[-1].offset - chain[-1].length <= max_gap_s * RATE_HZ + 160
            ]
            if not following:
                break
            chain.append(following[0])
        else:
            return chain
    return None
