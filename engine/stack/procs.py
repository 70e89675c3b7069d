"""Background processes of the local stack, tracked by PID files in <state dir>/run."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from engine.errors import StackError

# Popen objects of the processes this Python process started: kept so that they are reaped by
# poll() rather than garbage-collected while running (which warns).
_children: dict[int, subprocess.Popen[bytes]] = {}


def pid_file(state_dir: Path, name: str) -> Path:
    return state_dir / "run" / f"{name}.pid"


def read_pid(state_dir: Path, name: str) -> int | None:
    """The recorded PID of ``name`` if that process still runs, else None (a stale file stays: status
    reports it as crashed until the piece is started or stopped again)."""
    path = pid_file(state_dir, name)
    try:
        pid = int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return pid if alive(pid) else None


def status(state_dir: Path, name: str) -> str:
    """running, stopped (no PID file) or crashed (a PID file whose process is gone)."""
    path = pid_file(state_dir, name)
    try:
        pid = int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return "stopped"
    return "running" if alive(pid) else "crashed"


def alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        # Our own child: poll() alone answers, and reaps it once it has ended (killed, crashed), so it
        # is never left a zombie with a Popen that warns at exit.
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0): check its state.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def spawn(
    state_dir: Path,
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    umask: int = 0o027,
    log_owner: tuple[int, int] | None = None,
) -> int:
    """Start ``argv`` in its own session (it outlives this command), record its PID. ``log_owner``: the
    (uid, gid) the log file is given, for a process that drops root (its own logrotate truncates it)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_file(state_dir, name).parent.mkdir(parents=True, exist_ok=True)
    # Logs hold customers' numbers and e-mail addresses: their owner only (issue 17). Never through a
    # symbolic link: the logs directory belongs to the service user, who could have planted one.
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    if stat.S_ISREG(os.fstat(fd).st_mode):  # never /dev/null (its mode is every local user's)
        os.fchmod(fd, 0o600)
        if log_owner is not None:
            os.fchown(fd, *log_owner)
    with os.fdopen(fd, "ab") as log, Path(os.devnull).open("rb") as devnull:
        proc = subprocess.Popen(
            list(argv),
            stdin=devnull,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            umask=umask,  # what it creates: never readable by other local users (0o027 unless told)
        )
    _children[proc.pid] = proc
    pid_file(state_dir, name).write_text(f"{proc.pid}\n")
    return proc.pid


def stop(state_dir: Path, name: str, *, timeout_s: float = 10.0, sig: int = signal.SIGTERM) -> bool:
    """Stop the recorded process: ``sig``, then SIGKILL after ``timeout_s``. True if one was running."""
    pid = read_pid(state_dir, name)
    pid_file(state_dir, name).unlink(missing_ok=True)
    if pid is None:
        return False
    terminate(pid, timeout_s=timeout_s, sig=sig)
    return True


def terminate(pid: int, *, timeout_s: float, sig: int = signal.SIGTERM) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    if wait_gone(pid, timeout_s):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if not wait_gone(pid, 5.0):
        raise StackError(f"process {pid} did not exit after SIGKILL")


def wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pid not in _children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it if it is our child; harmless otherwise
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)
