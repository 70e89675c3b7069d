"""Bench: engine.media.audio.convert() on a 60 s French-speech MP3, beside a bare one-output ffmpeg run.

``run()`` returns the medians of 3 runs each and their ratio (reported: no target was set for it; the
normalisation costs two extra passes), and checks the converted message against the library's promise
(issue 4): loudness −20 LUFS ± 2, true peak ≤ −1 dBFS, the speech kept whole.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog

from bench.support import checks
from engine.media.audio import TARGET_LUFS, AudioLimits, convert, probe_duration_s

RUNS = 3
DURATION_S = 60.0
TEXT_FR = (
    "Bonjour, ceci est un message de la mairie. En raison des travaux sur la route départementale, "
    "la circulation sera coupée demain matin de huit heures à midi. Merci de votre compréhension, "
    "et bonne journée à tous."
)


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def make_speech_mp3(workdir: Path) -> Path:
    """60 s of espeak-ng French over a soft chord, 44.1 kHz stereo, 128 kbit/s MP3."""
    speech = workdir / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "fr", "-s", "150", "-w", str(speech), TEXT_FR], check=True)
    mp3 = workdir / "speech60.mp3"
    chord = "+".join(f"0.02*sin(2*PI*{f}*t)" for f in (220, 277.2, 329.6, 5000))
    _ffmpeg(
        "-stream_loop", "-1", "-i", str(speech),
        "-f", "lavfi", "-i", f"aevalsrc={chord}:s=44100:d={DURATION_S}",
        "-filter_complex",
        "[0:a]aresample=44100,aformat=channel_layouts=stereo[s];"
        "[1:a]aformat=channel_layouts=stereo[c];"
        "[s][c]amix=inputs=2:duration=shortest:normalize=0",
        "-t", str(DURATION_S), "-c:a", "libmp3lame", "-b:a", "128k", str(mp3),
    )  # fmt: skip
    return mp3


def _median_s(samples: list[float]) -> float:
    return round(statistics.median(samples), 4)


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vocalcast-bench-audio-") as tmp:
        workdir = Path(tmp)
        mp3 = make_speech_mp3(workdir)

        convert_runs: list[float] = []
        result = None
        for i in range(RUNS):
            dest = workdir / f"convert{i}"
            start = time.perf_counter()
            result = asyncio.run(convert(mp3, dest, "bench", AudioLimits()))
            convert_runs.append(time.perf_counter() - start)
            shutil.rmtree(dest)
        assert result is not None

        bare_runs: list[float] = []
        for i in range(RUNS):
            out = workdir / f"bare{i}.wav"
            start = time.perf_counter()
            _ffmpeg("-i", str(mp3), "-ar", "8000", "-ac", "1", str(out))
            bare_runs.append(time.perf_counter() - start)

        input_s = asyncio.run(probe_duration_s(mp3))
        convert_s = _median_s(convert_runs)
        bare_s = _median_s(bare_runs)
        lufs, peak = result.loudness_lufs, result.true_peak_dbfs
        return {
            "bench": "audio",
            "input": {
                "kind": "espeak-ng French + soft chord, 44.1 kHz stereo MP3 128k",
                "duration_s": input_s,
            },
            "convert_median_s": convert_s,
            "bare_ffmpeg_median_s": bare_s,
            "ratio": round(convert_s / bare_s, 2),
            "convert_runs_s": [round(x, 4) for x in convert_runs],
            "bare_runs_s": [round(x, 4) for x in bare_runs],
            "output": {
                "duration_s": result.duration_s,
                "loudness_lufs": lufs,
                "true_peak_dbfs": peak,
            },
            "checks": {
                "loudness_lufs": checks.within(lufs, TARGET_LUFS, 2.0),
                "true_peak_dbfs": checks.at_most(peak, -1.0),
                # The chord runs to the end: only a trimmed edge of silence may go.
                "duration_s": checks.within(result.duration_s, DURATION_S, 0.5),
            },
        }


if __name__ == "__main__":
    # structlog prints to stdout by default: keep stdout for the JSON alone.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    print(json.dumps(run(), indent=2))
