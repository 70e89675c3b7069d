"""Asterisk inside the cached root: per-instance config rendered from ``dialplan/``, mounts, start, stop.

Each instance (``make up``, ``make test``) keeps its Asterisk files in <state dir>/asterisk, which
is bind-mounted at /srv/<instance id> inside the shared root; the media directory is mounted
read-only below it, unless messages go over HTTP (VOCALCAST_MEDIA_TRANSPORT=http). The root itself is
never edited by hand.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import jinja2

from engine.domain.numbers import national_forms
from engine.domain.trunks import Trunk
from engine.errors import StackError
from engine.media.paths import host_dir, instance_dir
from engine.settings import PROJECT_ROOT, Settings
from engine.stack import procs
from engine.stack.root import RootInfo, mounts_under
from engine.telephony import trunkconf
from engine.telephony.trunks import EDGE_ENDPOINT

TEMPLATES = PROJECT_ROOT / "dialplan"
SOUNDS = PROJECT_ROOT / "sounds" / "fr"
WRITABLE = ("run", "log", "spool", "spool/recording", "lib", "cache")


def render_config(settings: Settings, root: RootInfo, trunks: list[Trunk]) -> None:
    """Write every config file of this instance (templates + trunks), replacing the previous ones."""
    module_dirs = sorted(root.path.glob("usr/lib/*/asterisk/modules"))
    if not module_dirs:
        raise StackError(f"no Asterisk modules in {root.path}")
    render(settings, "/" + str(module_dirs[0].relative_to(root.path)), trunks)


def render(settings: Settings, module_dir: str, trunks: list[Trunk]) -> None:
    """render_config for an Asterisk whose root is not on this host (a container image, another box):
    ``module_dir`` is where its modules are, as that Asterisk sees it."""
    base = host_dir(settings)
    etc = base / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - Asterisk config, not HTML
    )
    values = {
        "inst": str(instance_dir(settings)),
        "module_dir": module_dir,
        "system_name": settings.node_name,
        "ari_port": settings.ari_port,
        "ari_bind": settings.ari_bind,
        "ari_user": settings.ari_user,
        "ari_password": settings.require("ari_password"),
        "ari_pool_size": settings.ari_pool_size,
        "http_session_limit": settings.ari_pool_size + 100,
        "sip_bind": settings.sip_bind,
        "sip_port": settings.sip_port,
        "sip_external_address": settings.sip_external_address,
        "sip_external_media_address": settings.sip_external_media_address,
        "sip_t1_ms": settings.sip_t1_ms,
        "sip_timer_b_ms": 64 * settings.sip_t1_ms,
        "rtp_start": settings.rtp_start,
        "rtp_end": settings.rtp_end,
        "agi_port": settings.agi_port,
        "agi_host": settings.agi_host,
        "media_server": settings.node_name,
        "edge_endpoint": EDGE_ENDPOINT if settings.sip_edge else "",  # issue 19: a line's calls
        "agi_secret": settings.require("agi_secret"),
        "ivr_max_calls": settings.ivr_max_calls,
        "hep_port": settings.hep_port,
        "hep_password": settings.require("hep_password"),
        "recording_did": settings.recording_number,
        "recording_did_forms": national_forms(settings.recording_number),
        **dict(zip(("db_host", "db_port", "db_name"), cdr_database(settings), strict=True)),
        "cdr_user": "asterisk_cdr",
        "cdr_password": settings.require("cdr_db_password"),
    }
    gid = settings.asterisk_uid
    for template in sorted(TEMPLATES.glob("*.conf")):
        _write(etc / template.name, env.get_template(template.name).render(values), gid)
    write_trunks(settings, trunks)
    _install_sounds(base / "sounds")
    for sub in WRITABLE:
        path = base / sub
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, settings.asterisk_uid, gid)


def cdr_database(settings: Settings) -> tuple[str, int, str]:
    """(host, port, database) cdr_pgsql writes Asterisk's CDRs to: the database VOCALCAST_DATABASE_URL
    names (its host, or a socket directory given as ?host=), else the project-owned cluster."""
    if not settings.database_url:
        return "127.0.0.1", settings.pg_port, "vocalcast"
    url = urllib.parse.urlsplit(settings.database_url)
    query = urllib.parse.parse_qs(url.query)
    host = url.hostname or (query.get("host") or ["127.0.0.1"])[0]
    port = url.port or int((query.get("port") or ["5432"])[0])
    name = urllib.parse.unquote(url.path.lstrip("/")) or (query.get("dbname") or ["vocalcast"])[0]
    return host, port, name


def write_trunks(settings: Settings, trunks: list[Trunk]) -> None:
    trunkconf.write(settings, trunks)


def _write(path: Path, text: str, gid: int) -> None:
    trunkconf.write_config(path, text, gid)  # passwords inside: root and the asterisk group only


def _install_sounds(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    if SOUNDS.is_dir():
        for file in SOUNDS.iterdir():
            if file.suffix in {".wav", ".alaw", ".ulaw"}:
                shutil.copyfile(file, target / file.name)


# --- mounts ----------------------------------------------------------------------------------------
def mount(settings: Settings, root: RootInfo) -> None:
    """This instance's directory into the root; the media directory read-only below it, unless Asterisk
    fetches messages over HTTP (VOCALCAST_MEDIA_TRANSPORT=http, issue 19): then it never sees the library."""
    inside = root.path / instance_dir(settings).relative_to("/")
    media_inside = inside / "media"
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    restrict_media(settings.media_dir, settings.asterisk_uid)
    inside.mkdir(parents=True, exist_ok=True)
    if not _is_mountpoint(inside):
        _run(["mount", "--bind", str(host_dir(settings)), str(inside)])
    if settings.media_transport == "http":
        if _is_mountpoint(media_inside):  # left by a start in files transport
            _run(["umount", str(media_inside)])
        with contextlib.suppress(FileNotFoundError):
            media_inside.rmdir()  # its empty mount point too: nothing named media in the instance
        return
    media_inside.mkdir(exist_ok=True)
    if not _is_mountpoint(media_inside):
        _run(["mount", "--bind", str(settings.media_dir), str(media_inside)])
        _run(["mount", "-o", "remount,bind,ro", str(media_inside)])


MEDIA_DIR_MODE = 0o2750  # setgid: what the engine creates below belongs to Asterisk's group


def restrict_media(media_dir: Path, gid: int) -> None:
    """Customer audio readable by the engine (owner) and Asterisk (group) only, never by other local users
    (issue 17); once, for what an older version left world-readable."""
    info = media_dir.stat()
    if info.st_gid == gid and info.st_mode & 0o7777 == MEDIA_DIR_MODE:
        return
    for path in [media_dir, *media_dir.rglob("*")]:
        if path.is_symlink():
            continue
        os.chown(path, -1, gid)
        path.chmod(MEDIA_DIR_MODE if path.is_dir() else 0o640)


def unmount(settings: Settings, root_path: Path) -> None:
    inside = root_path / instance_dir(settings).relative_to("/")
    for point in (inside / "media", inside):
        if _is_mountpoint(point):
            _run(["umount", str(point)])
        if _is_mountpoint(point):
            raise StackError(f"{point} is still mounted after umount")


def _is_mountpoint(path: Path) -> bool:
    return path.exists() and any(p == path.resolve() for p in mounts_under(path))


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if proc.returncode != 0:
        raise StackError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")


# --- process -----------------------------------------------------------------------------------------
def cli(settings: Settings, root_path: Path, command: str, *, timeout_s: float = 15) -> str:
    """Run an Asterisk CLI command through this instance's control socket."""
    proc = subprocess.run(
        [
            "chroot",
            str(root_path),
            "/usr/sbin/asterisk",
            "-C",
            str(instance_dir(settings) / "etc/asterisk.conf"),
            "-rx",
            command,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout_s,
    )
    if proc.returncode != 0:
        raise StackError(f"asterisk -rx {command!r}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


ENVIRONMENT = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
# What Asterisk creates (recordings, its logs) is its group's too: the engine, a member, reads and deletes
# the IVR's recordings and rotates the logs; other local users get nothing (issue 17).
UMASK = 0o007


def command(settings: Settings) -> list[str]:
    """Asterisk's command line inside its root, in the foreground: what `stack up` runs under chroot,
    `vocalcast stack run-asterisk` (systemd) executes, and docker/asterisk/entrypoint.sh runs in the
    image (tests/unit/test_deploy.py holds the three to it)."""
    return [
        "/usr/sbin/asterisk",
        "-f",
        "-C",
        str(instance_dir(settings) / "etc/asterisk.conf"),
        "-U",
        "asterisk",
        "-G",
        "asterisk",
    ]


def run_foreground(settings: Settings, root: RootInfo) -> None:
    """Mount this instance into the root and become Asterisk (exec), for a supervisor such as systemd."""
    mount(settings, root)
    argv = ["chroot", str(root.path), *command(settings)]
    os.umask(UMASK)
    os.execve("/usr/sbin/chroot", argv, ENVIRONMENT)  # noqa: S606 - our fixed argv, no shell


def start(settings: Settings, root: RootInfo) -> int:
    pid = procs.read_pid(settings.state_dir, "asterisk")
    if pid is not None:
        return pid
    mount(settings, root)
    log_path = settings.state_dir / "logs" / "asterisk.console.log"
    pid = procs.spawn(
        settings.state_dir,
        "asterisk",
        ["chroot", str(root.path), *command(settings)],
        log_path=log_path,
        env=ENVIRONMENT,
        umask=UMASK,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not procs.alive(pid):
            tail = log_path.read_text(errors="replace")[-1500:]
            raise StackError(f"Asterisk exited during start-up; see {log_path}:\n{tail}")
        try:
            cli(settings, root.path, "core waitfullybooted", timeout_s=10)
            return pid
        except (StackError, subprocess.TimeoutExpired):
            time.sleep(0.1)
    raise StackError(f"Asterisk did not finish booting in 30 s; see {log_path}")


def stop(settings: Settings, root_path: Path | None) -> bool:
    pid = procs.read_pid(settings.state_dir, "asterisk")
    was_running = pid is not None
    if pid is not None and root_path is not None:
        with contextlib.suppress(StackError, subprocess.TimeoutExpired):
            cli(settings, root_path, "core stop now", timeout_s=10)
        if not procs.wait_gone(pid, 10):
            procs.terminate(pid, timeout_s=5)
    elif pid is not None:
        procs.terminate(pid, timeout_s=10)
    procs.pid_file(settings.state_dir, "asterisk").unlink(missing_ok=True)
    if root_path is not None:
        unmount(settings, root_path)
    return was_running
