"""Media over HTTP on the real Asterisk (issue 19, VOCALCAST_MEDIA_TRANSPORT=http): a send plays a message
that Asterisk cannot see on any filesystem, fetched from the engine's media listener by its signed URL;
the message's file replaced, the next call plays the new audio (a new URL, the old one 404); a forged
or unsigned URL gets 403."""

from __future__ import annotations

import dataclasses
import re
import time
from array import array
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.app import Engine
from engine.domain.sends import SendStatus
from engine.domain.trunks import Trunk
from engine.media.audio import convert
from engine.media.paths import host_dir, instance_dir
from engine.media.server import prune_cache
from engine.services.messages import Messages, audio_limits, playback_uri
from engine.services.sends import create_send
from engine.settings import Settings
from engine.stack.asterisk import cli
from engine.stack.root import root_path
from engine.store import Database
from engine.store import sends as sends_store
from engine.store.accounts import create_account, get_account
from engine.telephony.probe import probe_call
from lab import tones
from lab.rtpcapture import RtpCapture, samples_to
from lab.sipp import SippProcess
from tests.conftest import PORT_BASE
from tests.integration.conftest import Ari, add_trunk, wait_for
from tests.integration.dialing import SIPP_DIR, targets
from tests.integration.test_dialer import fast

pytestmark = pytest.mark.integration

FIRST_HZ = 1234.0
SECOND_HZ = 1800.0
TONE_S = 2.0


def tone_file(tmp: Path, name: str, freq_hz: float) -> Path:
    return tones.write_wav(tmp / name, tones.sine(freq_hz, TONE_S, 0.4))


async def test_a_send_plays_a_message_asterisk_fetches_over_http(
    stack_settings: Settings, db: Database, ari: Ari, sipp_ports: Any, tmp_path: Path
) -> None:
    # The library lives where Asterisk cannot look: outside its root, mounted nowhere.
    library = tmp_path / "library"
    settings = dataclasses.replace(
        fast(stack_settings),
        media_transport="http",
        media_http_port=PORT_BASE + 84,
        media_dir_override=str(library),
    )
    root = root_path(settings)
    assert not library.resolve().is_relative_to(root)
    account = (
        await create_account(db, "http@example.fr", secret_key=settings.require("secret_key"), credits=10)
    ).account
    message = await Messages(db, settings).add(
        account.id, tone_file(tmp_path, "first.wav", FIRST_HZ), origin="file"
    )
    alaw = library / f"{message.audio_stem}.alaw"
    assert alaw.is_file()
    assert not (root / instance_dir(settings).relative_to("/") / "media" / alaw.relative_to(library)).exists()
    uri = playback_uri(settings, message)
    assert uri.startswith(f"sound:{settings.media_base_url}/m/") and uri.endswith(".alaw"), uri
    url = uri.removeprefix("sound:")

    sip_port, media_port = sipp_ports()
    await add_trunk(
        settings, Trunk(name="http-media", host="127.0.0.1", port=sip_port, number_format="national")
    )
    phone = SippProcess(
        SIPP_DIR / "media_uas_answer.xml",
        local_port=sip_port,
        media_port=media_port,
        workdir=tmp_path,
        recv_timeout_ms=20000,
        extra_args=["-aa"],
    )
    async with phone, Engine(settings), RtpCapture([media_port]) as capture:
        send = await create_send(
            db,
            settings,
            await get_account(db, account.id),
            message_ref=message.ref,
            targets=targets(["0611000840"]),
            origin="cli",
        )

        async def completed() -> bool:
            return (await sends_store.get_send(db, send.id)).status is SendStatus.completed

        await wait_for(completed, timeout_s=30, interval_s=0.2, what="the send to complete")
        # The callee heard the message, whole: played from the URL, nothing else could give it.
        heard = samples_to(capture.streams, media_port)
        assert TONE_S * 0.95 <= tones.tone_duration_s(heard, FIRST_HZ) <= TONE_S * 1.05
        rows = await sends_store.recipients(db, send.id)
        assert [r["outcome"] for r in rows] == ["listened"]
        # Asterisk's media cache holds it under its signed URL.
        assert url in cli(settings, root, "media cache show all")
        # … until a year has passed (our max-age honoured): later plays on this server ask nothing.
        shown = cli(settings, root, f"media cache show {url}")
        expires = re.search(r"__actual_expires:\s*(\d+)", shown)
        assert expires is not None, shown
        assert int(expires[1]) > time.time() + 364 * 86400, shown
        # The node's cache pruned (VOCALCAST_MEDIA_CACHE_KEEP_S: a deleted message leaves the media
        # servers): the file is gone, and the next play of the same URL fetches it again and plays it.
        cached = re.search(r"Path:\s*(\S+)", shown)
        assert cached is not None, shown
        cache_files = list((host_dir(settings) / "cache").glob(Path(cached[1]).name.split(".")[0] + ".*"))
        assert len(cache_files) == 1, cache_files  # the CLI cuts the path's end: found by its stem
        cache_file = cache_files[0]
        assert prune_cache(host_dir(settings) / "cache", 0, time.time()) >= 1
        assert not cache_file.exists()
        heard = await play(ari, capture, media_port, uri)
        assert TONE_S * 0.95 <= tones.tone_duration_s(heard, FIRST_HZ) <= TONE_S * 1.05

        async with aiohttp.ClientSession() as http:
            async with http.get(url) as response:
                assert response.status == 200
                assert await response.read() == alaw.read_bytes()
                assert "max-age" in response.headers["Cache-Control"] and response.headers["ETag"]
            sig = url.split("/")[-3]
            forged = url.replace(sig, sig[::-1])
            unsigned = f"{settings.media_base_url}/{alaw.relative_to(library)}"
            for refused in (forged, unsigned):
                async with http.get(refused) as response:
                    assert response.status == 403, refused

            # The message's audio replaced under the same name (an edit): a new URL, the old one is gone.
            fresh = await convert(
                tone_file(tmp_path, "second.wav", SECOND_HZ), tmp_path / "new", "new", audio_limits(settings)
            )
            for made in (fresh.wav, fresh.alaw, fresh.ulaw):
                made.replace(library / f"{message.audio_stem}{made.suffix}")
            new_uri = playback_uri(settings, message)
            assert new_uri != uri
            async with http.get(url) as response:
                assert response.status == 404
        heard = await play(ari, capture, media_port, new_uri)
        assert TONE_S * 0.95 <= tones.tone_duration_s(heard, SECOND_HZ) <= TONE_S * 1.05
        assert tones.tone_duration_s(heard, FIRST_HZ) < 0.1  # never the old audio from the cache


async def play(ari: Ari, capture: RtpCapture, media_port: int, media: str) -> array[int]:
    """One call of the test's own ARI application playing ``media``; what the callee heard."""
    before = {stream.key for stream in capture.streams}
    result = await probe_call(
        ari.client,
        ari.router,
        endpoint="PJSIP/0611000841@http-media",
        media=media,
        ring_timeout_s=10,
        max_duration_s=20,
    )
    assert result.error == "" and result.played_to_end, result
    return samples_to([s for s in capture.streams if s.key not in before], media_port)
