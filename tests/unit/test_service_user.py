"""The service user's command line and the way opened to the checkout (issue 17); the process
itself is tests/security/test_service_user.py."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import StackError
from engine.settings import Settings
from engine.stack.service_user import ServiceUser, command, give_paths, open_way

NOBODY = ServiceUser("vocalcast", 64999, 64999, 64101)


def as_user(*argv: str) -> subprocess.CompletedProcess[str]:
    """``argv`` through the engine's own wrapper (setpriv) as the service user."""
    return subprocess.run(command(NOBODY, argv), capture_output=True, text=True, check=False, timeout=30)


def acl(path: Path) -> list[str]:
    done = subprocess.run(
        ["getfacl", "-n", "-c", "-p", str(path)], capture_output=True, text=True, check=True
    )
    return [line for line in done.stdout.splitlines() if line]


@pytest.fixture
def closed() -> Iterator[Path]:
    """A directory closed to other users (0700), as /root is; /tmp itself is open to all."""
    path = Path(tempfile.mkdtemp(dir="/tmp"))
    yield path
    shutil.rmtree(path)


def checkout_in(parent: Path) -> Path:
    """A clone as git makes it (umask 022): readable by all, with its .venv."""
    clone = parent / "clone"
    (clone / ".venv").mkdir(parents=True)
    clone.chmod(0o755)
    (clone / "README.md").write_text("vocalcast")
    (clone / "README.md").chmod(0o644)
    return clone


def test_a_checkout_under_closed_directories_is_opened_to_the_service_user_to_traverse_only(
    closed: Path,
) -> None:
    deeper = closed / "deeper"
    deeper.mkdir(mode=0o700)
    clone = checkout_in(deeper)
    readme = clone / "README.md"
    assert as_user("cat", str(readme)).returncode != 0  # closed: the engine could not start from there
    assert open_way(NOBODY, [clone, clone / ".venv"]) == [closed, deeper]
    done = as_user("cat", str(readme))
    assert (done.returncode, done.stdout) == (0, "vocalcast"), done.stderr
    for directory in (closed, deeper):
        # One entry for that user, traverse only; the owning group and others get nothing (never o+x).
        assert acl(directory) == [
            "user::rwx",
            f"user:{NOBODY.uid}:--x",
            "group::---",
            "mask::--x",
            "other::---",
        ], directory
        assert directory.stat().st_mode & 0o007 == 0
        assert as_user("ls", str(directory)).returncode != 0  # not listable by that user
    assert open_way(NOBODY, [clone, clone / ".venv"]) == []  # harmless twice: nothing left to grant


def test_an_unreadable_checkout_is_named(closed: Path) -> None:
    clone = checkout_in(closed)
    clone.chmod(0o700)
    with pytest.raises(StackError, match=f"cannot read {clone}: it must be readable by other users"):
        open_way(NOBODY, [clone])


def test_a_grant_that_does_not_open_the_way_is_named(closed: Path) -> None:
    """An ACL already there whose mask takes x away (chmod after setfacl): its mask is kept (recomputing it
    would widen another user's entry), so the way stays closed, and `stack up` says what to do."""
    subprocess.run(["setfacl", "-m", "u:64998:rwx", str(closed)], check=True)
    closed.chmod(0o700)  # the mask becomes ---: user 64998 gets nothing
    clone = checkout_in(closed)
    with pytest.raises(StackError, match=f"{closed} is closed to it .* the grant did not open it") as raised:
        open_way(NOBODY, [clone])
    assert f"setfacl -m u:vocalcast:x {closed}" in str(raised.value)
    assert "mask::---" in acl(closed)  # user 64998 was not given its rwx back


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
