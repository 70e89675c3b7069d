"""SIPp processes for tests: start one as our child (no -bg, so we stop it by PID), wait until its
sockets are bound, stop it, and read back what it wrote: <log> lines, SIP trace, errors, statistics.

SIPp 3.6 exit codes: 0 all calls succeeded, 1 some failed, 97 stopped by a signal or command,
99 stopped before any call, 255 (-1) fatal error, 254 (-2) could not bind a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

EXIT_CODES = {
    0: "all calls successful",
    1: "at least one call failed",
    97: "exit on internal command or signal",
    99: "normal exit without calls processed",
    255: "fatal error",
    254: "fatal error binding a socket",
}

_LOG_PAIR = re.compile(r'([A-Za-z_][\w.-]*)=("[^"]*"|\S*)')
_TRACE_SEPARATOR = re.compile(r"^-{20,} (.+)$", re.MULTILINE)
_TRACE_DIRECTION = re.compile(r"^(\w+) message (sent|received)\b.*$")


class SippError(Exception):
    """SIPp did not start or did not stop as asked."""


def parse_log_line(line: str) -> dict[str, str]:
    """`key=value` pairs of one <log message="..."/> line; a value may be "double quoted"."""
    return {key: value[1:-1] if value.startswith('"') else value for key, value in _LOG_PAIR.findall(line)}


@dataclass(frozen=True, slots=True)
class SipMessage:
    """One SIP message from SIPp's -trace_msg file."""

    direction: str  # "sent" or "received", from SIPp's point of view
    time: str
    start_line: str
    headers: tuple[tuple[str, str], ...]
    body: str

    @property
    def method(self) -> str | None:
        """The request method, or None for a response."""
        return None if self.start_line.startswith("SIP/2.0") else self.start_line.split(" ", 1)[0]

    @property
    def status(self) -> int | None:
        """The response code, or None for a request."""
        if not self.start_line.startswith("SIP/2.0"):
            return None
        return int(self.start_line.split()[1])

    def header(self, name: str) -> str | None:
        """First value of a header (case-insensitive), or None."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    @property
    def call_id(self) -> str | None:
        return self.header("Call-ID") or self.header("i")


def parse_message_trace(text: str) -> list[SipMessage]:
    """Messages of a SIPp -trace_msg file, in order."""
    messages = []
    parts = _TRACE_SEPARATOR.split(text)
    # split() gives [before, time1, chunk1, time2, chunk2, ...]
    for time_text, chunk in zip(parts[1::2], parts[2::2], strict=True):
        lines = chunk.lstrip("\n").split("\n", 1)
        direction = _TRACE_DIRECTION.match(lines[0])
        if direction is None or len(lines) < 2:
            continue
        raw = lines[1].lstrip("\r\n").replace("\r\n", "\n").rstrip("\n")
        head, _, body = raw.partition("\n\n")
        head_lines = head.split("\n")
        headers: list[tuple[str, str]] = []
        for header_line in head_lines[1:]:
            if header_line[:1] in (" ", "\t") and headers:  # folded continuation
                key, value = headers[-1]
                headers[-1] = (key, f"{value} {header_line.strip()}")
            elif ":" in header_line:
                key, _, value = header_line.partition(":")
                headers.append((key.strip(), value.strip()))
        messages.append(
            SipMessage(direction.group(2), time_text.strip(), head_lines[0], tuple(headers), body)
        )
    return messages


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = str(fd.readlink())
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def udp_ports_bound_by(pid: int) -> set[int]:
    """Local UDP ports (IPv4 and IPv6) held by a process, from /proc (no race, no subprocess)."""
    inodes = _socket_inodes(pid)
    ports = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class SippProcess:
    """One SIPp run as a child process.

    `remote` ("host:port") makes it a caller (UAC); without it the scenario waits for calls (UAS).
    Every file SIPp writes goes to `workdir`, named after `name`: <name>.log (<log> actions),
    <name>.errors.log, <name>.messages.log (SIP trace), <name>.stats.csv, <name>.stderr.
    `keys` become `-key k v` (SIPp expands [k] in the scenario, including play_pcap_audio="[k]").
    """

    def __init__(
        self,
        scenario: Path | str,
        *,
        local_port: int,
        media_port: int | None = None,
        remote: str | None = None,
        workdir: Path | str,
        local_ip: str = "127.0.0.1",
        media_ip: str | None = None,
        service: str | None = None,
        calls: int | None = None,
        rate: float | None = None,
        rate_period_ms: int | None = None,
        limit: int | None = None,
        pause_ms: int | None = None,
        recv_timeout_ms: int | None = None,
        global_timeout_s: float | None = None,
        keys: Mapping[str, str] | None = None,
        trace_messages: bool = True,
        extra_args: Sequence[str] = (),
        name: str | None = None,
        executable: str = "sipp",
    ) -> None:
        self.scenario = Path(scenario).resolve()
        self.local_port = local_port
        self.media_port = media_port
        self.workdir = Path(workdir)
        self.name = name or self.scenario.stem
        args: list[str] = [executable]
        if remote is not None:
            args.append(remote)
        args += ["-sf", str(self.scenario), "-i", local_ip, "-p", str(local_port), "-nostdin"]
        if media_port is not None:
            args += ["-mi", media_ip or local_ip, "-mp", str(media_port)]
        options: list[tuple[str, object | None]] = [
            ("-s", service),
            ("-m", calls),
            ("-r", rate),
            ("-rp", f"{rate_period_ms}ms" if rate_period_ms is not None else None),
            ("-l", limit),
            ("-d", pause_ms),
            ("-recv_timeout", recv_timeout_ms),
            ("-timeout", f"{global_timeout_s}s" if global_timeout_s is not None else None),
        ]
        for flag, value in options:
            if value is not None:
                args += [flag, str(value)]
        for key, value in (keys or {}).items():
            args += ["-key", key, value]
        args += ["-trace_logs", "-log_file", str(self.log_path)]
        args += ["-trace_err", "-error_file", str(self.errors_path)]
        args += ["-trace_stat", "-stf", str(self.stats_path), "-fd", "1"]
        if trace_messages:
            args += ["-trace_msg", "-message_file", str(self.messages_path)]
        args += list(extra_args)
        self.argv = args
        self.caller = remote is not None
        self._process: asyncio.subprocess.Process | None = None

    # --- files ---------------------------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def errors_path(self) -> Path:
        return self.workdir / f"{self.name}.errors.log"

    @property
    def messages_path(self) -> Path:
        return self.workdir / f"{self.name}.messages.log"

    @property
    def stats_path(self) -> Path:
        return self.workdir / f"{self.name}.stats.csv"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / f"{self.name}.stderr"

    # --- lifecycle ------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process else None

    async def start(self, *, ready_timeout_s: float = 5.0) -> None:
        """Spawn SIPp and return once it holds its SIP (and media) UDP ports; SippError if it exits."""
        if self._process is not None:
            raise SippError(f"{self.name}: already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.stderr_path.open("wb") as stderr:
            # stdout carries SIPp's refreshing screen: not useful in a file. cwd=workdir so any file
            # SIPp names by itself lands there too.
            self._process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
                cwd=self.workdir,
            )
        wanted = {self.local_port} | ({self.media_port} if self.media_port is not None else set())
        try:
            async with asyncio.timeout(ready_timeout_s):
                while not wanted <= udp_ports_bound_by(self._process.pid):
                    if self._process.returncode is not None:
                        raise SippError(
                            f"{self.name}: exited with {self._process.returncode}: {self.diagnostics()}"
                        )
                    await asyncio.sleep(0.02)
        except TimeoutError:
            await self.stop()
            raise SippError(
                f"{self.name}: ports {sorted(wanted)} not bound after {ready_timeout_s}s"
            ) from None

    async def wait(self, timeout_s: float) -> int:
        """Wait for SIPp to exit on its own (e.g. after -m calls); TimeoutError leaves it running."""
        if self._process is None:
            raise SippError(f"{self.name}: not started")
        async with asyncio.timeout(timeout_s):
            return await self._process.wait()

    async def stop(self, *, grace_s: float | None = None) -> int:
        """Stop SIPp: SIGUSR1 (no new calls, let calls end), SIGUSR1 again (abort calls), SIGTERM,
        then SIGKILL, each given part of grace_s. Returns the exit code (negative: killed by a signal).

        A callee (UAS, no ``remote``) gets 0.3 s, then SIGTERM (given 2 s to write its files): its calls
        end when the far end ends them, and a message it answered by itself (`-aa`: a trunk's OPTIONS
        qualify) leaves a call waiting for an INVITE that neither SIGUSR1 ends — a caller gets 3 s."""
        process = self._process
        if process is None:
            raise SippError(f"{self.name}: not started")
        if grace_s is None and not self.caller:
            steps: tuple[tuple[signal.Signals, float], ...] = (
                (signal.SIGUSR1, 0.3),
                (signal.SIGTERM, 2.0),
                (signal.SIGKILL, 5.0),
            )
        else:
            grace = 3.0 if grace_s is None else grace_s
            steps = (
                (signal.SIGUSR1, grace / 2),
                (signal.SIGUSR1, grace / 4),
                (signal.SIGTERM, grace / 4),
                (signal.SIGKILL, 5.0),
            )
        for sig, wait_s in steps:
            if process.returncode is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await process.wait()
        if process.returncode is None:
            raise SippError(f"{self.name}: pid {process.pid} did not die")
        return process.returncode

    async def __aenter__(self) -> SippProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._process is not None and self._process.returncode is None:
            await self.stop()

    # --- results ----------------------------------------------------------------------------------------

    def log_lines(self) -> list[str]:
        return _read_lines(self.log_path)

    def log_events(self) -> list[dict[str, str]]:
        """Each <log> line as a dict of its key=value pairs, in order."""
        return [parse_log_line(line) for line in self.log_lines() if line.strip()]

    def errors(self) -> str:
        """SIPp's error log (unexpected messages, timeouts, planned jumps on receive timeout)."""
        return _read_text(self.errors_path)

    def messages(self) -> list[SipMessage]:
        """The SIP messages SIPp sent and received (needs trace_messages=True)."""
        return parse_message_trace(_read_text(self.messages_path))

    def stats(self) -> dict[str, str]:
        """Last row of the -trace_stat CSV, by column name (e.g. "SuccessfulCall(C)"); {} if none yet."""
        lines = [line for line in _read_lines(self.stats_path) if line.strip()]
        if len(lines) < 2:
            return {}
        header = lines[0].rstrip(";").split(";")
        values = lines[-1].rstrip(";").split(";")
        return dict(zip(header, values, strict=False))

    def call_counts(self) -> tuple[int, int]:
        """(successful, failed) calls from the statistics."""
        stats = self.stats()
        return int(stats.get("SuccessfulCall(C)", 0)), int(stats.get("FailedCall(C)", 0))

    def diagnostics(self) -> str:
        """Short text for assertion messages: exit code, stderr and error log tails."""
        code = self.returncode
        meaning = EXIT_CODES.get(code & 0xFF, "") if code is not None and code >= 0 else ""
        stderr = _read_text(self.stderr_path)[-1500:]
        errors = self.errors()[-1500:]
        return f"rc={code} {meaning}\n--- stderr\n{stderr}\n--- errors\n{errors}"


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _read_lines(path: Path) -> list[str]:
    return _read_text(path).splitlines()


def free_udp_ports(count: int, *, span: int = 1, first: int = 29000, last: int = 29999) -> list[int]:
    """`count` UDP ports in [first, last] that nobody holds now, each followed by span-1 free ports
    (use span=3 for a SIPp media port: it binds mp and mp+2). Best effort: another process may take
    one before SIPp binds it; SIPp then exits with 254 and start() raises SippError."""
    held = _held_udp_ports()
    found: list[int] = []
    port = first
    while port + span - 1 <= last and len(found) < count:
        block = range(port, port + span)
        if held.isdisjoint(block):
            found.append(port)
            held.update(block)
            port += span
        else:
            port += 1
    if len(found) < count:
        raise SippError(f"not enough free UDP ports in {first}-{last}")
    return found


def _held_udp_ports() -> set[int]:
    held = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 1:
                    held.add(int(fields[1].rsplit(":", 1)[1], 16))
    return held


def count_events(events: Iterable[Mapping[str, str]], **match: str) -> int:
    """How many log events have all the given key=value pairs (e.g. event="INVITE", number="100")."""
    return sum(1 for event in events if all(event.get(k) == v for k, v in match.items()))
