"""The engine's daily log rotation runs the host's real logrotate on the instance's logs (the stack's
and Asterisk's own), keeping VOCALCAST_LOG_KEEP_DAYS generations, open files truncated in place."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from engine.media.paths import host_dir
from engine.services.logrotate import render, rotate
from engine.settings import Settings


def _settings(tmp_path: Path, keep: int) -> Settings:
    return Settings.from_env(
        {
            "VOCALCAST_STATE_DIR": str(tmp_path / "state"),
            "VOCALCAST_CACHE_DIR": str(tmp_path / "cache"),
            "VOCALCAST_LOG_KEEP_DAYS": str(keep),
        }
    )


async def test_logs_are_rotated_and_only_the_days_kept_remain(tmp_path: Path) -> None:
    settings = _settings(tmp_path, keep=2)
    engine_log = settings.state_dir / "logs" / "engine.log"
    asterisk_log = host_dir(settings) / "log" / "messages.log"
    for path in (engine_log, asterisk_log):
        path.parent.mkdir(parents=True)
    for day in range(4):
        engine_log.write_text(f"engine day {day}\n")
        asterisk_log.write_text(f"asterisk day {day}\n")
        assert await rotate(settings, force=True)
        # Truncated in place (the processes keep writing to the same open file), the day moved aside.
        assert engine_log.exists() and engine_log.stat().st_size == 0
        assert asterisk_log.exists() and asterisk_log.stat().st_size == 0
    logs = sorted(p.name for p in engine_log.parent.iterdir())
    assert logs == ["engine.log", "engine.log.1", "engine.log.2.gz"], logs
    assert (engine_log.parent / "engine.log.1").read_text() == "engine day 3\n"
    assert sorted(p.name for p in asterisk_log.parent.iterdir()) == [
        "messages.log",
        "messages.log.1",
        "messages.log.2.gz",
    ]


async def test_without_a_day_passed_nothing_is_rotated(tmp_path: Path) -> None:
    settings = _settings(tmp_path, keep=14)
    engine_log = settings.state_dir / "logs" / "engine.log"
    engine_log.parent.mkdir(parents=True)
    engine_log.write_text("first\n")
    assert await rotate(settings, force=True)
    engine_log.write_text("second\n")
    assert await rotate(settings)  # the daily run again the same day: already rotated today
    assert engine_log.read_text() == "second\n"


def test_the_configuration_names_the_settings_days() -> None:
    settings = Settings.from_env({"VOCALCAST_STATE_DIR": "/srv/x", "VOCALCAST_LOG_KEEP_DAYS": "9"})
    text = render(settings)
    assert '"/srv/x/logs/*.log"' in text and '"/srv/x/asterisk/log/*.log"' in text
    assert "rotate 9\n" in text and "copytruncate" in text


NOBODY = 65534


def _engine_owned_state(base: Path) -> Settings:
    """A state directory as `stack up` leaves it: logs and run/engine the service user's (here nobody),
    with logrotate's state root's, as an earlier rotation run as root left it."""
    base.chmod(0o755)
    settings = _settings(base, keep=3)
    logs, run = settings.state_dir / "logs", settings.state_dir / "run" / "engine"
    for path in (logs, run):
        path.mkdir(parents=True)
        os.chown(path, NOBODY, NOBODY)
    settings.state_dir.chmod(0o755)
    (settings.state_dir / "run").chmod(0o755)
    (logs / "engine.log").write_text("day 1\n")
    os.chown(logs / "engine.log", NOBODY, NOBODY)
    (run / "logrotate.state").write_text("")
    return settings


async def test_root_rotates_as_the_owner_of_the_engines_directory() -> None:
    """An operator's command (root) rotating the logs of an engine that runs as the service user leaves
    nothing the engine's own daily run cannot use: it runs logrotate as that user (a state file root
    left before is handed over)."""
    base = Path(tempfile.mkdtemp(prefix="vc-rotate-"))
    try:
        settings = _engine_owned_state(base)
        assert await rotate(settings, force=True)
        logs, run = settings.state_dir / "logs", settings.state_dir / "run" / "engine"
        assert (logs / "engine.log.1").read_text() == "day 1\n"
        for path in (logs / "engine.log.1", run / "logrotate.state", run / "logrotate.conf"):
            assert path.stat().st_uid == NOBODY, path
    finally:
        shutil.rmtree(base)
