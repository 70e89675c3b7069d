"""The message library on the real PostgreSQL with audio made here: conversion at upload, references,
ownership, refusals that leave nothing behind, deletion, and what Asterisk and browsers are given."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import uuid
import wave
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from uuid import UUID

import pytest

from engine.domain.accounts import Message, MessageInUse
from engine.errors import InvalidInput, NotFound
from engine.media import audio
from engine.media.audio import measure_loudness
from engine.media.paths import instance_dir
from engine.services.messages import Messages, playback_uri
from engine.settings import Settings
from engine.store import Database
from engine.store import accounts as accounts_store
from engine.store import messages as store
from lab.tones import read_wav, silence, sine, tone_duration_s, write_wav

LEAD_S, TONE_S, TAIL_S = 0.5, 2.0, 0.5
TRIMMED_S = TONE_S + 2 * audio.TRIM_PAD_S


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def _tone(path: Path, *, rate: int, layout: str, codec: tuple[str, ...]) -> Path:
    """A 440 Hz tone between short stretches of silence (which the conversion trims)."""
    gated = f"if(between(t,{LEAD_S},{LEAD_S + TONE_S}),0.3*sin(2*PI*440*t),0)"
    _ffmpeg(
        "-f", "lavfi", "-i", f"aevalsrc='{gated}':s={rate}:d={LEAD_S + TONE_S + TAIL_S}:c={layout}",
        *codec, str(path),
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("library-in")
    files = {
        "wav": _tone(d / "annonce_soldes.wav", rate=44100, layout="stereo", codec=("-c:a", "pcm_s16le")),
        "mp3": _tone(
            d / "promo.mp3", rate=44100, layout="stereo", codec=("-c:a", "libmp3lame", "-b:a", "64k")
        ),
        # What the recording IVR hands over: an Asterisk recording, 8 kHz mono 16-bit WAV.
        "recording": write_wav(d / "recording.wav", [*silence(0.5), *sine(440, TONE_S, 0.3), *silence(0.5)]),
        "silence": write_wav(d / "silence.wav", silence(3.0)),
    }
    text = d / "lettre.mp3"
    text.write_text("Ceci n'est pas un fichier audio.\n" * 20)
    files["text"] = text
    empty = d / "vide.wav"
    empty.write_bytes(b"")
    files["empty"] = empty
    return files


@pytest.fixture
def settings(stack_settings: Settings, tmp_path: Path) -> Settings:
    """The test instance's settings with a media directory of this test's own."""
    return dataclasses.replace(stack_settings, media_dir_override=str(tmp_path / "media"))


async def _account(db: Database, settings: Settings, email: str) -> UUID:
    new = await accounts_store.create_account(db, email, secret_key=settings.require("secret_key"))
    return new.account.id


def _files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


def _wav_format(path: Path) -> tuple[int, int, int, float]:
    with wave.open(str(path), "rb") as w:
        return w.getnchannels(), w.getframerate(), w.getsampwidth(), w.getnframes() / w.getframerate()


async def _add(db: Database, settings: Settings, account_id: UUID, src: Path, **kwargs: object) -> Message:
    options: dict[str, object] = {"origin": "file", "original_name": src.name} | kwargs
    return await Messages(db, settings).add(account_id, src, **options)  # type: ignore[arg-type]


async def _fast_insert(db: Database, account_id: UUID) -> Message:
    """A row without audio, for the reference tests that need many."""
    message_id = uuid.uuid4()
    return await store.insert_message(
        db,
        message_id=message_id,
        account_id=account_id,
        title="t",
        origin="file",
        is_greeting=False,
        duration_s=1.0,
        audio_stem=PurePosixPath(f"{account_id}/{message_id}"),
        original_file=PurePosixPath(f"{account_id}/{message_id}.orig.wav"),
        original_name=None,
        loudness_lufs=-20.0,
        true_peak_dbfs=-2.0,
        created_at=datetime.now(UTC),
    )


# --- conversion at upload -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["wav", "mp3"])
async def test_uploads_come_out_8k_mono_normalised(
    db: Database, settings: Settings, media: dict[str, Path], kind: str
) -> None:
    account_id = await _account(db, settings, "a@example.fr")
    src = media[kind]
    message = await _add(db, settings, account_id, src)

    assert (message.ref, message.origin, message.is_greeting) == (1, "file", False)
    assert message.title == src.stem.replace("_", " ")
    assert message.original_name == src.name
    wav = message.wav(settings.media_dir)
    assert wav.parent == settings.media_dir / str(account_id)
    channels, rate, width, duration_s = _wav_format(wav)
    assert (channels, rate, width) == (1, 8000, 2)
    assert duration_s == pytest.approx(TRIMMED_S, abs=0.1)
    assert message.duration_s == pytest.approx(duration_s, abs=0.01)
    for ext in ("alaw", "ulaw"):  # one byte per sample at 8 kHz
        assert wav.with_suffix(f".{ext}").stat().st_size == pytest.approx(duration_s * 8000, abs=8)
    lufs, peak = await measure_loudness(wav)
    assert abs(lufs - audio.TARGET_LUFS) <= audio.LOUDNESS_TOLERANCE_LU
    assert peak <= audio.TRUE_PEAK_MAX_DBFS + 0.1
    assert message.loudness_lufs == pytest.approx(lufs, abs=0.2)
    original = settings.media_dir / message.original_file
    assert original.read_bytes() == src.read_bytes()  # kept as received, for download

    stored = await Messages(db, settings).get(account_id, 1)
    assert stored == message


async def test_a_phone_recording_becomes_a_message_like_an_upload(
    db: Database, settings: Settings, media: dict[str, Path]
) -> None:
    account_id = await _account(db, settings, "a@example.fr")
    message = await Messages(db, settings).add(
        account_id, media["recording"], origin="phone", is_greeting=True
    )
    assert (message.ref, message.origin, message.is_greeting, message.original_name) == (
        1,
        "phone",
        True,
        None,
    )
    assert message.title.startswith("Message d'accueil du ")
    channels, rate, _, duration_s = _wav_format(message.wav(settings.media_dir))
    assert (channels, rate) == (1, 8000)
    assert duration_s == pytest.approx(TRIMMED_S, abs=0.1)
    # The tone itself survived the conversion (not only its length).
    samples, _ = read_wav(message.wav(settings.media_dir))
    assert tone_duration_s(samples, 440) == pytest.approx(TONE_S, abs=0.1)
    assert media["recording"].exists()  # the caller's file is the caller's to remove


# --- references -----------------------------------------------------------------------------------------


async def test_refs_are_sequential_per_account_and_never_reused(
    db: Database, settings: Settings, media: dict[str, Path]
) -> None:
    a = await _account(db, settings, "a@example.fr")
    b = await _account(db, settings, "b@example.fr")
    assert [(await _add(db, settings, a, media["wav"])).ref for _ in range(3)] == [1, 2, 3]
    assert (await _add(db, settings, b, media["mp3"])).ref == 1
    await Messages(db, settings).delete(a, 3)
    assert (await _add(db, settings, a, media["wav"])).ref == 4  # 3 stays taken
    await Messages(db, settings).delete(a, 2)
    assert (await _fast_insert(db, a)).ref == 5
    assert [m.ref for m in await Messages(db, settings).list(a)] == [1, 4, 5]
    assert [m.ref for m in await Messages(db, settings).list(b)] == [1]


async def test_concurrent_additions_get_distinct_consecutive_refs(
    stack_settings: Settings, db: Database, settings: Settings
) -> None:
    a = await _account(db, settings, "a@example.fr")
    b = await _account(db, settings, "b@example.fr")
    async with Database(stack_settings.dsn, min_size=5, max_size=10) as pool:
        made = await asyncio.gather(*(_fast_insert(pool, a if i % 3 else b) for i in range(30)))
    assert sorted(m.ref for m in made if m.account_id == a) == list(range(1, 21))
    assert sorted(m.ref for m in made if m.account_id == b) == list(range(1, 11))


# --- refusals leave nothing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "code"), [("text", "unsupported_format"), ("empty", "empty"), ("silence", "silence")]
)
async def test_a_refused_upload_leaves_nothing_and_uses_no_ref(
    db: Database, settings: Settings, media: dict[str, Path], kind: str, code: str
) -> None:
    account_id = await _account(db, settings, "a@example.fr")
    with pytest.raises(InvalidInput) as info:
        await _add(db, settings, account_id, media[kind])
    assert info.value.code == code
    assert info.value.message_fr
    assert await db.fetchval("SELECT count(*) FROM messages") == 0
    assert _files_under(settings.media_dir) == []
    assert (await _add(db, settings, account_id, media["wav"])).ref == 1


async def test_a_bad_title_or_account_is_refused_before_converting(
    db: Database, settings: Settings, media: dict[str, Path]
) -> None:
    account_id = await _account(db, settings, "a@example.fr")
    with pytest.raises(InvalidInput) as info:
        await _add(db, settings, account_id, media["wav"], title="   ")
    assert info.value.code == "title_invalid"
    with pytest.raises(NotFound):
        await _add(db, settings, uuid.uuid4(), media["wav"])
    with pytest.raises(InvalidInput) as info:
        await _add(db, settings, account_id, media["wav"], origin="fax")
    assert info.value.code == "origin_invalid"
    assert _files_under(settings.media_dir) == []
    assert await db.fetchval("SELECT count(*) FROM messages") == 0


async def test_files_are_removed_when_the_row_cannot_be_written(
    db: Database, settings: Settings, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    account_id = await _account(db, settings, "a@example.fr")

    async def failing_insert(*args: object, **kwargs: object) -> Message:
        raise RuntimeError("database went away")

    monkeypatch.setattr(store, "insert_message", failing_insert)
    with pytest.raises(RuntimeError, match="went away"):
        await _add(db, settings, account_id, media["wav"])
    assert _files_under(settings.media_dir) == []
    assert await db.fetchval("SELECT next_message_ref FROM accounts WHERE id = $1", account_id) == 1


async def test_cancelled_during_the_insert_keeps_row_and_files_together(
    db: Database, settings: Settings, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while the row is being written: the insert finishes, the files stay with their row."""
    account_id = await _account(db, settings, "a@example.fr")
    real_insert = store.insert_message
    inserting = asyncio.Event()

    async def slow_insert(*args: object, **kwargs: object) -> Message:
        inserting.set()
        await asyncio.sleep(0.2)
        return await real_insert(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "insert_message", slow_insert)
    task = asyncio.create_task(_add(db, settings, account_id, media["wav"]))
    await inserting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [message] = await Messages(db, settings).list(account_id)
    assert sorted(_files_under(settings.media_dir)) == sorted(message.files(settings.media_dir))


# --- ownership ------------------------------------------------------------------------------------------


async def test_another_account_cannot_reach_a_message(
    db: Database, settings: Settings, media: dict[str, Path]
) -> None:
    a = await _account(db, settings, "a@example.fr")
    b = await _account(db, settings, "b@example.fr")
    message = await _add(db, settings, a, media["wav"])
    with pytest.raises(NotFound):
        await Messages(db, settings).get(b, message.ref)
    with pytest.raises(NotFound):
        await store.get_message_by_id(db, b, message.id)
    with pytest.raises(NotFound):
        await Messages(db, settings).rename(b, message.ref, "volé")
    with pytest.raises(NotFound):
        await Messages(db, settings).delete(b, message.ref)
    with pytest.raises(NotFound):
        await Messages(db, settings).listening_file(b, message.ref)
    with pytest.raises(NotFound):
        await Messages(db, settings).original_file(b, message.ref)
    assert await Messages(db, settings).get(a, message.ref) == message
    assert all(p.exists() for p in message.files(settings.media_dir))


# --- rename, delete, listen, play -----------------------------------------------------------------------


async def test_rename(db: Database, settings: Settings, media: dict[str, Path]) -> None:
    account_id = await _account(db, settings, "a@example.fr")
    message = await _add(db, settings, account_id, media["wav"], title="Première version")
    assert message.title == "Première version"
    renamed = await Messages(db, settings).rename(account_id, message.ref, "  Soldes   d'hiver ")
    assert renamed.title == "Soldes d'hiver"
    assert (await Messages(db, settings).get(account_id, message.ref)).title == "Soldes d'hiver"
    with pytest.raises(InvalidInput):
        await Messages(db, settings).rename(account_id, message.ref, "")
    with pytest.raises(NotFound):
        await Messages(db, settings).rename(account_id, 99, "x")


async def test_delete_removes_the_files_and_keeps_the_row(
    db: Database, settings: Settings, media: dict[str, Path]
) -> None:
    account_id = await _account(db, settings, "a@example.fr")
    message = await _add(db, settings, account_id, media["mp3"])
    deleted = await Messages(db, settings).delete(account_id, message.ref)
    assert deleted.id == message.id
    assert _files_under(settings.media_dir) == []
    assert await db.fetchval("SELECT deleted_at IS NOT NULL FROM messages WHERE id = $1", message.id)
    assert await Messages(db, settings).list(account_id) == []
    with pytest.raises(NotFound):
        await Messages(db, settings).get(account_id, message.ref)
    with pytest.raises(NotFound):
        await Messages(db, settings).delete(account_id, message.ref)


async def test_a_message_in_use_cannot_be_deleted(
    db: Database, settings: Settings, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    account_id = await _account(db, settings, "a@example.fr")
    message = await _add(db, settings, account_id, media["wav"])

    async def in_use(conn: object, message_id: UUID) -> bool:
        return message_id == message.id

    monkeypatch.setattr(store, "message_in_use", in_use)
    with pytest.raises(MessageInUse) as info:
        await Messages(db, settings).delete(account_id, message.ref)
    assert info.value.code == "message_in_use"
    assert "envoi" in info.value.message_fr
    assert await Messages(db, settings).get(account_id, message.ref) == message
    assert all(p.exists() for p in message.files(settings.media_dir))


async def test_listening_and_playback_paths(db: Database, settings: Settings, media: dict[str, Path]) -> None:
    account_id = await _account(db, settings, "a@example.fr")
    message = await _add(db, settings, account_id, media["mp3"])
    wav = await Messages(db, settings).listening_file(account_id, message.ref)
    assert wav == message.wav(settings.media_dir)
    assert wav.read_bytes()[:4] == b"RIFF"
    original, name = await Messages(db, settings).original_file(account_id, message.ref)
    assert (original.suffix, name) == (".mp3", "promo.mp3")
    assert original.read_bytes() == media["mp3"].read_bytes()
    uri = playback_uri(settings, message)
    assert uri == f"sound:{instance_dir(settings)}/media/{account_id}/{message.id}"


async def test_greetings_are_listed_apart(db: Database, settings: Settings) -> None:
    account_id = await _account(db, settings, "a@example.fr")
    plain = await _fast_insert(db, account_id)
    greeting_id = uuid.uuid4()
    greeting = await store.insert_message(
        db,
        message_id=greeting_id,
        account_id=account_id,
        title="accueil",
        origin="phone",
        is_greeting=True,
        duration_s=1.0,
        audio_stem=PurePosixPath(f"{account_id}/{greeting_id}"),
        original_file=PurePosixPath(f"{account_id}/{greeting_id}.orig.wav"),
        original_name=None,
        loudness_lufs=-20.0,
        true_peak_dbfs=-2.0,
        created_at=datetime.now(UTC),
    )
    assert [m.id for m in await Messages(db, settings).list(account_id)] == [plain.id, greeting.id]
    assert [m.id for m in await Messages(db, settings).list(account_id, greetings_only=True)] == [greeting.id]
