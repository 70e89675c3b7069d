"""Audio conversion of uploads and phone recordings into what Asterisk plays without transcoding.

WAV or MP3 in; 8 kHz mono slin ``.wav``, raw ``.alaw`` and ``.ulaw`` out, silence-trimmed and
loudness-normalised (−20 LUFS, true peak ≤ −1 dBFS). All the work runs in ffmpeg/ffprobe subprocesses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import structlog

from engine.errors import ConfigurationError, InvalidInput

log = structlog.get_logger(__name__)

T = TypeVar("T")

SAMPLE_RATE_HZ = 8000
TARGET_LUFS = -20.0
LOUDNESS_TOLERANCE_LU = 2.0
TRUE_PEAK_MAX_DBFS = -1.0
# Below this the file is taken as silence: normalising it would only amplify hiss to −20 LUFS.
SILENCE_LUFS = -60.0
TRIM_THRESHOLD_DBFS = -50.0
TRIM_PAD_S = 0.2
# Leading/trailing silence we accept to decode beyond max_duration_s before trimming; it bounds the
# decode (and the memory areverse needs) whatever duration the file claims.
TRIM_ALLOWANCE_S = 60.0
# A decode this much shorter than the container's own duration means the file was cut off.
TRUNCATION_TOLERANCE = 0.1
TRUNCATION_SLACK_S = 0.5
# The limiter works on sample peaks; at 8 kHz inter-sample peaks can rise above them, so it starts
# below the true-peak ceiling and the render is repeated lower if ebur128 still measures too much.
LIMITER_START_DBFS = -2.0
LIMITER_MIN_DBFS = -24.0  # alimiter's lowest limit (0.0625)
RENDER_ATTEMPTS = 5
MAX_STEP_DB = 12.0
MAX_GAIN_DB = TARGET_LUFS - SILENCE_LUFS  # what brings the quietest accepted file to the target

_FORMATS = {"wav": "wav", "mp3": "mp3"}  # ffprobe format_name -> extension of the kept original
_ERROR_LINE = re.compile(r"\[(?:panic|fatal|error)\]")
_MESSAGES_FR = {
    "empty": "Le fichier est vide.",
    "too_large": "Le fichier est trop volumineux (maximum {max_mb} Mo).",
    "unsupported_format": "Format non pris en charge : envoyez un fichier WAV ou MP3.",
    "corrupt": "Le fichier audio est endommagé et ne peut pas être lu.",
    "truncated": "Le fichier audio est incomplet (coupé avant la fin) : envoyez-le à nouveau.",
    "too_short": "Le message est trop court : au moins {min_s} seconde(s) hors silences.",
    "too_long": "Le message est trop long : au plus {max_min} minute(s) hors silences.",
    "silence": "Le fichier ne contient que du silence, ou un son trop faible pour être diffusé.",
    "timeout": "La conversion du fichier a pris trop de temps ; réessayez ou envoyez un fichier plus court.",
}


@dataclass(frozen=True)
class AudioLimits:
    """What an upload or a recording may be; the defaults are the service settings' defaults."""

    max_bytes: int = 20 * 1024 * 1024
    min_duration_s: float = 1.0
    max_duration_s: float = 300.0
    run_timeout_s: float = 60.0  # per ffmpeg/ffprobe run


@dataclass(frozen=True)
class ConvertedAudio:
    """The files of one converted message, all in the destination directory, and their measures."""

    duration_s: float
    wav: Path
    alaw: Path
    ulaw: Path
    original: Path
    loudness_lufs: float
    true_peak_dbfs: float


@dataclass(frozen=True)
class _Probe:
    format_name: str
    duration_s: float | None  # None when unknown or only estimated from the bitrate
    has_audio: bool


@dataclass(frozen=True)
class _Analysis:
    decoded_s: float
    trimmed_s: float
    loudness_lufs: float


def _refuse(code: str, detail: str, limits: AudioLimits) -> InvalidInput:
    message = _MESSAGES_FR[code].format(
        max_mb=limits.max_bytes // (1024 * 1024),
        min_s=f"{limits.min_duration_s:g}",
        max_min=f"{limits.max_duration_s / 60:g}",
    )
    return InvalidInput(code, detail, message_fr=message)


async def _finish(aw: Awaitable[T]) -> T:
    """Await ``aw`` to its end even if cancelled meanwhile, then let the cancellation through.

    Used for what must be over before a temp directory is removed (a killed ffmpeg, a copy thread).
    """
    fut = asyncio.ensure_future(aw)
    cancelled = False
    while not fut.done():
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return fut.result()


async def _run(argv: Sequence[str], timeout_s: float, limits: AudioLimits) -> tuple[int, str, str]:
    """Run one tool; (returncode, stdout, stderr). The process never outlives the call."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError as exc:
        raise ConfigurationError(f"{argv[0]} not found on PATH (install ffmpeg)") from exc
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await proc.communicate()
            returncode = await proc.wait()  # already over: this only narrows the type
    except TimeoutError as exc:
        raise _refuse("timeout", f"{argv[0]} ran longer than {timeout_s:g} s", limits) from exc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await _finish(proc.wait())
    return returncode, out.decode(errors="replace"), err.decode(errors="replace")


# Customer files are read as local files only, by the WAV or MP3 demuxer only: a "WAV" that is really an
# HLS playlist or a concat list would otherwise make ffmpeg open other files or URLs (issue 17).
_INPUT_WHITELIST = ("-protocol_whitelist", "file")
MEDIA_FILE_MODE = 0o640
MEDIA_DIR_MODE = 0o2750  # setgid: the tree's group (Asterisk's) throughout
_PROBE_WHITELIST = (*_INPUT_WHITELIST, "-format_whitelist", ",".join(_FORMATS))


def _ffmpeg(*args: str) -> list[str]:
    # level+info: the ebur128/astats summaries are info lines; "[error]" tags tell real errors apart.
    return ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-v", "level+info", "-xerror", *args]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if _ERROR_LINE.search(line)]


def _last_float(pattern: str, text: str) -> float | None:
    found = re.findall(pattern, text)
    if not found:
        return None
    return float(found[-1])  # float() reads "-inf" too


def _loudness_from(stderr: str) -> tuple[float, float | None]:
    """(integrated LUFS, true peak dBFS or None) from the last ebur128 summary in ``stderr``."""
    summary = stderr.rsplit("Summary:", 1)[-1]
    lufs = _last_float(r"I:\s+(-?(?:inf|[\d.]+)) LUFS", summary)
    if lufs is None:
        raise RuntimeError("ebur128 printed no integrated loudness")
    return lufs, _last_float(r"Peak:\s+(-?(?:inf|[\d.]+)) dBFS", summary)


async def _probe(src: Path, timeout_s: float, limits: AudioLimits) -> _Probe | None:
    rc, out, err = await _run(
        [
            "ffprobe", "-v", "warning", *_PROBE_WHITELIST, "-of", "json",
            "-show_entries", "format=format_name,duration:stream=codec_type",
            f"file:{src}",
        ],
        timeout_s,
        limits,
    )  # fmt: skip
    if rc != 0:
        return None
    try:
        info = json.loads(out)
        fmt = info["format"]
    except (ValueError, KeyError):
        return None
    duration_s: float | None = None
    # Without a header to read it from, libavformat guesses the duration from the first bitrate
    # (wrong for VBR MP3s without a Xing tag): no truncation check is possible against a guess.
    if "Estimating duration from bitrate" not in err:
        with contextlib.suppress(KeyError, ValueError):
            duration_s = float(fmt["duration"])
    streams = info.get("streams", [])
    return _Probe(
        format_name=str(fmt.get("format_name", "")),
        duration_s=duration_s if duration_s is not None and math.isfinite(duration_s) else None,
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
    )


def _wav_is_truncated(src: Path) -> bool:
    """True when a RIFF WAV's data chunk claims more bytes than the file holds.

    ffmpeg trusts the file size for WAV, so a cut-off WAV would otherwise pass as a shorter one.
    """
    size = src.stat().st_size
    with src.open("rb") as fh:
        head = fh.read(64 * 1024)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False  # RF64 and friends: nothing simple to check
    pos = 12
    while pos + 8 <= len(head):
        chunk_id = head[pos : pos + 4]
        chunk_size = int.from_bytes(head[pos + 4 : pos + 8], "little")
        if chunk_id == b"data":
            # 0 and 0xFFFFFFFF are what streaming writers leave when they cannot seek back.
            return chunk_size not in (0, 0xFFFFFFFF) and pos + 8 + chunk_size > size
        pos += 8 + chunk_size + (chunk_size & 1)
    return False


async def _analyse(src: Path, demuxer: str, cut: Path, limits: AudioLimits, name: str) -> _Analysis:
    """Decode to 8 kHz mono, trim the silence at both ends into ``cut`` (raw f32), measure."""
    threshold = 10 ** (TRIM_THRESHOLD_DBFS / 20)
    # detection=peak: with the default rms detection, ffmpeg 5.1 drops a whole signal that starts loud
    # (the reversed pass of a message with no trailing silence came out empty).
    trim = (
        f"silenceremove=start_periods=1:start_threshold={threshold:.6f}:start_silence={TRIM_PAD_S}"
        ":detection=peak"
    )
    graph = (
        # soxr: a real anti-alias filter, so what lies above 4 kHz does not fold back as hiss.
        "[0:a:0]aformat=channel_layouts=mono,aresample=8000:resampler=soxr,"
        "aformat=sample_fmts=flt,asplit=2[raw][cut];"
        "[raw]astats@raw=measure_perchannel=none:measure_overall=Number_of_samples,anullsink;"
        # Trailing silence is trimmed by trimming the start of the reversed signal.
        f"[cut]{trim},areverse,{trim},areverse,asplit=2[out][meter];"
        "[meter]ebur128@cut=framelog=verbose,anullsink"
    )
    cap_s = limits.max_duration_s + TRIM_ALLOWANCE_S
    rc, _, err = await _run(
        _ffmpeg(
            "-f", demuxer, "-t", f"{cap_s:g}", *_INPUT_WHITELIST, "-i", f"file:{src}",
            "-filter_complex", graph, "-map", "[out]", "-f", "f32le", "-y", f"file:{cut}",
        ),
        limits.run_timeout_s,
        limits,
    )  # fmt: skip
    errors = _error_lines(err)
    if rc != 0 or errors:
        raise _refuse("corrupt", f"{name}: ffmpeg rc={rc}: {' | '.join(errors[:3])}", limits)
    samples = _last_float(r"Number of samples: (\d+)", err)
    if samples is None:
        raise RuntimeError("astats printed no sample count")
    lufs, _ = _loudness_from(err)
    return _Analysis(
        decoded_s=samples / SAMPLE_RATE_HZ,
        trimmed_s=(await asyncio.to_thread(cut.stat)).st_size / 4 / SAMPLE_RATE_HZ,
        loudness_lufs=lufs,
    )


async def _render(
    cut: Path, outputs: tuple[Path, Path, Path], gain_db: float, limit_dbfs: float, limits: AudioLimits
) -> tuple[float, float]:
    """Gain + limiter at 8 kHz into the three files at once; their (LUFS, true peak dBFS)."""
    wav, alaw, ulaw = outputs
    limiter = f"alimiter=limit={10 ** (limit_dbfs / 20):.6f}:attack=5:release=50:level=0:latency=1"
    graph = (
        f"[0:a]volume={gain_db:.2f}dB,{limiter},aformat=sample_fmts=s16,asplit=4[w][a][u][m];"
        "[m]ebur128@out=peak=true:framelog=verbose,anullsink"
    )
    rc, _, err = await _run(
        _ffmpeg(
            "-f", "f32le", "-ar", str(SAMPLE_RATE_HZ), "-ch_layout", "mono",
            *_INPUT_WHITELIST, "-i", f"file:{cut}",
            "-filter_complex", graph,
            # bitexact: a bare 44-byte header, no LIST/encoder chunk for Asterisk's format_wav to skip.
            "-map", "[w]", "-c:a", "pcm_s16le", "-fflags", "+bitexact", "-flags:a", "+bitexact",
            "-map_metadata", "-1", "-f", "wav", "-y", f"file:{wav}",
            "-map", "[a]", "-c:a", "pcm_alaw", "-f", "alaw", "-y", f"file:{alaw}",
            "-map", "[u]", "-c:a", "pcm_mulaw", "-f", "mulaw", "-y", f"file:{ulaw}",
        ),
        limits.run_timeout_s,
        limits,
    )  # fmt: skip
    errors = _error_lines(err)
    if rc != 0 or errors:
        raise RuntimeError(f"ffmpeg failed on our own 8 kHz render (rc={rc}): {' | '.join(errors[:3])}")
    lufs, peak = _loudness_from(err)
    if peak is None:
        raise RuntimeError("ebur128 printed no true peak")
    return lufs, peak


async def _normalise(
    cut: Path, outputs: tuple[Path, Path, Path], measured_lufs: float, limits: AudioLimits, name: str
) -> tuple[float, float]:
    """Render until ebur128 measures the target; one render suffices unless the limiter bites hard."""
    gain_db = TARGET_LUFS - measured_lufs
    limit_dbfs = LIMITER_START_DBFS
    previous: tuple[float, float] | None = None  # (gain_db, lufs) of the last render
    for _ in range(RENDER_ATTEMPTS):
        lufs, peak = await _render(cut, outputs, gain_db, limit_dbfs, limits)
        peak_ok = peak <= TRUE_PEAK_MAX_DBFS
        if peak_ok and abs(lufs - TARGET_LUFS) <= LOUDNESS_TOLERANCE_LU / 2:
            return lufs, peak
        # Peaky audio (clicks) loses loudness in the limiter, so loudness grows slower than the gain:
        # step by the secant slope, within bounds so that a bad slope cannot run away.
        slope = 1.0
        if previous is not None and gain_db != previous[0]:
            slope = min(1.0, max(0.1, (lufs - previous[1]) / (gain_db - previous[0])))
        previous = (gain_db, lufs)
        step_db = max(-MAX_STEP_DB, min(MAX_STEP_DB, (TARGET_LUFS - lufs) / slope))
        gain_db = min(MAX_GAIN_DB, gain_db + step_db)
        if not peak_ok:
            limit_dbfs = max(LIMITER_MIN_DBFS, limit_dbfs - (peak - TRUE_PEAK_MAX_DBFS) - 0.3)
    log.warning("audio_normalisation_off_target", source=name, lufs=lufs, true_peak_dbfs=peak)
    return lufs, peak


async def _copy(src: Path, dst: Path) -> None:
    # A thread cannot be interrupted: _finish lets it end before the temp directory is removed.
    await _finish(asyncio.to_thread(shutil.copyfile, src, dst))


async def convert(
    src: Path, dest_dir: Path, stem: str, limits: AudioLimits, *, original_name: str | None = None
) -> ConvertedAudio:
    """Validate ``src`` (WAV or MP3, told by content) and write ``stem.{wav,alaw,ulaw,orig.<ext>}``.

    Raises InvalidInput (code empty, too_large, unsupported_format, corrupt, truncated, too_short,
    too_long, silence or timeout) and leaves nothing in ``dest_dir`` on any failure or cancellation.
    """
    if not stem or stem.startswith(".") or Path(stem).name != stem:
        raise ValueError(f"stem must be a plain file name, got {stem!r}")
    name = original_name or src.name
    size = (await asyncio.to_thread(src.stat)).st_size
    if size == 0:
        raise _refuse("empty", f"{name}: empty file", limits)
    if size > limits.max_bytes:
        raise _refuse("too_large", f"{name}: {size} bytes > {limits.max_bytes}", limits)

    probe = await _probe(src, limits.run_timeout_s, limits)
    ext = _FORMATS.get(probe.format_name) if probe else None
    if probe is None or ext is None or not probe.has_audio:
        seen = probe.format_name if probe else "unrecognised"
        raise _refuse("unsupported_format", f"{name}: format {seen!r} is not WAV or MP3", limits)
    if ext == "wav" and await asyncio.to_thread(_wav_is_truncated, src):
        raise _refuse("truncated", f"{name}: WAV data chunk runs past the end of the file", limits)
    if probe.duration_s is not None and probe.duration_s > limits.max_duration_s + TRIM_ALLOWANCE_S:
        raise _refuse("too_long", f"{name}: {probe.duration_s:.1f} s", limits)

    finals = {kind: dest_dir / f"{stem}.{kind}" for kind in ("wav", "alaw", "ulaw")}
    finals["orig"] = dest_dir / f"{stem}.orig.{ext}"
    work = _make_workdir(dest_dir, stem, finals.values())
    try:
        cut = work / "cut.f32"
        measured = await _analyse(src, ext, cut, limits, name)
        cap_s = limits.max_duration_s + TRIM_ALLOWANCE_S
        if measured.decoded_s >= cap_s - 0.05:
            raise _refuse("too_long", f"{name}: more than {cap_s:g} s of audio", limits)
        expected_s = probe.duration_s
        if expected_s is not None and expected_s - measured.decoded_s > max(
            TRUNCATION_SLACK_S, TRUNCATION_TOLERANCE * expected_s
        ):
            raise _refuse(
                "truncated", f"{name}: decodes to {measured.decoded_s:.2f} s of {expected_s:.2f} s", limits
            )
        if measured.trimmed_s == 0 or measured.loudness_lufs < SILENCE_LUFS:
            raise _refuse("silence", f"{name}: {measured.loudness_lufs:.1f} LUFS", limits)
        if measured.trimmed_s < limits.min_duration_s:
            raise _refuse("too_short", f"{name}: {measured.trimmed_s:.2f} s after trimming", limits)
        if measured.trimmed_s > limits.max_duration_s:
            raise _refuse("too_long", f"{name}: {measured.trimmed_s:.2f} s after trimming", limits)

        staged = {kind: work / path.name for kind, path in finals.items()}
        lufs, peak = await _normalise(
            cut, (staged["wav"], staged["alaw"], staged["ulaw"]), measured.loudness_lufs, limits, name
        )
        await _copy(src, staged["orig"])
        _publish(staged, finals)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("audio_converted", source=name, duration_s=measured.trimmed_s, lufs=lufs, true_peak_dbfs=peak)
    return ConvertedAudio(
        duration_s=measured.trimmed_s,
        wav=finals["wav"],
        alaw=finals["alaw"],
        ulaw=finals["ulaw"],
        original=finals["orig"],
        loudness_lufs=lufs,
        true_peak_dbfs=peak,
    )


def _make_workdir(dest_dir: Path, stem: str, finals: Iterable[Path]) -> Path:
    """A fresh temp directory inside ``dest_dir``, after checking no final file would be replaced.

    Metadata-only file operations (this, _publish, the cleanup) stay on the event loop on purpose:
    they take microseconds, and a thread could still be creating a file after a cancelled task has
    cleaned up.
    """
    if existing := [p for p in finals if p.exists()]:
        raise FileExistsError(f"would overwrite {existing[0]}")
    make_media_dir(dest_dir)
    return Path(tempfile.mkdtemp(prefix=f".tmp-{stem}-", dir=dest_dir))


def make_media_dir(path: Path) -> None:
    """Create a directory of the media tree. Made by root (an operator's `vocalcast message add`), it goes
    to the tree's owner, the engine's service user, who writes into it later (issue 17)."""
    if path.is_dir():
        return
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(MEDIA_DIR_MODE)  # whatever the umask of the command that made it
    owner = path.parent.stat().st_uid
    if os.geteuid() == 0 and owner != 0:
        os.chown(path, owner, -1)  # the group is the tree's already (setgid)


def _publish(staged: dict[str, Path], finals: dict[str, Path]) -> None:
    """Move every staged file into place, all or none.

    os.link refuses to replace an existing file (os.rename would silently overwrite another message).
    """
    placed: list[Path] = []
    try:
        for kind, path in staged.items():
            # Customer audio: the owner and the media directory's group (Asterisk's) only (issue 17).
            path.chmod(MEDIA_FILE_MODE)
            os.link(path, finals[kind])
            placed.append(finals[kind])
    except BaseException:
        for path in placed:
            path.unlink(missing_ok=True)
        raise


async def probe_duration_s(path: Path, *, timeout_s: float = 60.0) -> float:
    """The duration ffprobe reads from the container (exact for WAV; MP3 from its header)."""
    limits = AudioLimits(run_timeout_s=timeout_s)
    rc, out, err = await _run(
        [
            "ffprobe",
            "-v",
            "error",
            *_PROBE_WHITELIST,
            "-of",
            "json",
            "-show_entries",
            "format=duration",
            f"file:{path}",
        ],
        timeout_s,
        limits,
    )
    try:
        return float(json.loads(out)["format"]["duration"])
    except (ValueError, KeyError) as exc:
        raise _refuse("unsupported_format", f"{path}: no duration (rc={rc}): {err.strip()}", limits) from exc


async def measure_loudness(path: Path, *, timeout_s: float = 60.0) -> tuple[float, float]:
    """(integrated loudness LUFS, true peak dBFS) of a file as it is, by ffmpeg's ebur128."""
    limits = AudioLimits(run_timeout_s=timeout_s)
    rc, _, err = await _run(
        _ffmpeg(
            *_INPUT_WHITELIST, "-i", f"file:{path}", "-filter_complex", "ebur128=peak=true:framelog=verbose",
            "-f", "null", "-",
        ),
        timeout_s,
        limits,
    )  # fmt: skip
    errors = _error_lines(err)
    if rc != 0 or errors:
        raise _refuse("corrupt", f"{path}: ffmpeg rc={rc}: {' | '.join(errors[:3])}", limits)
    lufs, peak = _loudness_from(err)
    if peak is None:
        raise RuntimeError("ebur128 printed no true peak")
    return lufs, peak
