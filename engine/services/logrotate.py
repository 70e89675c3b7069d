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


def render(settings: Settings) -> str:
    """logrotate's configuration for this instance."""
    paths = " ".join(f'"{p}"' for p in log_globs(settings))
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
        "    su root root\n"
        "}\n"
    )


async def rotate(settings: Settings, *, force: bool = False) -> bool:
    """Run logrotate on the instance's logs (``force``: rotate even if rotated less than a day ago).
    False, with a warning, when logrotate is missing or fails: logs are never worth stopping for."""
    program = shutil.which("logrotate", path=f"{os.defpath}:/usr/sbin:/sbin")
    if program is None:
        log.warning("logs.rotate_skipped", reason="logrotate is not installed")
        return False
    run = settings.state_dir / "run"
    run.mkdir(parents=True, exist_ok=True)
    conf = run / "logrotate.conf"
    conf.write_text(render(settings), encoding="utf-8")
    conf.chmod(0o644)  # logrotate refuses a configuration others may write
    args = [program, "--state", str(run / "logrotate.state"), *(["--force"] if force else []), str(conf)]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        log.warning(
            "logs.rotate_failed", rc=proc.returncode, error=(err or out).decode(errors="replace")[:500]
        )
        return False
    return True
