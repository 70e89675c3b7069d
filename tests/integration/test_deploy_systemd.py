"""The bare-metal units' commands (deploy/systemd/vocalcast-asterisk.service), run as systemd would:
`vocalcast stack prepare` then `vocalcast stack run-asterisk` in the foreground, for a second node on the
test database (given by URL), until SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from engine.errors import StackError
from engine.settings import PROJECT_ROOT, Settings
from engine.stack import asterisk
from engine.stack.root import mounts_under, read_info, root_path
from tests.conftest import PORT_BASE
from tests.conftest import test_environ as stack_environ

pytestmark = pytest.mark.integration


def test_the_asterisk_units_commands_prepare_and_run_asterisk_in_the_foreground(
    stack_settings: Settings, tmp_path: Path
) -> None:
    env = stack_environ() | {
        "VOCALCAST_STATE_DIR": str(tmp_path / "node"),
        "VOCALCAST_NODE": "unit-node",
        "VOCALCAST_DATABASE_URL": stack_settings.dsn,
        "VOCALCAST_ARI_PASSWORD": "unit-ari",
        "VOCALCAST_HEP_PASSWORD": "unit-hep",
        "VOCALCAST_AGI_SECRET": "unit-agi",
        "VOCALCAST_CDR_DB_PASSWORD": stack_settings.require("cdr_db_password"),
        "VOCALCAST_SIP_PORT": str(PORT_BASE + 1760),
        "VOCALCAST_ARI_PORT": str(PORT_BASE + 1788),
        "VOCALCAST_AGI_PORT": str(PORT_BASE + 1773),
        "VOCALCAST_HEP_PORT": str(PORT_BASE + 1799),
        "VOCALCAST_RTP_START": str(PORT_BASE + 1800),
        "VOCALCAST_RTP_END": str(PORT_BASE + 1999),
        "VOCALCAST_MAX_CHANNELS": "40",
        # As vocalcast.env.example: messages over HTTP, so the library is never mounted into the root.
        "VOCALCAST_MEDIA_TRANSPORT": "http",
    }
    node = Settings.from_env(env)
    vocalcast = str(PROJECT_ROOT / ".venv/bin/vocalcast")
    prepared = subprocess.run(
        [vocalcast, "stack", "prepare"], env=env, capture_output=True, text=True, check=False, timeout=120
    )
    assert prepared.returncode == 0, prepared.stderr
    assert "prepared node unit-node" in prepared.stdout
    root = read_info(root_path(node))
    assert root is not None
    log = tmp_path / "asterisk.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [vocalcast, "stack", "run-asterisk"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        booted = ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                booted = asterisk.cli(node, root.path, "core waitfullybooted", timeout_s=10)
                break
            except (StackError, subprocess.TimeoutExpired):
                time.sleep(0.1)
        assert proc.poll() is None, log.read_text()[-2000:]
        assert "fully booted" in booted
        # The unit's main process is Asterisk itself (exec'd through chroot), as systemd must see it.
        assert Path(f"/proc/{proc.pid}/exe").resolve() == (root.path / "usr/sbin/asterisk").resolve()
        settings_line = asterisk.cli(node, root.path, "core show settings")
        assert f"/srv/{node.instance_id}/etc" in settings_line
        # The node's directory is in the root, the library is not (http transport, issue 19).
        inside = (root.path / f"srv/{node.instance_id}").resolve()
        mounted = set(mounts_under(root.path))
        assert inside in mounted
        assert not [p for p in mounted if p.is_relative_to(inside) and p != inside], mounted
        assert node.media_dir.is_dir()
        assert not (inside / "media").exists()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        asterisk.unmount(node, root.path)
