"""Rotation of the instance's log files by the host's logrotate, run by the engine itself once a day (the
retention job): nothing to install in /etc, nothing that depends on a cron daemon.

Every log keeps VOCALCAST_LOG_KEEP_DAYS daily generations, compressed; copytruncate, because the engine's
and Asterisk's processes keep their files open (the stack redirects their output into them)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import structlog

from engine.media.paths import host_dir
from engine.settings import Settings

log = structlog.get_logger(__name__)


def log_globs(settings: Settings) -> list[Path]:
    """The files rotated: the stack's logs (engine, Asterisk's console, demo phone) and Asterisk's own."""
    return [settings.state_dir / "logs" / "*.log", host_dir(settings) / "log" / "*.log"]


def render(settings: Settings, *, as_root: bool = True) -> str:
    """logrotate's configuration for this instance. ``as_root`` false: for the engine as the service user
    (issue 17), owner of the logs directory and in Asterisk's group (logrotate cannot switch to root)."""
    paths = " ".join(f'"{p}"' for p in log_globs(settings))
    su = "    su root root\n" if as_root else ""
    return (
        "# Written by the engine (engine/services/logrotate.py) at each rotation: edits are lost.\n"
        f"{paths} {{\n"
        "    daily\n"
        f"    rotate {settings.log_keep_days}\n"
        f"    maxage {settings.log_keep_days}\n"
        "    compress\n"
        "    delaycompress\n"
        "    copytruncate\n"
        "    missingok\n"
        "    notifempty\n"
        f"{su}"
        "}\n"
    )


async def rotate(settings: Settings, *, force: bool = False) -> bool:
    """Run logrotate on the instance's logs (``force``: rotate even if rotated less than a day ago).
    False, with a warning, when logrotate is missing or fails: logs are never worth stopping for."""
    program = shutil.which("logrotate", path=f"{os.defpath}:/usr/sbin:/sbin")
    if program is None:
        log.warning("logs.rotate_skipped", reason="logrotate is not installed")
        return False
    # The engine's own directory below run/ (the rest of run/, the PID files, stays root's: issue 17).
    run = settings.state_dir / "run" / "engine"
    run.mkdir(parents=True, exist_ok=True)
    # Root (an operator's command, an engine started by hand) rotates as the directory's owner, the
    # service user when `stack up` runs the engine: the files it leaves (state, rotated logs) stay the
    # engine's, whose own daily run could not touch root's.
    owner = run.stat()
    as_owner = os.geteuid() == 0 and owner.st_uid != 0
    conf = run / "logrotate.conf"
    conf.unlink(missing_ok=True)  # a new file, ours: logrotate refuses a configuration someone else owns
    # logrotate also refuses a configuration others may write
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(render(settings, as_root=os.geteuid() == 0 and not as_owner))
    state = run / "logrotate.state"
    args = [program, "--state", str(state), *(["--force"] if force else []), str(conf)]
    uid = gid = None
    groups: list[int] | None = None
    if as_owner:
        uid, gid = owner.st_uid, owner.st_gid
        os.chown(conf, uid, gid, follow_symlinks=False)
        if state.exists():  # left by a run as root before this rule
            os.chown(state, uid, gid, follow_symlinks=False)
        groups = [settings.asterisk_uid]  # the engine's one supplementary group: Asterisk's logs too
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        user=uid,
        group=gid,
        extra_groups=groups,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        log.warning(
            "logs.rotate_failed", rc=proc.returncode, error=(err or out).decode(errors="replace")[:500]
        )
        return False
    return True
