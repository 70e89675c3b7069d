"""Media across hosts (issue 19): signed per-version media URLs and the listener that serves them, the
settings that turn them on, and raw recordings fetched through a media server's ARI."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from engine.errors import ConfigurationError, TelephonyUnavailable
from engine.media import signing
from engine.media.paths import media_server_aris, sound_uri
from engine.media.server import CACHE_CONTROL, build_app, prune_cache
from engine.settings import Settings, SettingsError
from engine.stack import IMAGE_MODULE_DIR, asterisk
from ivr import service as ivr_service
from ivr.fastagi import FastAGIServer
from ivr.recording import IvrOptions, Recording, RecordingIVR
from ivr.remote import AriRecordings

KEY = signing.media_key("server-secret")
REL = "acc/0b0e-msg.alaw"


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env(
        {
            "VOCALCAST_STATE_DIR": str(tmp_path / "state"),
            "VOCALCAST_MEDIA_DIR": str(tmp_path / "media"),
            "VOCALCAST_SECRET_KEY": "server-secret",
            "VOCALCAST_NODE": "media-a",
            **env,
        }
    )


def write(media: Path, rel: str, data: bytes) -> Path:
    path = media / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    tmp.replace(path)  # as an edit would: a new file under the old name
    return path


def test_a_signature_holds_for_its_path_and_version_only() -> None:
    version = "0123456789abcdef"
    path = signing.url_path(KEY, REL, version)
    _, m, got_version, sig, *rest = path.split("/")
    assert (m, got_version, "/".join(rest)) == ("m", version, REL)
    assert signing.verify(KEY, REL, version, sig)
    assert not signing.verify(KEY, REL, "0123456789abcdee", sig)  # another version
    assert not signing.verify(KEY, "acc/other.alaw", version, sig)  # another file
    assert not signing.verify(signing.media_key("other-secret"), REL, version, sig)
    assert not signing.verify(KEY, REL, version, sig[:-1] + ("0" if sig[-1] != "0" else "1"))
    for bad in ("../etc/passwd.alaw", "/abs.alaw", "acc/.hidden.alaw", "acc/msg.mp3", "acc/x"):
        assert signing.safe_rel(bad) is None, bad
    with pytest.raises(ValueError):
        signing.url_path(KEY, "../x.alaw", version)


def test_a_replaced_file_gets_another_version(tmp_path: Path) -> None:
    path = write(tmp_path, REL, b"one")
    first = signing.file_version(path.stat())
    assert signing.file_version(path.stat()) == first
    write(tmp_path, REL, b"one")  # same bytes, new file: a new version all the same
    assert signing.file_version(path.stat()) != first


def test_sound_uri_in_http_mode_is_a_signed_url_of_the_alaw_file(tmp_path: Path) -> None:
    files = settings(tmp_path)
    http = settings(tmp_path, VOCALCAST_MEDIA_TRANSPORT="http", VOCALCAST_MEDIA_URL="http://10.0.0.2:9000/")
    stem = http.media_dir / "acc" / "msg"
    write(http.media_dir, "acc/msg.alaw", b"a")
    write(http.media_dir, "acc/msg.wav", b"w")
    assert sound_uri(files, stem) == f"sound:/srv/{files.instance_id}/media/acc/msg"
    uri = sound_uri(http, stem)
    assert uri.startswith("sound:http://10.0.0.2:9000/m/") and uri.endswith("/acc/msg.alaw"), uri
    # Prompts stay on each media server's own copy.
    prompt = http.state_dir / "asterisk" / "sounds" / "ivr_welcome"
    assert sound_uri(http, prompt) == f"sound:/srv/{http.instance_id}/sounds/ivr_welcome"


def test_media_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="VOCALCAST_MEDIA_TRANSPORT"):
        settings(tmp_path, VOCALCAST_MEDIA_TRANSPORT="nfs")
    with pytest.raises(SettingsError, match="VOCALCAST_MEDIA_SERVERS"):
        settings(tmp_path, VOCALCAST_MEDIA_SERVERS="a=ftp://x")
    with pytest.raises(SettingsError, match="VOCALCAST_MEDIA_URL"):
        settings(tmp_path, VOCALCAST_MEDIA_URL="10.0.0.2:9000")
    two = settings(
        tmp_path, VOCALCAST_MEDIA_SERVERS="media-a=http://10.0.0.1:8088/, media-b=http://10.0.0.2:8088"
    )
    assert media_server_aris(two) == {"media-a": "http://10.0.0.1:8088", "media-b": "http://10.0.0.2:8088"}
    one = settings(tmp_path, VOCALCAST_ARI_PORT="18123")
    assert media_server_aris(one) == {"media-a": "http://127.0.0.1:18123"}


async def test_the_listener_serves_a_signed_version_and_refuses_everything_else(tmp_path: Path) -> None:
    path = write(tmp_path, REL, b"\xd5" * 800)
    version = signing.file_version(path.stat())
    good = signing.url_path(KEY, REL, version)
    async with TestClient(TestServer(build_app(tmp_path, KEY))) as client:
        response = await client.get(good)
        assert response.status == 200
        assert await response.read() == b"\xd5" * 800
        assert response.headers["Content-Type"] == "audio/x-alaw-basic"
        assert response.headers["Cache-Control"] == CACHE_CONTROL
        assert response.headers["ETag"] == f'"{version}"'
        head = await client.head(good)
        assert head.status == 200
        again = await client.get(good, headers={"If-None-Match": f'"{version}"'})
        assert again.status == 304
        sig = good.split("/")[3]
        forged = good.replace(sig, sig[:-1] + ("0" if sig[-1] != "0" else "1"))
        for refused in (
            forged,
            f"/{REL}",  # unsigned
            f"/m/{version}/{REL}",  # no signature
            good.replace(REL, "acc/another.alaw"),  # another file under this signature
            f"/m/{version}/{sig}/../{REL}",
        ):
            response = await client.get(refused)
            assert response.status == 403, refused
        # Replaced: the old URL never serves the new audio (404); the new URL does.
        write(tmp_path, REL, b"\x55" * 800)
        assert (await client.get(good)).status == 404
        fresh = signing.url_path(KEY, REL, signing.file_version(path.stat()))
        response = await client.get(fresh)
        assert response.status == 200 and await response.read() == b"\x55" * 800
        path.unlink()
        assert (await client.get(fresh)).status == 404


class FakeSession:
    def __init__(self, media: str, variables: dict[str, str]) -> None:
        self.query = {"secret": "s", "media": media}
        self.variables = variables

    async def get_variable(self, name: str) -> str | None:
        return self.variables.get(name)


async def test_raw_recordings_come_from_the_named_media_server_through_its_ari(tmp_path: Path) -> None:
    stored: dict[str, bytes] = {}
    seen: list[tuple[str, str]] = []

    async def get_file(request: web.Request) -> web.StreamResponse:
        seen.append(("GET", request.match_info["name"]))
        if request.headers.get("Authorization") != "Basic " + base64.b64encode(b"u:p").decode():
            return web.Response(status=401)
        data = stored.get(request.match_info["name"])
        return web.Response(body=data) if data is not None else web.Response(status=404)

    async def delete(request: web.Request) -> web.StreamResponse:
        seen.append(("DELETE", request.match_info["name"]))
        return web.Response(status=204 if stored.pop(request.match_info["name"], None) else 404)

    app = web.Application()
    app.router.add_get("/ari/recordings/stored/{name}/file", get_file)
    app.router.add_delete("/ari/recordings/stored/{name}", delete)
    async with TestServer(app) as ari:
        base = str(ari.make_url("")).rstrip("/")
        raw = AriRecordings({"media-b": base}, "u", "p", tmp_path / "dl")
        session: Any = FakeSession("media-b", {"VC_RECORDINGS": "/srv/vc-b/spool/recording"})
        recording = await raw.new(session)
        assert recording.agi_path == f"/srv/vc-b/spool/recording/{recording.name}"
        assert recording.server == "media-b"
        assert await raw.fetch(recording) is None  # Asterisk wrote nothing
        audio = b"RIFF" + bytes(range(256)) * 2000  # 512 KB: many chunks, every one kept
        stored[recording.name] = audio
        local = await raw.fetch(recording)
        assert local is not None and local.read_bytes() == audio
        await raw.discard(recording)
        assert not local.exists() and stored == {}
        assert seen[-1] == ("DELETE", recording.name)
        # A media server not in the settings is never asked; nor a relative spool directory believed.
        with pytest.raises(ConfigurationError):
            await raw.new(FakeSession("media-x", {"VC_RECORDINGS": "/srv/x"}))  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError):
            await raw.new(FakeSession("media-b", {"VC_RECORDINGS": "spool"}))  # type: ignore[arg-type]
        wrong = AriRecordings({"media-b": base}, "u", "wrong", tmp_path / "dl")
        stored[recording.name] = b"x"
        with pytest.raises(TelephonyUnavailable):
            await wrong.fetch(Recording(recording.agi_path, tmp_path / "dl" / "x.wav", server="media-b"))
    await asyncio.sleep(0)


# --- FastAGI across hosts --------------------------------------------------------------------------


def test_the_dialplan_reaches_the_engine_at_its_agi_host_and_names_its_media_server(tmp_path: Path) -> None:
    across = settings(
        tmp_path,
        VOCALCAST_AGI_HOST="10.0.0.7",
        VOCALCAST_ARI_BIND="10.0.0.8",
        VOCALCAST_AGI_PORT="4600",
        VOCALCAST_ARI_PASSWORD="a",
        VOCALCAST_HEP_PASSWORD="h",
        VOCALCAST_AGI_SECRET="g",
        VOCALCAST_CDR_DB_PASSWORD="c",
    )
    asterisk.render(across, IMAGE_MODULE_DIR, [])
    etc = across.state_dir / "asterisk" / "etc"
    dialplan = (etc / "extensions.conf").read_text()
    assert "AGI(agi://10.0.0.7:4600/record?secret=${VC_AGI_SECRET}&media=media-a)" in dialplan
    assert "AGI(agi://10.0.0.7:4600/callback?secret=${VC_AGI_SECRET}," in dialplan
    assert "127.0.0.1:4600" not in dialplan
    assert f"VC_RECORDINGS = /srv/{across.instance_id}/spool/recording" in dialplan
    assert "bindaddr = 10.0.0.8" in (etc / "http.conf").read_text()
    modules = (etc / "modules.conf").read_text()
    assert "load = res_http_media_cache.so" in modules and "load = res_curl.so" in modules


async def test_the_fastagi_server_listens_on_its_bind_address_and_still_wants_the_secret(
    tmp_path: Path, unused_tcp_port: int
) -> None:
    bound = settings(
        tmp_path,
        VOCALCAST_AGI_BIND="127.0.0.2",
        VOCALCAST_AGI_PORT=str(unused_tcp_port),
        VOCALCAST_AGI_SECRET="s3cret",
    )
    backend: Any = object()  # never reached: no request carries the secret
    async with ivr_service.serve(bound, backend):
        with pytest.raises(OSError):  # not on loopback's usual address
            await asyncio.open_connection("127.0.0.1", unused_tcp_port)
        reader, writer = await asyncio.open_connection("127.0.0.2", unused_tcp_port)
        writer.write(b"agi_network_script: record?media=media-a\nagi_callerid: 0612345678\n\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), 5) == b"HANGUP\n"
        writer.close()


def test_the_media_cache_prune_removes_only_what_asterisk_fetched_long_enough_ago(tmp_path: Path) -> None:
    old, new = tmp_path / "bucket-aaaaaa.alaw", tmp_path / "bucket-bbbbbb.alaw"
    other = tmp_path / "astdb-or-anything-else"
    for path in (old, new, other):
        path.write_bytes(b"x")
        os.utime(path, (1000.0, 1000.0))
    os.utime(new, (4000.0, 4000.0))
    assert prune_cache(tmp_path, 3600, now_s=4700.0) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([new.name, other.name])


class NotBlocked:
    async def is_blocked(self, caller: str) -> bool:
        return False

    async def admit(self, caller: str, call: str) -> bool:
        return True

    async def release(self, call: str) -> None:
        return None


async def test_an_ivr_of_another_host_plays_the_calling_servers_prompts_and_refuses_unknown_servers(
    tmp_path: Path,
) -> None:
    raw = AriRecordings({"media-b": "http://127.0.0.1:9"}, "u", "p", tmp_path / "dl")
    ivr = RecordingIVR(IvrOptions(prompts_dir=None, digit_timeout_s=2), backend=NotBlocked(), spool=raw)  # type: ignore[arg-type]
    async with FastAGIServer({"record": ivr}, host="127.0.0.1", port=0, secret="s") as server:

        async def call(media: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            env = f"agi_network_script: record?secret=s&media={media}\nagi_callerid: 0612345678\n\n"
            writer.write(env.encode())
            await writer.drain()
            return reader, writer

        async def command(reader: asyncio.StreamReader) -> str:
            return (await asyncio.wait_for(reader.readline(), 5)).decode().rstrip("\n")

        # A media server not listed: hung up before any prompt or question to its dialplan.
        reader, writer = await call("media-x")
        assert await command(reader) == "HANGUP"
        writer.close()
        # A listed one: its dialplan says where its prompts are, and the welcome is played from there.
        reader, writer = await call("media-b")
        assert await command(reader) == "GET VARIABLE VC_SOUNDS"
        writer.write(b"200 result=1 (/srv/vc-b/sounds)\n")
        await writer.drain()
        assert await command(reader) == "GET DATA /srv/vc-b/sounds/ivr_welcome 2000 9"
        writer.close()
