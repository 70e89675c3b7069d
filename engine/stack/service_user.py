"""The unprivileged system user the engine (and the ffmpeg/ffprobe it runs) lives as (issue 17): created by
`stack up` and `stack prepare`, the paths the engine writes handed to it, and the command line that drops
root for good before the engine starts.

What the engine may touch, and nothing else:
- the media directory (owner; Asterisk's group reads it: setgid 2750, files 0640);
- <state dir>/logs (owner, 0750: the engine's daily logrotate truncates the logs there), <state dir>/exports
  (0700) and <state dir>/run/engine (0700: logrotate's configuration and state);
- Asterisk's recording spool and log directory, as a member of Asterisk's group (2770, Asterisk runs with
  umask 007): it reads and deletes the IVR's recordings and rotates Asterisk's logs;
- the secrets the settings read (<state dir>/secrets: group-readable 0640 files, in a 0750 directory).
The PID files (<state dir>/run), the PostgreSQL cluster, the Asterisk root and this instance's Asterisk
config (<state dir>/asterisk/etc: written by root's `stack up` and `vocalcast trunk add|remove`, which reload
PJSIP over ARI; the engine never rewrites it) stay root's.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import StackError
from engine.media.audio import MEDIA_DIR_MODE, MEDIA_FILE_MODE
from engine.media.paths import host_dir
from engine.settings import Settings

SERVICE_USER = "vocalcast"
HOME = "/nonexistent"  # no home: nothing of the service's lives outside the state dir
SHARED_DIR_MODE = 0o2770  # Asterisk's spool/recording and log: Asterisk writes, the engine reads and deletes
SHARED_DIRS = ("spool/recording", "log")


@dataclass(frozen=True)
class ServiceUser:
    name: str
    uid: int
    gid: int
    extra_gid: int  # Asterisk's group (the root's asterisk uid/gid), unnamed on the host


def ensure_user(settings: Settings, name: str = SERVICE_USER) -> ServiceUser:
    """The system user and group ``name``, created when missing (harmless twice)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = None
    if entry is None:
        useradd = shutil.which("useradd", path=f"{os.defpath}:/usr/sbin:/sbin")
        if useradd is None:
            raise StackError(
                "useradd is not installed (Debian's passwd package): cannot create the service user"
            )
        try:  # a group of that name left behind (a user deleted alone) becomes its primary group
            group = ["--gid", str(grp.getgrnam(name).gr_gid)]
        except KeyError:
            group = ["--user-group"]
        proc = subprocess.run(
            [useradd, "--system", *group, "--no-create-home", "--home-dir", HOME,
             "--shell", "/usr/sbin/nologin", "--comment", "vocalcast engine", name],
            capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
        if proc.returncode != 0:
            raise StackError(f"useradd {name} failed (exit {proc.returncode}): {proc.stderr.strip()}")
        entry = pwd.getpwnam(name)
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise StackError(f"the service user {name!r} has uid or gid 0: it would be root")
    if entry.pw_uid == settings.asterisk_uid:
        raise StackError(f"the service user {name!r} has Asterisk's uid {settings.asterisk_uid}")
    return ServiceUser(name, entry.pw_uid, entry.pw_gid, settings.asterisk_uid)


def command(user: ServiceUser, argv: Sequence[str], *, asterisk_group: bool = True) -> list[str]:
    """``argv`` run as ``user`` with no way back to root: real, effective and saved uid and gid the user's,
    Asterisk's group as the only supplementary one (none without ``asterisk_group``), no capability left
    (bounding set emptied) and no_new_privs: no setuid program (su, sudo, mount) can raise it again."""
    setpriv = shutil.which("setpriv", path=f"{os.defpath}:/usr/sbin:/sbin")
    if setpriv is None:
        raise StackError("setpriv is not installed (Debian's util-linux): cannot drop root for the engine")
    return [
        setpriv,
        f"--reuid={user.uid}",
        f"--regid={user.gid}",
        f"--groups={user.extra_gid}" if asterisk_group else "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
        *argv,
    ]


# Run as the service user: the first (kind, path) it cannot use. Kinds: "x" a directory on the way it
# must traverse, "d" one it must list and traverse (the checkout, the .venv). The kernel decides (ACLs too).
_FIRST_CLOSED = (
    'while [ "$#" -gt 1 ]; do '
    'if [ "$1" = d ]; then [ -r "$2" ] && [ -x "$2" ]; else [ -x "$2" ]; fi '
    '|| { printf "%s %s" "$1" "$2"; exit 0; }; shift 2; done'
)
ACL_XATTR = "system.posix_acl_access"


def open_way(user: ServiceUser, paths: Sequence[Path], *, asterisk_group: bool = True) -> list[Path]:
    """Let ``user`` reach ``paths`` (the checkout, its .venv): each closed directory on the way (a clone
    under /root, 0700) gets a POSIX ACL entry granting that user traverse only (``u:<uid>:--x``; never
    o+x, never read). The directories granted, top down (none when all was open). StackError when one
    of ``paths`` itself is not readable by the user, or a grant fails or does not open the way (a file
    system without ACLs, an ACL mask without x). Checked as the user runs (``asterisk_group``: see
    :func:`command`)."""
    checks: dict[Path, str] = {}
    for path in paths:
        for directory in reversed(path.parents):
            checks.setdefault(directory, "x")
        checks[path] = "d"
    order = sorted(checks, key=lambda p: len(p.parts))  # every directory after the ones above it
    argv = [item for directory in order for item in (checks[directory], str(directory))]
    granted: list[Path] = []
    while True:
        done = subprocess.run(
            command(user, ["/bin/sh", "-c", _FIRST_CLOSED, "sh", *argv], asterisk_group=asterisk_group),
            capture_output=True, text=True, check=False, timeout=30, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if done.returncode != 0:
            raise StackError(f"cannot check what the user {user.name!r} reaches: {done.stderr.strip()}")
        if not done.stdout:
            return granted
        kind, _, first = done.stdout.partition(" ")
        closed = Path(first)
        if kind == "d":
            raise StackError(
                f"the engine runs as the user {user.name!r}, who cannot read {closed}: it must be readable "
                f"by other users (a git clone's default umask 022 gives it; mode "
                f"{stat.S_IMODE(closed.stat().st_mode):o})"
            )
        problem = "the grant did not open it" if closed in granted else _grant_traverse(user, closed)
        if problem:
            raise StackError(
                f"the engine runs as the user {user.name!r}, who cannot reach {paths[0]}: {closed} is "
                f"closed to it (mode {stat.S_IMODE(closed.stat().st_mode):o}) and {problem}. Put the "
                f"checkout where other users may read it (/opt/vocalcast, /srv), or let that user through: "
                f"setfacl -m u:{user.name}:x {closed}"
            )
        granted.append(closed)


def _grant_traverse(user: ServiceUser, directory: Path) -> str:
    """Add ``u:<uid>:--x`` to ``directory``'s ACL; what went wrong, or "". Without an ACL yet, setfacl
    computes the mask from the owning group's bits and that x: the group gains nothing. With an ACL
    already there its mask is kept (-n): recomputing it could widen another entry's rights."""
    setfacl = shutil.which("setfacl", path=f"{os.defpath}:/usr/sbin:/sbin")
    if setfacl is None:
        return "setfacl is not installed (Debian's acl package)"
    try:
        os.getxattr(directory, ACL_XATTR, follow_symlinks=False)
        keep_mask = ["-n"]
    except OSError:  # no ACL (ENODATA), or none possible (EOPNOTSUPP: setfacl says so below)
        keep_mask = []
    done = subprocess.run(
        [setfacl, *keep_mask, "-m", f"u:{user.uid}:x", "--", str(directory)],
        capture_output=True, text=True, check=False, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return "" if done.returncode == 0 else f"setfacl failed: {done.stderr.strip()}"


def environment(user: ServiceUser, env: dict[str, str]) -> dict[str, str]:
    """The engine's environment under its own identity (root's HOME is not its own)."""
    return {**env, "HOME": HOME, "USER": user.name, "LOGNAME": user.name}


def engine_dir(settings: Settings) -> Path:
    """Where the engine keeps its own small state files (logrotate's configuration and state)."""
    return settings.state_dir / "run" / "engine"


def give_paths(settings: Settings, user: ServiceUser) -> None:
    """Hand the engine the paths it writes (root only; harmless twice). Everything below a directory the
    service user owns is re-owned without following a symbolic link: that user may have planted one."""
    state = settings.state_dir
    for path, mode in ((state / "logs", 0o750), (state / "exports", 0o700), (engine_dir(settings), 0o700)):
        path.mkdir(parents=True, exist_ok=True)
        _own(path, user.uid, user.gid, mode)
    for log in (state / "logs").iterdir():
        _own(log, user.uid, user.gid, None)  # the logs root's processes write stay 0600: owner only
    for export in (state / "exports").iterdir():
        _own(export, user.uid, user.gid, None)
    for item in engine_dir(settings).iterdir():  # e.g. logrotate's state, from a rotation run as root
        _own(item, user.uid, user.gid, None)
    media = settings.media_dir
    media.mkdir(parents=True, exist_ok=True)
    _own_tree(media, user.uid, user.extra_gid)
    base = host_dir(settings)
    for sub in SHARED_DIRS:
        path = base / sub
        path.mkdir(parents=True, exist_ok=True)
        _own(path, settings.asterisk_uid, settings.asterisk_uid, SHARED_DIR_MODE)
        for file in path.iterdir():  # what an Asterisk under another umask left: others lose it
            _own(file, settings.asterisk_uid, settings.asterisk_uid, 0o660)
    secrets = settings.secrets_dir
    if secrets.is_dir():
        _own(secrets, 0, user.gid, 0o750)
        for secret in secrets.glob("VOCALCAST_*"):  # what the settings read (not the demo account's)
            _own(secret, 0, user.gid, 0o640)


def _own_tree(top: Path, uid: int, gid: int) -> None:
    """The media tree: owned by the engine, Asterisk's group, 2750 directories and 0640 files. Walked by
    directory descriptors (os.fwalk) and never through a symbolic link at any depth: the service user owns
    the tree, and swapping one of its directories for a link must not send root's chown elsewhere."""
    _own(top, uid, gid, MEDIA_DIR_MODE)
    for _, dirnames, filenames, dirfd in os.fwalk(top):
        for name in dirnames:
            _own(name, uid, gid, MEDIA_DIR_MODE, dir_fd=dirfd)
        for name in filenames:
            _own(name, uid, gid, MEDIA_FILE_MODE, dir_fd=dirfd)


def _own(path: Path | str, uid: int, gid: int, mode: int | None, *, dir_fd: int | None = None) -> None:
    """chown (and chmod) ``path`` itself (relative to ``dir_fd`` if given), never what a symbolic link there
    points to; a symbolic link, a socket or a FIFO is left alone."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError:  # a symbolic link (ELOOP), a socket, gone meanwhile
        return
    try:
        info = os.fstat(fd)
        if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
            return
        if (info.st_uid, info.st_gid) != (uid, gid):
            os.fchown(fd, uid, gid)  # (clears a file's setgid bit: the mode is set after)
        if mode is not None and stat.S_IMODE(os.fstat(fd).st_mode) != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)
