"""The local stack itself: Asterisk 22 from the sid root with exactly our modules, safe mounts,
idempotent start, status that tells crashed pieces apart."""

from __future__ import annotations

import errno
import os
import signal
import uuid
from pathlib import Path

import pytest

from engine import stack
from engine.errors import StackError
from engine.media.paths import host_dir, instance_dir
from engine.settings import Settings
from engine.stack import procs
from engine.stack.root import read_info, root_path, safe_rmtree
from tests.integration.conftest import Ari

pytestmark = pytest.mark.integration

# What vocalcast relies on; modules.conf loads them explicitly (autoload=no).
REQUIRED_MODULES = [
    "chan_pjsip.so",
    "res_pjsip.so",
    "res_pjsip_session.so",
    "res_pjsip_caller_id.so",
    "res_pjsip_outbound_authenticator_digest.so",
    "res_pjsip_outbound_registration.so",
    "res_pjsip_endpoint_identifier_ip.so",
    "res_pjsip_rfc3326.so",
    "res_pjsip_dtmf_info.so",
    "res_pjsip_header_funcs.so",
    "res_timing_timerfd.so",
    "codec_alaw.so",
    "codec_ulaw.so",
    "codec_a_mu.so",
    "format_wav.so",
    "format_pcm.so",
    "res_rtp_asterisk.so",
    "res_ari.so",
    "res_ari_channels.so",
    "res_ari_bridges.so",
    "res_ari_playbacks.so",
    "app_stasis.so",
    "res_stasis_playback.so",
    "bridge_softmix.so",
    "app_amd.so",
    "res_agi.so",
    "cdr_pgsql.so",
    "pbx_config.so",
    "func_dialplan.so",
    "res_rtp_multicast.so",
    "chan_rtp.so",
    "res_stasis_snoop.so",
    "func_talkdetect.so",
]


async def test_asterisk_22_runs_with_every_module_we_rely_on(ari: Ari) -> None:
    info = await ari.client.info()
    assert info["system"]["version"].startswith("22.")
    modules = {m["name"]: m["status"] for m in await ari.client.modules()}
    missing = [m for m in REQUIRED_MODULES if modules.get(m) != "Running"]
    assert missing == []
    # autoload=no: nothing we did not ask for (chan_iax2 would be loaded by autoload).
    assert "chan_iax2.so" not in modules


def test_root_is_cached_with_manifest_and_foreign_uid(stack_settings: Settings) -> None:
    info = read_info(root_path(stack_settings))
    assert info is not None
    assert info.asterisk_version.split(":")[-1].startswith("22.")
    manifest = (info.path / ".vocalcast/manifest.txt").read_text().splitlines()
    assert any(line.startswith("asterisk-modules 1:22.") for line in manifest)
    passwd = (info.path / "etc/passwd").read_text()
    assert f"asterisk:x:{stack_settings.asterisk_uid}:{stack_settings.asterisk_uid}:" in passwd
    host_uids = {line.split(":")[2] for line in Path("/etc/passwd").read_text().splitlines()}
    assert str(stack_settings.asterisk_uid) not in host_uids
    # The running Asterisk really runs under that uid.
    pid = procs.read_pid(stack_settings.state_dir, "asterisk")
    assert pid is not None
    uid_line = next(
        line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:")
    )
    assert uid_line.split()[1] == str(stack_settings.asterisk_uid)


def test_rendered_config_is_complete_and_private(stack_settings: Settings) -> None:
    etc = host_dir(stack_settings) / "etc"
    files = sorted(etc.glob("*.conf"))
    assert {"ari.conf", "pjsip.conf", "extensions.conf", "modules.conf", "pjsip_trunks.conf"} <= {
        f.name for f in files
    }
    for file in files:
        text = file.read_text()
        assert "{{" not in text and "{%" not in text, file
        assert file.stat().st_mode & 0o777 == 0o640, file
    assert stack_settings.require("ari_password") in (etc / "ari.conf").read_text()


def test_root_cannot_be_deleted_through_a_live_mount(stack_settings: Settings) -> None:
    path = root_path(stack_settings)
    with pytest.raises(StackError, match="still mounted"):
        safe_rmtree(path)
    assert (path / "usr/sbin/asterisk").exists()
    inside = path / instance_dir(stack_settings).relative_to("/")
    media = inside / "media"
    probe = f"probe-{uuid.uuid4().hex}"
    # The media directory is mounted read-only for Asterisk: a write fails as a read-only file system,
    # not for another reason (no such directory, permission denied).
    with pytest.raises(OSError) as refused:
        (media / probe).touch()
    assert refused.value.errno == errno.EROFS, refused.value
    # The same write works on the writable mount beside it (the instance directory)...
    (inside / probe).touch()
    (inside / probe).unlink()
    # ...and the read-only mount is the engine's media directory: a file written there shows through.
    (stack_settings.media_dir / probe).touch()
    try:
        assert (media / probe).exists()
    finally:
        (stack_settings.media_dir / probe).unlink()


def test_starting_twice_is_harmless(stack_settings: Settings) -> None:
    before = procs.read_pid(stack_settings.state_dir, "asterisk")
    result = stack.up(stack_settings, engine=False)
    assert result.started == []
    assert procs.read_pid(stack_settings.state_dir, "asterisk") == before


def test_status_reports_running_and_crashed_pieces(stack_settings: Settings) -> None:
    report = stack.status(stack_settings)
    assert report["pieces"]["asterisk"]["state"] == "running"
    assert report["pieces"]["postgresql"]["state"] == "running"
    assert report["root"]["asterisk"].split(":")[-1].startswith("22.")
    # A piece whose process died without `stack down` is "crashed", and status exits non-zero.
    pid = procs.spawn(stack_settings.state_dir, "demo-phone", ["sleep", "60"], log_path=Path(os.devnull))
    os.kill(pid, signal.SIGKILL)
    procs.wait_gone(pid, 5)
    try:
        assert stack.status(stack_settings)["pieces"]["demo-phone"]["state"] == "crashed"
        text = stack.format_status(stack.status(stack_settings))
        assert "demo-phone  crashed" in text
    finally:
        procs.pid_file(stack_settings.state_dir, "demo-phone").unlink(missing_ok=True)
