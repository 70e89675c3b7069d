#!/usr/bin/env python3
"""Generate the France-French prompts (sounds/prompts.toml) and number words with SVOX Pico, as the
8 kHz files Asterisk plays without transcoding: <name>.wav (slin), <name>.alaw, <name>.ulaw.

Usage (as root, ROOT being a Debian root with libttspico-utils):  python3 sounds/generate.py --root ROOT
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import wave
from dataclasses import dataclass
from pathlib import Path

# The one French number rule lives in the engine (the IVR says references with it).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine.domain.saynumber import number_prompts

HERE = Path(__file__).resolve().parent
VOICE = "fr-FR"  # SVOX Pico's France-French voice
TARGET_LUFS = -20.0
MAX_TRUE_PEAK_DBFS = -1.0
LIMIT_DBFS = -2.0  # the limiter works on samples; 1 dB of headroom for inter-sample peaks
SILENCE_THRESHOLD_DB = -55
KEEP_SILENCE_S = 0.02  # a few ms kept before and after the voice, so onsets are not clipped
MIN_MEASURE_S = 1.0  # shorter clips (single words) are looped for the loudness measurement
RATE_HZ = 8000

_UNITS = [
    "zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf",
    "dix", "onze", "douze", "treize", "quatorze", "quinze", "seize", "dix-sept", "dix-huit", "dix-neuf",
]  # fmt: skip
_TENS = {2: "vingt", 3: "trente", 4: "quarante", 5: "cinquante", 6: "soixante"}


def french_number(n: int) -> str:
    """0-99 in words, traditional spelling: vingt et un, soixante et onze, quatre-vingts, quatre-vingt-un."""
    if not 0 <= n <= 99:
        raise ValueError(n)
    if n < 20:
        return _UNITS[n]
    tens, unit = divmod(n, 10)
    if tens in (7, 9):  # soixante-dix…, quatre-vingt-dix…: the 60/80 base plus 10-19
        base = "soixante" if tens == 7 else "quatre-vingt"
        rest = n - (60 if tens == 7 else 80)
        return f"{base} et onze" if n == 71 else f"{base}-{_UNITS[rest]}"
    if tens == 8:
        return "quatre-vingts" if unit == 0 else f"quatre-vingt-{_UNITS[unit]}"
    if unit == 0:
        return _TENS[tens]
    if unit == 1:
        return f"{_TENS[tens]} et un"
    return f"{_TENS[tens]}-{_UNITS[unit]}"


def number_texts() -> dict[str, str]:
    texts = {f"num_{n}": french_number(n) for n in range(100)}
    texts |= {"num_100": "cent", "num_cents": "cents", "num_1000": "mille"}
    return texts


def load_prompts(path: Path) -> dict[str, str]:
    with path.open("rb") as file:
        prompts: dict[str, str] = tomllib.load(file)["prompts"]
    for name in prompts:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name.startswith("num_"):
            raise SystemExit(f"prompts.toml: bad prompt name {name!r}")
    return prompts


def run(args: list[str]) -> str:
    """Run a tool, return its stderr (ffmpeg reports there); fail loudly with its output."""
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])}… failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return result.stderr


@dataclass(frozen=True)
class Loudness:
    integrated_lufs: float
    true_peak_dbfs: float


def measure(path: Path, *, loop: int = 0) -> Loudness:
    stderr = run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-stream_loop", str(loop), "-i", str(path),
         "-af", "ebur128=peak=true", "-f", "null", "-"]
    )  # fmt: skip
    summary = stderr[stderr.rindex("Summary:") :]
    integrated = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    peak = re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    if integrated is None or peak is None:
        raise RuntimeError(f"cannot read the ebur128 summary of {path}")
    return Loudness(float(integrated.group(1)), float(peak.group(1)))


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as src:
        return src.getnframes() / src.getframerate()


BITEXACT = ["-fflags", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1"]  # same bytes each run


def render(name: str, text: str, root: Path, out_dir: Path, work: Path) -> tuple[str, float, Loudness]:
    """TTS → trim → 8 kHz → measure → gain + limiter → wav/alaw/ulaw; returns (name, seconds, loudness)."""
    inside = Path(tempfile.mkdtemp(prefix="vocalcast-prompt-", dir=root / "tmp"))  # private dir in the root
    try:
        in_root = "/" + str((inside / "tts.wav").relative_to(root))  # the same file, seen from the chroot
        run(["chroot", str(root), "pico2wave", "-l", VOICE, "-w", in_root, text])
        raw = work / f"{name}.tts.wav"
        shutil.move(inside / "tts.wav", raw)
    finally:
        shutil.rmtree(inside, ignore_errors=True)

    trim = (
        f"silenceremove=start_periods=1:start_threshold={SILENCE_THRESHOLD_DB}dB:detection=peak"
        f":start_silence={KEEP_SILENCE_S}"
    )
    trimmed = work / f"{name}.trim.wav"
    run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(raw),
         "-af", f"{trim},areverse,{trim},areverse,aresample={RATE_HZ}:resampler=soxr",
         "-ac", "1", "-c:a", "pcm_s16le", *BITEXACT, str(trimmed)])  # fmt: skip

    seconds = wav_seconds(trimmed)
    loops = math.ceil(MIN_MEASURE_S / seconds) - 1 if seconds < MIN_MEASURE_S else 0
    before = measure(trimmed, loop=loops)
    gain_db = TARGET_LUFS - before.integrated_lufs
    final = out_dir / f"{name}.wav"
    for _ in range(4):  # the limiter settles peaks; step down if an inter-sample peak still exceeds
        limit = 10 ** (LIMIT_DBFS / 20)
        run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(trimmed),
             "-af", f"volume={gain_db:.2f}dB,alimiter=limit={limit:.4f}:level=false:latency=true"
                    ":attack=5:release=50",
             "-ar", str(RATE_HZ), "-ac", "1", "-c:a", "pcm_s16le", *BITEXACT, str(final)])  # fmt: skip
        after = measure(final, loop=loops)
        if after.true_peak_dbfs <= MAX_TRUE_PEAK_DBFS:
            break
        gain_db -= after.true_peak_dbfs - MAX_TRUE_PEAK_DBFS + 0.1
    else:
        raise RuntimeError(f"{name}: true peak still {after.true_peak_dbfs} dBFS")

    for fmt in ("alaw", "mulaw"):
        suffix = "ulaw" if fmt == "mulaw" else "alaw"
        run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(final),
             "-f", fmt, "-ar", str(RATE_HZ), "-ac", "1", str(out_dir / f"{name}.{suffix}")])  # fmt: skip
    return name, wav_seconds(final), after


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="Debian root with pico2wave (chroot)")
    parser.add_argument("--out", type=Path, default=HERE / "fr", help="output directory (default sounds/fr)")
    parser.add_argument("--prompts", type=Path, default=HERE / "prompts.toml")
    parser.add_argument("--only", nargs="*", help="names to regenerate (default: all)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    options = parser.parse_args(argv)

    if not (options.root / "usr/bin/pico2wave").exists():
        parser.error(f"{options.root}: no usr/bin/pico2wave (build the root with libttspico-utils)")
    texts = load_prompts(options.prompts) | number_texts()
    missing_numbers = {p for n in range(1_000_000) for p in number_prompts(n)} - texts.keys()
    if missing_numbers:
        raise SystemExit(f"number composition needs missing files: {sorted(missing_numbers)}")
    if options.only:
        unknown = set(options.only) - texts.keys()
        if unknown:
            parser.error(f"unknown names: {sorted(unknown)}")
        texts = {name: texts[name] for name in options.only}
    options.out.mkdir(parents=True, exist_ok=True)

    with (
        tempfile.TemporaryDirectory(prefix="vocalcast-sounds-") as tmp,
        concurrent.futures.ThreadPoolExecutor(options.jobs) as pool,
    ):
        jobs = [
            pool.submit(render, name, text, options.root, options.out, Path(tmp))
            for name, text in texts.items()
        ]
        results = sorted(job.result() for job in jobs)
    for name, seconds, loudness in results:
        lufs, peak = loudness.integrated_lufs, loudness.true_peak_dbfs
        print(f"{name:22} {seconds:6.2f} s {lufs:6.1f} LUFS  TP {peak:5.1f} dBFS")
    total = sum(f.stat().st_size for f in options.out.iterdir() if f.is_file())
    print(f"{len(results)} prompts, {options.out} holds {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
