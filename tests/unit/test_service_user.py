"""The service user's command line and the check that it can reach the checkout (issue 17); the process
itself is tests/security/test_service_user.py."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from engine.errors import StackError
from engine.settings import PROJECT_ROOT, Settings
from engine.stack.service_user import ServiceUser, check_reachable, command, give_paths

NOBODY = ServiceUser("vocalcast", 64999, 64999, 64101)


def test_a_checkout_closed_to_the_service_user_is_named() -> None:
    closed = Path(tempfile.mkdtemp(dir="/tmp"))  # 0700, as /root is; /tmp itself is open to all
    try:
        checkout = closed / "clone"
        checkout.mkdir()
        with pytest.raises(StackError, match=f"{closed} is closed to it") as raised:
            check_reachable(NOBODY, [checkout])
        assert f"setfacl -m u:vocalcast:x {closed}" in str(raised.value)
        closed.chmod(0o711)  # traversable (not listable): reachable
        check_reachable(NOBODY, [checkout])
    finally:
        shutil.rmtree(closed)


def test_this_checkout_and_its_python_are_reachable() -> None:
    check_reachable(NOBODY, [PROJECT_ROOT, Path(sys.executable)])


def test_the_command_drops_every_privilege() -> None:
    argv = command(NOBODY, ["true"])
    assert argv[0].endswith("/setpriv") and argv[-2:] == ["--", "true"]
    assert {
        "--reuid=64999",
        "--regid=64999",
        "--groups=64101",
        "--no-new-privs",
        "--bounding-set=-all",
    } <= set(argv)


def test_handing_over_the_media_tree_never_follows_a_link(tmp_path: Path) -> None:
    """The service user owns the media tree: a link it planted (to a file, to a directory) must not turn
    root's chown at `stack up` onto what it points to."""
    settings = Settings.from_env({"VOCALCAST_STATE_DIR": str(tmp_path / "state")})
    media = settings.media_dir
    (media / "account").mkdir(parents=True)
    (media / "account" / "m.wav").write_bytes(b"RIFF")
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "shadow").write_text("root's")
    (media / "account" / "link.wav").symlink_to(outside / "shadow")
    (media / "linked-dir").symlink_to(outside / "dir")
    (outside / "dir" / "inner").write_text("root's too")
    give_paths(settings, NOBODY)
    for path in (media, media / "account"):
        assert (path.stat().st_uid, path.stat().st_gid, path.stat().st_mode & 0o7777) == (
            64999,
            64101,
            0o2750,
        )
    wav = (media / "account" / "m.wav").stat()
    assert (wav.st_uid, wav.st_gid, wav.st_mode & 0o7777) == (64999, 64101, 0o640)
    for untouched in (outside / "shadow", outside / "dir", outside / "dir" / "inner"):
        assert untouched.stat().st_uid == 0, untouched
    # Logs, exports and run/engine: the user's; run/ itself (PID files) stays root's.
    for path in ("logs", "exports", "run/engine"):
        assert (settings.state_dir / path).stat().st_uid == 64999, path
    assert (settings.state_dir / "run").stat().st_uid == 0
