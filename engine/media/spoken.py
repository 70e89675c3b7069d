"""Texts spoken by our French voice at run time (a commercial call's preamble, its opt-out thanks): espeak-ng
reads the text, engine/media/audio.py converts it like an upload (trimmed, loudness-normalised, wav/alaw/
ulaw). Files are kept under the media dir by a hash of the text and voice: each text is synthesised once."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from engine.media.audio import AudioLimits, convert, make_media_dir, probe_duration_s

VOICE: Final = "fr-fr"
WORDS_PER_MINUTE: Final = 150
SPOKEN_DIR: Final = "spoken"
LIMITS: Final = AudioLimits(min_duration_s=0.5, max_duration_s=60.0, run_timeout_s=30.0)
_LOCK = asyncio.Lock()  # two sends of one account starting together synthesise their text once


@dataclass(frozen=True, slots=True)
class Spoken:
    """A spoken text's files (``path`` without extension: Asterisk picks the codec's) and length."""

    path: Path
    duration_s: float


async def spoken(media_dir: Path, text: str) -> Spoken:
    """The files of ``text`` spoken by our voice, synthesised now unless they already exist."""
    digest = hashlib.sha256(f"{VOICE}|{WORDS_PER_MINUTE}|{text}".encode()).hexdigest()[:24]
    dest = media_dir / SPOKEN_DIR
    stem = f"say-{digest}"
    async with _LOCK:
        wav = dest / f"{stem}.wav"
        if not all((dest / f"{stem}.{kind}").exists() for kind in ("wav", "alaw", "ulaw")):
            await asyncio.to_thread(make_media_dir, dest)
            await _synthesise(text, dest, stem)
        duration_s = await probe_duration_s(wav, timeout_s=LIMITS.run_timeout_s)
    return Spoken(dest / stem, duration_s)


async def _synthesise(text: str, dest: Path, stem: str) -> None:
    work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="spoken-", dir=dest))
    try:
        raw = work / "espeak.wav"
        process = await asyncio.create_subprocess_exec(
            "espeak-ng", "-v", VOICE, "-s", str(WORDS_PER_MINUTE), "-w", str(raw), text,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), LIMITS.run_timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeError("espeak-ng timed out") from None
        if process.returncode != 0:
            detail = stderr.decode(errors="replace")[-300:]
            raise RuntimeError(f"espeak-ng failed ({process.returncode}): {detail}")
        await convert(raw, dest, stem, LIMITS)
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)
