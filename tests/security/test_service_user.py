"""The engine as `stack up` starts it runs as the unprivileged service user (issue 17), with no way back to
root, and still does its work: an upload converted by its ffmpeg and played by Asterisk through a trunk
an operator adds meanwhile, a phone recording read from Asterisk's spool into the library. What it
creates is not world-readable. On the real test stack, the engine a real process started by
engine.stack.start_engine (module-scoped: started once)."""

from __future__ import annotations

import io
import os
import pwd
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from engine import stack
from engine.domain.accounts import Message
from engine.domain.trunks import Trunk
from engine.media.paths import host_dir
from engine.settings import PROJECT_ROOT, Settings
from engine.stack import procs, service_user
from engine.store import Database
from engine.store import messages as messages_store
from engine.store import tokens as tokens_store
from engine.store.accounts import create_account
from engine.web.api_common import PREFIX
from lab import tones
from lab.dtmfpcap import RtpPcapBuilder
from tests.integration.conftest import Ari, add_trunk, ari, sipp_ports, wait_for
from tests.integration.test_ivr import (
    DID,
    KEY_S,
    LEAD_S,
    Caller,
    code_entry,
    prompt_s,
    spool_dir,
    spool_files,
)
from tests.support.playback import MARKER_HZ, heard_by_a_phone, marker_mp3

pytestmark = pytest.mark.integration
# Fixtures of the integration tests, registered by importing them: ARI, SIPp ports.
__all__ = ["ari", "sipp_ports"]
Ports = Callable[[], tuple[int, int]]  # the sipp_ports fixture


@pytest.fixture(scope="module")
def served(stack_settings: Settings) -> Iterator[int]:
    """The engine process `stack up` starts, on the test stack; its PID."""
    pid = stack.start_engine(stack_settings)
    yield pid
    procs.stop(stack_settings.state_dir, "engine", timeout_s=15)


@pytest.fixture
async def pool(stack_settings: Settings) -> AsyncIterator[Database]:
    """The test database as it is (no table emptied under the running engine)."""
    async with Database(stack_settings.dsn, min_size=1, max_size=2) as db:
        yield db


def status_lines(pid: int) -> dict[str, list[str]]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.split() for key, _, value in (line.partition(":") for line in lines)}


def assert_private(path: Path, owner: int, group: int) -> None:
    info = path.stat()
    assert info.st_mode & 0o007 == 0, (path, oct(info.st_mode))  # others: nothing
    assert (info.st_uid, info.st_gid) == (owner, group), path


def test_the_engine_runs_as_the_service_user_with_no_way_back_to_root(
    stack_settings: Settings, served: int
) -> None:
    user = pwd.getpwnam(service_user.SERVICE_USER)
    assert user.pw_uid != 0 and user.pw_gid != 0
    assert user.pw_shell == "/usr/sbin/nologin"
    status = status_lines(served)
    # Real, effective, saved and file-system ids: the service user's, all four.
    assert status["Uid"] == [str(user.pw_uid)] * 4
    assert status["Gid"] == [str(user.pw_gid)] * 4
    # One supplementary group, Asterisk's (it reads the IVR's recordings), never root's.
    assert status["Groups"] == [str(stack_settings.asterisk_uid)]
    # No capability, none that could come back (bounding set empty), no setuid program honoured.
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[caps][0], 16) == 0, caps
    assert status["NoNewPrivs"] == ["1"]
    # Its logs are its own, private.
    assert_private(stack_settings.state_dir / "logs" / "engine.log", user.pw_uid, user.pw_gid)
    # `stack status` still sees the engine it started.
    assert stack.status(stack_settings)["pieces"]["engine"] == {
        "state": "running",
        "pid": served,
        "http": f"http://{stack_settings.http_host}:{stack_settings.http_port}/",
    }


def test_the_service_users_command_cannot_become_root_again(stack_settings: Settings) -> None:
    user = service_user.ensure_user(stack_settings)
    probe = "import os\ntry:\n    os.setuid(0)\nexcept PermissionError:\n    print('refused')\n"
    done = subprocess.run(
        service_user.command(user, [sys.executable, "-c", probe]), capture_output=True, text=True, check=False
    )
    assert done.stdout.strip() == "refused", done.stderr
    # A setuid-root program (su) gets no privilege either: no_new_privs.
    done = subprocess.run(
        service_user.command(user, ["su", "-c", "id -u", "root"]),
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    assert done.returncode != 0 and "0" not in done.stdout.split()


async def test_an_upload_is_converted_by_the_service_user_and_plays_through_an_added_trunk(  # noqa: PLR0917 - fixtures
    stack_settings: Settings, served: int, pool: Database, ari: Ari, sipp_ports: Ports, tmp_path: Path
) -> None:
    """One MP3 (decoded, resampled, mixed down: ffmpeg's most work): WAV uploads take the same ffprobe and
    ffmpeg command lines, run by the same user, and their conversion is tests/integration/test_api.py's."""
    user = pwd.getpwnam(service_user.SERVICE_USER)
    new = await create_account(
        pool, f"svc-{uuid.uuid4().hex[:8]}@example.fr", secret_key=stack_settings.require("secret_key")
    )
    token = (await tokens_store.create_token(pool, new.account.id, label="tests")).secret
    mp3 = marker_mp3(tmp_path / "annonce.mp3", tone_s=1.0, lead_s=0.3, pad_s=0.3)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        form = aiohttp.FormData()
        form.add_field("file", io.BytesIO(mp3.read_bytes()), filename=mp3.name)
        async with http.post(
            f"http://127.0.0.1:{stack_settings.http_port}{PREFIX}/messages", data=form
        ) as resp:
            body = await resp.json()
            assert resp.status == 201, body
    media = stack_settings.media_dir / str(new.account.id)
    files = sorted(media.iterdir())
    assert len(files) == 4  # wav, alaw, ulaw and the original
    for file in [media, *files]:
        # Written by the engine's ffmpeg as the service user; Asterisk reads them by its group.
        assert_private(file, user.pw_uid, stack_settings.asterisk_uid)
    assert media.stat().st_mode & 0o7777 == 0o2750

    # An operator adds a trunk while the engine runs (stored, config rendered by root, PJSIP reloaded over
    # ARI, as `vocalcast trunk add` does): Asterisk loads it, and plays the message through it.
    message = await messages_store.get_message(pool, new.account.id, body["ref"])
    name = f"svc{uuid.uuid4().hex[:6]}"
    heard = await heard_by_a_phone(
        stack_settings, ari.client, ari.router, sipp_ports, tmp_path, message, name
    )
    # The tone whole: a message Asterisk could not read would be missing from the call.
    seconds = tones.tone_duration_s(heard, MARKER_HZ)
    assert 1.0 * 0.95 <= seconds <= 1.0 * 1.05, seconds


async def test_a_phone_recording_lands_in_the_library(
    stack_settings: Settings,
    served: int,
    pool: Database,
    sipp_ports: Ports,
    tmp_path: Path,
) -> None:
    """The IVR's shortest recording path: code, "1", the tone, "#", "2" (validate), and the caller hangs
    up there: the engine saves what it validated whatever the line does next (the reference it would
    announce is tests/integration/test_ivr.py's)."""
    user = pwd.getpwnam(service_user.SERVICE_USER)
    first = sipp_ports()
    # Inbound calls are taken from trunk addresses (identify by IP).
    await add_trunk(stack_settings, Trunk(name=f"svc{uuid.uuid4().hex[:6]}", host="127.0.0.1", port=first[0]))
    pending = [first]
    caller = Caller(stack_settings, lambda: pending.pop() if pending else sipp_ports(), tmp_path)
    new = await create_account(
        pool, f"svc-{uuid.uuid4().hex[:8]}@example.fr", secret_key=stack_settings.require("secret_key")
    )
    pcap = RtpPcapBuilder(codec="alaw").silence(LEAD_S)
    code_entry(pcap, new.code).silence(1.0).digits("1", tone_s=KEY_S)  # main menu: record a message
    pcap.silence(prompt_s("ivr_record") + 1.5)
    pcap.audio(tones.sine(440.0, 1.0, 0.4)).silence(0.4).digits("#", tone_s=KEY_S)
    pcap.silence(0.5).digits("2", tone_s=KEY_S)  # validate, during the review menu
    spooled = set(spool_files(spool_dir(stack_settings)))  # another test's leftovers, if any
    call = await caller.call(pcap, number=DID, hang_up_after_s=pcap.duration_s + 0.5)
    assert "CALLER_BYE" in call.events, call.sipp.diagnostics()

    async def saved() -> list[Message]:
        return await messages_store.list_messages(pool, new.account.id)

    messages = await wait_for(saved, what="the recording in the library")
    assert [(m.origin, m.is_greeting) for m in messages] == [("phone", False)]
    stored = messages[0].wav(stack_settings.media_dir)
    assert tones.tone_duration_s(tones.read_wav(stored)[0], 440.0) == pytest.approx(1.0, abs=0.1)
    for file in stored.parent.iterdir():
        assert_private(file, user.pw_uid, stack_settings.asterisk_uid)
    # Asterisk's raw recording was read and removed by the engine (a member of Asterisk's group).
    await wait_for(lambda: set(spool_files(spool_dir(stack_settings))) <= spooled, what="the spool emptied")
    assert spool_dir(stack_settings).stat().st_mode & 0o007 == 0


def test_the_engines_log_rotation_works_as_the_service_user(stack_settings: Settings, served: int) -> None:
    """The daily rotation (logrotate, copytruncate) the engine runs as itself: its own logs and Asterisk's,
    which it reaches as a member of Asterisk's group."""
    user = service_user.ensure_user(stack_settings)
    asterisk_log = host_dir(stack_settings) / "log" / "messages.log"
    assert asterisk_log.stat().st_mode & 0o077 == 0o060, oct(asterisk_log.stat().st_mode)  # umask 007
    rotate = (
        "import asyncio\n"
        "from engine.settings import Settings\n"
        "from engine.services.logrotate import rotate\n"
        "print(asyncio.run(rotate(Settings.from_env(), force=True)))\n"
    )
    env = service_user.environment(user, {**os.environ, "VOCALCAST_STATE_DIR": str(stack_settings.state_dir)})
    done = subprocess.run(
        service_user.command(user, [sys.executable, "-c", rotate]),
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=60,
    )
    assert done.stdout.strip() == "True", done.stderr
    for log in (stack_settings.state_dir / "logs" / "engine.log", asterisk_log):
        rotated = log.with_name(log.name + ".1")
        assert rotated.stat().st_size > 0, rotated  # the day moved aside, truncated in place
        assert rotated.stat().st_mode & 0o007 == 0, rotated
    conf = service_user.engine_dir(stack_settings) / "logrotate.conf"
    assert conf.stat().st_uid == user.uid and "su root" not in conf.read_text()
