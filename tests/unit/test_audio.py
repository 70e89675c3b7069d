"""engine.media.audio on audio made here (ffmpeg, espeak-ng): formats, trimming, loudness, refusals."""

from __future__ import annotations

import array
import asyncio
import math
import random
import subprocess
import wave
from pathlib import Path

import pytest

from engine.errors import InvalidInput
from engine.media import audio
from engine.media.audio import AudioLimits, convert, measure_loudness, probe_duration_s

# Tone files: LEAD_S of silence, TONE_S of sine, TAIL_S of silence. After trimming, TRIM_PAD_S of
# silence is kept on each side.
LEAD_S, TONE_S, TAIL_S = 1.0, 2.0, 1.5
TRIMMED_S = TONE_S + 2 * audio.TRIM_PAD_S


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def _tone(
    path: Path,
    expr: str = "0.25*sin(2*PI*440*t)",
    *,
    tone_s: float = TONE_S,
    rate: int = 44100,
    layout: str = "stereo",
    codec: tuple[str, ...] = ("-c:a", "pcm_s16le"),
) -> Path:
    """``expr`` between LEAD_S and TAIL_S of digital silence."""
    total_s = LEAD_S + tone_s + TAIL_S
    gated = f"if(between(t,{LEAD_S},{LEAD_S + tone_s}),{expr},0)"
    _ffmpeg(
        "-f", "lavfi", "-i", f"aevalsrc='{gated}':s={rate}:d={total_s}:c={layout}",
        *codec, str(path),
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every input file of this module, made once."""
    d = tmp_path_factory.mktemp("audio-in")
    mp3 = ("-c:a", "libmp3lame", "-b:a", "64k")
    files = {
        "wav_stereo_44k": _tone(d / "stereo44k.wav"),
        "mp3": _tone(d / "tone.mp3", codec=mp3),
        "alias": _tone(d / "alias.wav", "0.25*sin(2*PI*1000*t)+0.25*sin(2*PI*6000*t)", layout="mono"),
        # Quiet bed with 2 ms full-scale clicks: the gain to −20 LUFS drives the clicks far over 0 dBFS.
        "clicks": _tone(
            d / "clicks.wav", "0.01*sin(2*PI*440*t)+0.9*lt(mod(t,0.25),0.002)", tone_s=3.0, layout="mono"
        ),
        "short": _tone(d / "short.wav", tone_s=0.3),
        "long": _tone(d / "long.wav", tone_s=3.0),
        "near_silence": _tone(d / "hiss.wav", "0.0002*sin(2*PI*440*t)"),
        "m4a": _tone(d / "tone.m4a", codec=("-c:a", "aac")),
        "big": _tone(d / "big.wav", tone_s=20.0),
    }
    silence = d / "silence.wav"
    _ffmpeg("-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono", "-t", "3", str(silence))
    files["silence"] = silence
    speech_wav = d / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-v", "fr", "-w", str(speech_wav), "Bonjour, ceci est un message de test."],
        check=True,
    )
    files["speech_mp3"] = d / "speech.mp3"
    _ffmpeg("-i", str(speech_wav), "-ar", "44100", "-ac", "2", *mp3, str(files["speech_mp3"]))

    rng = random.Random(4)
    empty = d / "empty.wav"
    empty.write_bytes(b"")
    text = d / "notes.mp3"
    text.write_text("Ceci n'est pas un MP3.\n" * 50)
    noise = d / "noise.wav"
    noise.write_bytes(rng.randbytes(50_000))
    good_mp3 = files["mp3"].read_bytes()
    truncated_mp3 = d / "truncated.mp3"
    truncated_mp3.write_bytes(good_mp3[: len(good_mp3) // 3])
    good_wav = files["long"].read_bytes()
    truncated_wav = d / "truncated.wav"
    truncated_wav.write_bytes(good_wav[: len(good_wav) // 2])
    garbled = d / "garbled.mp3"
    half = len(good_mp3) // 2
    garbled.write_bytes(good_mp3[:half] + rng.randbytes(3000) + good_mp3[half + 3000 :])
    files.update(
        empty=empty,
        text=text,
        noise=noise,
        truncated_mp3=truncated_mp3,
        truncated_wav=truncated_wav,
        garbled=garbled,
    )
    return files


async def _run(*argv: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return out


async def _decode_raw(path: Path, fmt: str) -> array.array[int]:
    """Raw G.711 at 8 kHz back to s16 samples."""
    pcm = await _run(
        "ffmpeg", "-nostdin", "-v", "error", "-f", fmt, "-ar", "8000", "-ch_layout", "mono",
        "-i", str(path), "-f", "s16le", "-",
    )  # fmt: skip
    return array.array("h", pcm)


def _read_wav(path: Path) -> tuple[wave._wave_params, array.array[int]]:
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        samples = array.array("h", w.readframes(params.nframes))
    return params, samples


def _tone_dbfs(samples: array.array[int], freq_hz: float, rate: int = 8000) -> float:
    """Amplitude of one frequency (Goertzel), in dBFS, over the middle second of the signal."""
    mid = len(samples) // 2
    block = samples[mid - rate // 2 : mid + rate // 2]
    coeff = 2 * math.cos(2 * math.pi * freq_hz / rate)
    s1 = s2 = 0.0
    for x in block:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    amplitude = 2 * math.sqrt(max(power, 0.0)) / len(block)
    return 20 * math.log10(max(amplitude, 1e-9) / 32768)


def _assert_target_loudness(lufs: float, peak: float) -> None:
    assert abs(lufs - audio.TARGET_LUFS) <= audio.LOUDNESS_TOLERANCE_LU, lufs
    assert peak <= audio.TRUE_PEAK_MAX_DBFS, peak


@pytest.mark.parametrize("kind", ["wav_stereo_44k", "mp3"])
async def test_upload_becomes_trimmed_normalised_8k_mono(media: dict[str, Path], kind: str, tmp_path: Path):
    src = media[kind]
    result = await convert(src, tmp_path, "m1", AudioLimits())

    params, _ = _read_wav(result.wav)
    assert (params.nchannels, params.framerate, params.sampwidth) == (1, 8000, 2)
    assert result.wav.stat().st_size == 44 + 2 * params.nframes  # bare header, no extra chunk
    assert result.duration_s == pytest.approx(TRIMMED_S, abs=0.03)
    assert params.nframes / 8000 == pytest.approx(result.duration_s, abs=1e-3)
    assert await probe_duration_s(result.wav) == pytest.approx(result.duration_s, abs=1e-3)

    lufs, peak = await measure_loudness(result.wav)
    _assert_target_loudness(lufs, peak)
    assert (lufs, peak) == pytest.approx((result.loudness_lufs, result.true_peak_dbfs), abs=0.11)

    assert result.original.read_bytes() == src.read_bytes()
    assert result.original.name == f"m1.orig.{'mp3' if kind == 'mp3' else 'wav'}"
    assert _listing(tmp_path) == sorted(["m1.wav", "m1.alaw", "m1.ulaw", result.original.name])


async def test_g711_files_hold_the_same_audio(media: dict[str, Path], tmp_path: Path):
    result = await convert(media["mp3"], tmp_path, "m1", AudioLimits())
    _, slin = _read_wav(result.wav)
    for path, fmt in ((result.alaw, "alaw"), (result.ulaw, "mulaw")):
        assert path.stat().st_size == len(slin)  # one byte per sample: 8000 bytes/s
        decoded = await _decode_raw(path, fmt)
        assert len(decoded) == len(slin)
        # G.711 keeps ~38 dB of SNR on a tone at this level: same audio, not just same length.
        error = sum((a - b) ** 2 for a, b in zip(decoded, slin, strict=True))
        signal = sum(a * a for a in slin)
        assert 10 * math.log10(signal / max(error, 1)) > 30


async def test_speech_mp3_is_normalised(media: dict[str, Path], tmp_path: Path):
    src = media["speech_mp3"]
    result = await convert(src, tmp_path, "speech", AudioLimits())
    source_s = await probe_duration_s(src)
    assert 1.0 < result.duration_s <= source_s
    _assert_target_loudness(*await measure_loudness(result.wav))


async def test_limiter_keeps_true_peak_under_ceiling(media: dict[str, Path], tmp_path: Path):
    result = await convert(media["clicks"], tmp_path, "m1", AudioLimits())
    lufs, peak = await measure_loudness(result.wav)
    _assert_target_loudness(lufs, peak)


async def test_content_above_4khz_does_not_fold_back(media: dict[str, Path], tmp_path: Path):
    # 1 kHz + 6 kHz at 44.1 kHz: without an anti-alias filter the 6 kHz tone folds to 2 kHz at 8 kHz.
    result = await convert(media["alias"], tmp_path, "m1", AudioLimits())
    _, samples = _read_wav(result.wav)
    assert _tone_dbfs(samples, 1000) > -25
    assert _tone_dbfs(samples, 2000) < -50


BAD_FILES = [
    ("empty", "empty", AudioLimits()),
    ("long", "too_large", AudioLimits(max_bytes=10_000)),
    ("text", "unsupported_format", AudioLimits()),
    ("noise", "unsupported_format", AudioLimits()),
    ("m4a", "unsupported_format", AudioLimits()),
    ("garbled", "corrupt", AudioLimits()),
    ("truncated_mp3", "truncated", AudioLimits()),
    ("truncated_wav", "truncated", AudioLimits()),
    ("short", "too_short", AudioLimits()),
    ("long", "too_long", AudioLimits(max_duration_s=2.5)),
    ("silence", "silence", AudioLimits()),
    ("near_silence", "silence", AudioLimits()),
]


@pytest.mark.parametrize(("kind", "code", "limits"), BAD_FILES, ids=[f"{k}-{c}" for k, c, _ in BAD_FILES])
async def test_bad_file_is_refused_and_leaves_nothing(
    media: dict[str, Path], kind: str, code: str, limits: AudioLimits, tmp_path: Path
):
    with pytest.raises(InvalidInput) as caught:
        await convert(media[kind], tmp_path, "m1", limits, original_name=f"upload-{kind}")
    assert caught.value.code == code
    assert caught.value.message_fr and caught.value.message_fr != InvalidInput.message_fr
    assert f"upload-{kind}" in str(caught.value)
    assert _listing(tmp_path) == []


async def test_timeout_is_refused_and_leaves_nothing(media: dict[str, Path], tmp_path: Path):
    with pytest.raises(InvalidInput) as caught:
        await convert(media["big"], tmp_path, "m1", AudioLimits(run_timeout_s=0.001))
    assert caught.value.code == "timeout"
    assert _listing(tmp_path) == []
    assert _processes_using(tmp_path) == []


def _listing(directory: Path) -> list[str]:
    """Every name in ``directory``, hidden temp directories included."""
    return sorted(p.name for p in directory.iterdir())


def _processes_using(path: Path) -> list[str]:
    """Command lines of live processes that mention ``path``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in text:
            found.append(text)
    return found


async def _wait_for(predicate, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


@pytest.mark.parametrize("stage", ["analyse", "render"])
async def test_cancelled_conversion_leaves_nothing(media: dict[str, Path], tmp_path: Path, stage: str):
    task = asyncio.create_task(convert(media["big"], tmp_path, "m1", AudioLimits()))

    def reached() -> bool:
        staged = [p for d in tmp_path.glob(".tmp-*") for p in d.iterdir()]
        if stage == "analyse":
            return any(p.name == "cut.f32" for p in staged)
        return any(p.name == "m1.wav" for p in staged)

    await _wait_for(lambda: reached() or task.done())
    assert not task.done(), "conversion finished before it could be cancelled"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _listing(tmp_path) == []
    assert _processes_using(tmp_path) == []


async def test_existing_files_are_never_overwritten(media: dict[str, Path], tmp_path: Path):
    (tmp_path / "m1.alaw").write_bytes(b"another message")
    with pytest.raises(FileExistsError):
        await convert(media["mp3"], tmp_path, "m1", AudioLimits())
    assert _listing(tmp_path) == ["m1.alaw"]
    assert (tmp_path / "m1.alaw").read_bytes() == b"another message"


@pytest.mark.parametrize("stem", ["", ".hidden", "a/b", ".."])
async def test_stem_must_be_a_plain_name(media: dict[str, Path], tmp_path: Path, stem: str):
    with pytest.raises(ValueError, match="stem"):
        await convert(media["mp3"], tmp_path, stem, AudioLimits())


@pytest.mark.parametrize("rate", [8000, 44100])
async def test_message_without_silence_around_it_is_kept_whole(rate: int, tmp_path: Path):
    # Regression: ffmpeg 5.1's rms silence detection emptied a signal with no trailing silence.
    src = tmp_path / "tight.wav"
    _ffmpeg("-f", "lavfi", "-i", f"sine=frequency=700:duration=2:sample_rate={rate}", "-ac", "1", str(src))
    result = await convert(src, tmp_path / "out", "m", AudioLimits())
    assert result.duration_s == pytest.approx(2.0, abs=0.03)
