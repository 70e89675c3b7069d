"""The stack's processes log into files only root reads (issue 17), but a process whose output goes to
/dev/null must not take /dev/null's mode with it: every other local user (PostgreSQL's pg_ctl, run as
postgres) then fails with "cannot open /dev/null" (seen: the demo phone's spawn did it)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from engine.stack import procs


def test_a_process_logging_to_dev_null_leaves_its_mode_alone(tmp_path: Path) -> None:
    before = stat.S_IMODE(Path(os.devnull).stat().st_mode)
    pid = procs.spawn(tmp_path, "quiet", ["true"], log_path=Path(os.devnull))
    assert procs.wait_gone(pid, 10)
    assert stat.S_IMODE(Path(os.devnull).stat().st_mode) == before == 0o666


def test_a_log_file_is_root_only(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "x.log"
    log.parent.mkdir()
    log.write_text("")
    log.chmod(0o644)
    pid = procs.spawn(tmp_path, "loud", ["true"], log_path=log)
    assert procs.wait_gone(pid, 10)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
