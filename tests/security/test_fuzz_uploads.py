"""Uploads fuzzed, seeded, through the API: malformed contacts CSV (POST /contacts/import) and malformed
audio (POST /messages). Each answer is one the OpenAPI document lists for the route, with a documented
error code and a French message — never a 500; nothing is half-written (contacts, groups, memberships and
messages counted before and after each request) and no file is left behind (the media dir, the engine's
temp dir and Asterisk's recording spool, listed before and after).

`VOCALCAST_FUZZ_CSV` and `VOCALCAST_FUZZ_AUDIO` set how many files (default 20 each; `make fuzz` runs the
issue's 200 each); `VOCALCAST_FUZZ_SEED` replays a run (the seed is in every failure); see
tests/security/fuzzing.py for the shared time budget."""

from __future__ import annotations

import asyncio
import codecs
import io
import json
import random
import struct
import subprocess
import tempfile
import wave
from array import array
from collections.abc import AsyncIterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest

from engine.app import Engine
from engine.media.audio import _MESSAGES_FR as AUDIO_REFUSALS
from engine.store import Database
from engine.store.tokens import create_token
from engine.web import openapi
from lab import tones
from tests.integration.dialing import Customer
from tests.security.fuzzing import SEED, budget, count, leftovers

pytestmark = pytest.mark.integration
CSV_FILES: Final = count("CSV", 20)
AUDIO_FILES: Final = count("AUDIO", 20)
# The codes of a refused multipart request (engine.web.api_common.read_upload) or title.
REQUEST_REFUSALS: Final = frozenset(
    {"not_multipart", "bad_multipart", "field_invalid", "unknown_field", "field_missing", "too_large"}
)
CSV_REFUSALS: Final = REQUEST_REFUSALS | {"not_csv", "empty_file", "no_phone_column", "file_too_large"}
AUDIO_CODES: Final = REQUEST_REFUSALS | set(AUDIO_REFUSALS) | {"greeting_too_long", "title_invalid"}


def documented(path: str, method: str) -> set[int]:
    return {int(status) for status in openapi.document()["paths"][path][method]["responses"]}


@dataclass
class Api:
    engine: Engine
    token: str
    http: aiohttp.ClientSession

    async def post(self, path: str, form: aiohttp.FormData) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.engine.http_port}/api/v1{path}"
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.http.post(url, data=form, headers=headers) as resp:
            raw = await resp.read()
            body = json.loads(raw) if resp.content_type == "application/json" else raw
            return resp.status, body


@pytest.fixture
async def api(engine: Engine, client: Customer, db: Database) -> AsyncIterator[Api]:
    token = (await create_token(db, client.account.id, label="fuzz")).secret
    async with aiohttp.ClientSession() as http:
        yield Api(engine, token, http)


@pytest.fixture
def engine_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp dir of the engine's own for this test (/tmp is shared with other runs on the machine)."""
    tmp = tmp_path / "engine-tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("TMPDIR", str(tmp))
    return tmp


def upload(data: bytes, filename: str | None, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(data), filename=filename or "", content_type="application/octet-stream")
    for name, value in fields.items():
        form.add_field(name, value)
    return form


def check_refusal(where: str, status: int, body: Any, statuses: set[int], codes: AbstractSet[str]) -> str:
    assert status in statuses, f"{where}: HTTP {status} {body!r:.300}"
    assert isinstance(body, dict) and set(body) >= {"code", "message"}, f"{where}: {body!r:.300}"
    assert body["code"] in codes and body["message"], f"{where}: {body!r:.300}"
    return str(body["code"])


# --- contacts CSV --------------------------------------------------------------------------------------

HEADERS: Final = (
    "Société;Nom;Prénom;Téléphone;Groupe",
    "societe,nom,prenom,telephone,groupe",
    "Nom\tTél.\tGroupes",
    "Entreprise;Nom;Portable;Consentement;Source consentement;Preuve",
    "A;B;C;D;E",
    "",
)
PHONES: Final = (
    "06 12 34 56 78", "+33612345679", "0033 6 12 34 56 80", "0899123456", "12", "", "06.12.34.56.81",
    "612345682", "=1+1", "06 12 34 56 78 90 12", "+44 20 7946 0958", "0\u0666\u0661\u0662", "0612345683\t",
)  # fmt: skip
CELLS: Final = (
    "", "Mairie", "Dupont", "Élus", "=HYPERLINK(\"http://x\")", "\"", "\"\"quoted", "x" * 5000, "a;b",
    "\u202e", "01/02/2024", "31/02/2024", "2024-13-45", "\r", "\u00a0", "groupe " * 40, "😀", "\\N",
)  # fmt: skip
ENCODINGS: Final = ("utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16", "utf-16-be", "utf-32", "cp850")


def csv_file(rng: random.Random) -> bytes:
    """A contacts file as a customer, a broken export or an attacker may send it."""
    pick = rng.randrange(14)  # 7 and above: no damage to the bytes themselves
    if pick == 0:
        return rng.randbytes(rng.randrange(0, 3000))
    if pick == 1:  # a known binary format
        magic = [b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"%PDF-1.4\n", b"\x89PNG\r\n"]
        return rng.choice(magic) + rng.randbytes(500)
    sep = ";" if rng.random() < 0.8 else rng.choice([",", "\t", "|", ";;"])  # Excel's is ";"
    lines = [rng.choice(HEADERS).replace(";", sep)] if rng.random() < 0.8 else []
    proper = rng.random() < 0.6  # Excel's own layout, the phone in its column: the cells are the trouble
    if proper and lines:
        lines[0] = HEADERS[0].replace(";", sep)
    for _ in range(rng.randrange(0, 40)):
        cells = [rng.choice(CELLS) for _ in range(4 if proper else rng.randrange(0, 8))]
        cells.insert(3 if proper else rng.randrange(len(cells) + 1), rng.choice(PHONES))
        if rng.random() < 0.2:
            cells = ['"' + c for c in cells]  # unbalanced quotes
        lines.append(sep.join(cells))
    text = rng.choice(["\r\n", "\n", "\r", "\n\r"]).join(lines)
    encoding = rng.choice(ENCODINGS) if rng.random() < 0.2 else rng.choice(ENCODINGS[:3])
    data = text.encode(encoding, errors="replace")
    if pick == 2 and data:  # cut anywhere, even inside a multi-byte character
        data = data[: rng.randrange(len(data))]
    elif pick == 3 and data:  # bytes flipped
        flipped = bytearray(data)
        for _ in range(rng.randrange(1, 10)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        data = bytes(flipped)
    elif pick == 4:  # NULs and controls sprinkled in
        data = b"".join(byte.to_bytes(1, "big") + (b"\x00" if rng.random() < 0.05 else b"") for byte in data)
    elif pick == 5:  # a BOM that lies about the encoding
        data = rng.choice([codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE]) + data
    elif pick == 6:  # one enormous line
        data += b";" * rng.choice([10_000, 200_000])
    return data


async def csv_state(db: Database, account: Customer) -> tuple[int, int, int]:
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM contacts WHERE account_id = $1) AS contacts, "
        "(SELECT count(*) FROM contact_groups WHERE account_id = $1) AS groups, "
        "(SELECT count(*) FROM group_members m JOIN contact_groups g ON g.id = m.group_id "
        " WHERE g.account_id = $1) AS members",
        account.account.id,
    )
    assert row is not None
    return int(row["contacts"]), int(row["groups"]), int(row["members"])


async def test_malformed_contacts_csv_gets_a_documented_answer_and_imports_whole_or_nothing(
    engine: Engine, client: Customer, db: Database, api: Api, engine_tmp: Path
) -> None:
    rng = random.Random(SEED)
    statuses = documented("/contacts/import", "post")
    files_before = leftovers(engine.settings, engine_tmp)
    seen: dict[str, int] = {}
    done = 0
    with budget:
        for number in range(CSV_FILES):
            if not budget.left():
                break
            data = csv_file(rng)
            name = rng.choice(["contacts.csv", "export.CSV", "x.xlsx", "", "../../etc/passwd", "é%00.csv"])
            where = f"seed {SEED}, CSV {number}: {data[:120]!r}"
            before = await csv_state(db, client)
            status, body = await api.post("/contacts/import", upload(data, name))
            after = await csv_state(db, client)
            if status == 200:
                assert isinstance(body, dict), where
                expected = (
                    before[0] + body["imported"],
                    before[1] + body["groups_created"],
                    before[2] + body["memberships_added"],
                )
                assert after == expected, f"{where}: {body!r:.300}"
                key = "200"
            else:
                key = check_refusal(where, status, body, statuses, CSV_REFUSALS)
                assert after == before, f"{where}: a refused file changed the contacts"
            seen[key] = seen.get(key, 0) + 1
            done += 1
    print(f"fuzz seed {SEED}: {done} CSV files, answers {dict(sorted(seen.items()))}")
    assert leftovers(engine.settings, engine_tmp) == files_before, f"seed {SEED}: stray files"


# --- audio ---------------------------------------------------------------------------------------------


def wav_header(rate: int, channels: int, bits: int, data_size: int, fmt: int = 1) -> bytes:
    block = channels * bits // 8
    return (
        b"RIFF"
        + struct.pack("<I", (36 + data_size) & 0xFFFFFFFF)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, fmt, channels, rate, (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
        + b"data"
        + struct.pack("<I", data_size & 0xFFFFFFFF)
    )


def wav_bytes(samples: Sequence[int]) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(tones.RATE_HZ)
        writer.writeframes(array("h", samples).tobytes())
    return out.getvalue()


async def mp3_of(path: Path) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=660:duration=2",
        "-ac", "1", "-codec:a", "libmp3lame", "-b:a", "32k", str(path),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 0, err
    return await asyncio.to_thread(path.read_bytes)


def audio_file(rng: random.Random, wav: bytes, mp3: bytes) -> bytes:
    """An audio upload gone wrong — or crafted to make ffmpeg read something else."""
    pick = rng.randrange(12)
    good = rng.choice([wav, mp3])
    if pick == 0:
        return rng.randbytes(rng.randrange(0, 5000))
    if pick == 1:  # cut anywhere
        return good[: rng.randrange(len(good))]
    if pick == 2:  # bytes flipped
        flipped = bytearray(good)
        for _ in range(rng.randrange(1, 30)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        return bytes(flipped)
    if pick == 3:  # a WAV header that lies (rates, channels, sizes, formats)
        header = wav_header(
            rng.choice([0, 1, 8000, 44100, 2**31 - 1, 2**32 - 1]),
            rng.choice([0, 1, 2, 255, 65535]),
            rng.choice([0, 1, 8, 16, 24, 33]),
            rng.choice([0, 100, 2**31, 2**32 - 1]),
            fmt=rng.choice([1, 3, 6, 7, 0x55, 0xFFFE, 0]),
        )
        return header + rng.randbytes(rng.randrange(0, 4000))
    if pick == 4:  # playlists and scripts that name other files or URLs
        return rng.choice(
            [
                b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n",
                b"#EXTM3U\nhttp://127.0.0.1:1/x.wav\n",
                b"ffconcat version 1.0\nfile '/etc/shadow'\n",
                b"[playlist]\nFile1=/etc/passwd\n",
                b'<?xml version="1.0"?><smil><body><audio src="/etc/passwd"/></body></smil>',
            ]
        )
    if pick == 5:  # an ID3 tag claiming any size, then junk or the real audio
        size = bytes(rng.randrange(128) for _ in range(4))
        return b"ID3\x04\x00\x00" + size + rng.choice([rng.randbytes(200), mp3])
    if pick == 6:  # other containers
        return rng.choice([b"OggS\x00\x02", b"fLaC\x00\x00\x00\x22", b"\x1aE\xdf\xa3", b"ftypM4A "]) + (
            rng.randbytes(2000)
        )
    if pick == 7:  # silence, or a sound too short
        seconds = rng.choice([0.01, 0.5, 3.0])
        samples = tones.silence(seconds) if rng.random() < 0.5 else tones.sine(440.0, seconds, 0.4)
        return wav_bytes(samples)
    if pick == 8:  # two files glued together
        return wav + mp3 if rng.random() < 0.5 else mp3 + wav
    if pick == 9:  # a RIFF chunk tree with an absurd chunk
        return wav[:12] + b"LIST" + struct.pack("<I", rng.choice([2**32 - 1, 10**6])) + wav[12:]
    if pick == 10:
        return b""
    return good  # a good file, with odd names, titles and flags below


async def message_state(db: Database, who: Customer) -> tuple[int, set[str]]:
    """The account's live messages and the files they name (relative to the media dir)."""
    rows = await db.fetch(
        "SELECT audio_stem, original_file FROM messages WHERE account_id = $1 AND deleted_at IS NULL",
        who.account.id,
    )
    names = set()
    for row in rows:
        names |= {f"{row['audio_stem']}.{ext}" for ext in ("wav", "alaw", "ulaw")} | {row["original_file"]}
    return len(rows), names


async def test_malformed_audio_gets_a_documented_answer_and_leaves_no_file(
    engine: Engine, client: Customer, db: Database, api: Api, engine_tmp: Path
) -> None:
    rng = random.Random(SEED)
    statuses = documented("/messages", "post")
    wav = wav_bytes(tones.sine(500.0, 2.0, 0.4))
    mp3 = await mp3_of(engine_tmp.parent / "good.mp3")
    media = engine.settings.media_dir
    files_before = leftovers(engine.settings, engine_tmp)
    seen: dict[str, int] = {}
    created = done = 0
    with budget:
        for number in range(AUDIO_FILES):
            if not budget.left():
                break
            data = audio_file(rng, wav, mp3)
            name = rng.choice(["m.wav", "m.mp3", "m.m3u8", "", "../../x.wav", "é%00.mp3", "a" * 300 + ".wav"])
            fields = {}
            if rng.random() < 0.3:
                fields["greeting"] = rng.choice(["true", "false", "1", "peut-être", ""])
            if rng.random() < 0.3:
                fields["title"] = rng.choice(["Promo", " ", "x" * 200, "\x00", "=1+1", "😀"])
            where = f"seed {SEED}, audio {number}: {name!r} {fields} {data[:80]!r}"
            before = await message_state(db, client)
            status, body = await api.post("/messages", upload(data, name, **fields))
            after = await message_state(db, client)
            if status == 201:
                created += 1
                assert after[0] == before[0] + 1, where
                key = "201"
            else:
                key = check_refusal(where, status, body, statuses, AUDIO_CODES)
                assert after == before, f"{where}: a refused file changed the library"
            seen[key] = seen.get(key, 0) + 1
            done += 1
    print(f"fuzz seed {SEED}: {done} audio files, {created} messages, answers {dict(sorted(seen.items()))}")
    # Every file in the account's media dir is one of its messages', every other place is as it was.
    _, names = await message_state(db, client)
    account_dir = media / str(client.account.id)
    on_disk = {str(path.relative_to(media)) for path in account_dir.rglob("*") if not path.is_dir()}
    stray, missing = sorted(on_disk - names)[:5], sorted(names - on_disk)[:5]
    assert on_disk == names, f"seed {SEED}: stray {stray}, missing {missing}"
    after_files = leftovers(engine.settings, engine_tmp)
    new = {path for path in after_files - files_before if path.parent != account_dir}
    assert new == set(), f"seed {SEED}: stray files {sorted(new)[:5]}"
    assert len(after_files - files_before) == 4 * created, f"seed {SEED}"
