"""Background processes of the local stack (engine/stack/procs.py), on plain `sleep` processes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from engine.stack import procs


def test_a_child_killed_behind_our_back_is_reaped_and_reported_crashed(tmp_path: Path) -> None:
    pid = procs.spawn(tmp_path, "piece", ["sleep", "60"], log_path=tmp_path / "piece.log")
    assert procs.status(tmp_path, "piece") == "running"
    os.kill(pid, signal.SIGKILL)
    while procs.alive(pid):  # what `status` and `up` ask; the kill lands within a few ms
        time.sleep(0.001)  # asked often, so that it is also asked while the process is dying
    assert pid not in procs._children  # reaped: no zombie, no Popen left running at exit
    assert procs.status(tmp_path, "piece") == "crashed"
    assert procs.read_pid(tmp_path, "piece") is None
    assert procs.stop(tmp_path, "piece") is False
    assert procs.status(tmp_path, "piece") == "stopped"


def test_stop_ends_a_running_child_and_forgets_it(tmp_path: Path) -> None:
    pid = procs.spawn(tmp_path, "piece", ["sleep", "60"], log_path=tmp_path / "piece.log")
    assert procs.stop(tmp_path, "piece", timeout_s=5) is True
    assert not procs.alive(pid)
    assert pid not in procs._children
    assert procs.status(tmp_path, "piece") == "stopped"
