"""FastAGI server on asyncio: reads Asterisk's ``agi_*`` header block, routes on the script name and
gives each call a typed AGISession (one command at a time; HANGUP, 511 and 520 handled; every wait bounded).

An unknown script gets a ``HANGUP`` command before the connection closes, so a dialplan mistake can
never let a call fall through to whatever follows ``AGI()`` (toll-fraud rule: nothing unplanned runs).

When the server has a secret, every request must carry it in its AGI URL (``agi://host:port/record?
secret=...``; Asterisk's AGI client speaks only plain TCP): any local process can connect to the port,
and one without the secret gets ``HANGUP`` before its ``agi_callerid`` or anything else is believed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self
from urllib.parse import parse_qsl

import structlog

log = structlog.get_logger(__name__)

Handler = Callable[["AGISession"], Awaitable[None]]
RecordReason = Literal["dtmf", "timeout", "silence"]

AGI_PORT = 4573
MAX_HEADER_BYTES = 64 * 1024
# Asterisk reads each command with fgets() into an 8 KiB buffer (AGI_BUF_LEN): a longer line is split.
_MAX_COMMAND_BYTES = 8190
# A dead channel answers at once (511); once HANGUP is seen, don't wait the long command timeout.
_AFTER_HANGUP_TIMEOUT_S = 2.0
_CLOSE_TIMEOUT_S = 1.0

# Reply shapes follow panoramisk's utils.parse_agi_result (MIT licence, (c) 2015 Gael Pasgrimaud); the
# data group is greedy so GET VARIABLE values may hold parentheses, and key=value pairs may follow it.
_REPLY_RE = re.compile(r"(?P<code>\d{3})(?P<sep>[ -]?)(?P<rest>.*)")
_RESULT_RE = re.compile(r"result=(?P<result>\S*)(?:\s+\((?P<data>.*)\))?(?P<extras>(?:\s+\w+=\S*)*)\s*")
_EXTRA_RE = re.compile(r"(\w+)=(\S*)")
_ENV_KEY_RE = re.compile(r"agi_\w+")


class AGIError(Exception):
    """Base of every FastAGI error; ``reply`` is the parsed reply when there was one."""

    def __init__(self, message: str, reply: AGIResult | None = None) -> None:
        super().__init__(message)
        self.reply = reply


class AGIHangup(AGIError):
    """The channel hung up, or the connection to Asterisk is gone."""


class AGIDeadChannel(AGIHangup):
    """Asterisk answered 511: the command is not permitted on a dead channel."""


class AGIInvalidCommand(AGIError):
    """Asterisk answered 510: invalid or unknown command."""


class AGIUsageError(AGIError):
    """Asterisk answered 520: bad arguments; the message holds Asterisk's usage text."""


class AGICommandFailed(AGIError):
    """The command ran and failed (application not found, file not writable)."""


class AGIProtocolError(AGIError):
    """Asterisk sent a line this module cannot parse; the connection is closed."""


class AGITimeout(AGIError):
    """No reply within the command timeout; the connection is closed."""


@dataclass(frozen=True, slots=True)
class AGIResult:
    """One ``200 result=<result> (<data>) key=value...`` reply."""

    code: int
    result: str
    data: str = ""
    extras: dict[str, str] = field(default_factory=dict)

    def number(self) -> int:
        """The result as an integer (most commands return one)."""
        try:
            return int(self.result)
        except ValueError as exc:
            raise AGIProtocolError(f"non-numeric result {self.result!r}", self) from exc

    def endpos(self) -> int:
        """The ``endpos=`` sample offset, 0 when absent."""
        value = self.extras.get("endpos", "0")
        return int(value) if value.lstrip("-").isdigit() else 0


@dataclass(frozen=True, slots=True)
class GetDataResult:
    """Digits typed for GET DATA; ``timed_out`` is False when ``#`` or ``max_digits`` ended the input."""

    digits: str
    timed_out: bool


@dataclass(frozen=True, slots=True)
class RecordResult:
    """How RECORD FILE ended: ``digit`` is the escape digit pressed ("" otherwise), ``endpos`` in samples."""

    digit: str
    endpos: int
    reason: RecordReason


def parse_result(line: str) -> AGIResult:
    """Parse a ``200 result=...`` line (other codes are handled by the session)."""
    match = _REPLY_RE.fullmatch(line)
    body = _RESULT_RE.fullmatch(match["rest"].strip()) if match and match["code"] == "200" else None
    if match is None or body is None:
        raise AGIProtocolError(f"unparseable reply {line!r}")
    extras = dict(_EXTRA_RE.findall(body["extras"]))
    return AGIResult(200, body["result"], body["data"] or "", extras)


def quote_arg(arg: str | int) -> str:
    """Quote one argument the way Asterisk's parse_args() reads it back (quotes, backslashes, spaces)."""
    text = str(arg)
    if any(char in text for char in "\r\n\0"):
        raise ValueError(f"AGI argument may not contain a line break or NUL: {text!r}")
    if text and not any(char in text for char in ' \t"\\'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_command(verb: str, args: Sequence[str | int]) -> bytes:
    """``verb`` is sent verbatim (``"GET DATA"``); each argument is quoted."""
    line = " ".join([verb, *(quote_arg(arg) for arg in args)]).encode()
    if any(char in verb for char in "\r\n\0") or len(line) > _MAX_COMMAND_BYTES:
        raise ValueError(f"AGI command too long or holds a line break: {verb!r}")
    return line + b"\n"


def parse_env(block: bytes) -> dict[str, str] | None:
    """The ``agi_key: value`` header block as a dict, or None when a line does not look like one."""
    env: dict[str, str] = {}
    for line in block.decode("utf-8", "replace").split("\n"):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep or not _ENV_KEY_RE.fullmatch(key.strip()):
            return None
        env[key.strip()] = value.strip()
    return env or None


def _script_path(raw: str) -> str:
    return raw.partition("?")[0].strip("/")


def _digit(code: int) -> str:
    return chr(code) if code > 0 else ""


class AGISession:
    """One FastAGI call: its environment, and commands sent one at a time."""

    def __init__(
        self,
        env: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        command_timeout_s: float = 600.0,
    ) -> None:
        self.env = env
        raw_script = env.get("agi_network_script", "")
        self.script = _script_path(raw_script)
        self.query = dict(parse_qsl(raw_script.partition("?")[2], keep_blank_values=True))
        self.args: list[str] = []
        while f"agi_arg_{len(self.args) + 1}" in env:
            self.args.append(env[f"agi_arg_{len(self.args) + 1}"])
        self._reader = reader
        self._writer = writer
        self._command_timeout_s = command_timeout_s
        self._lock = asyncio.Lock()
        self._hung_up = False

    @property
    def channel(self) -> str:
        return self.env.get("agi_channel", "")

    @property
    def caller_id(self) -> str | None:
        """The caller's number; None when Asterisk has none ("unknown")."""
        number = self.env.get("agi_callerid", "")
        return None if number in ("", "unknown") else number

    @property
    def hung_up(self) -> bool:
        return self._hung_up

    async def command(self, verb: str, *args: str | int, timeout_s: float | None = None) -> AGIResult:
        """Send one command and return its ``200`` reply; errors and hang-ups raise AGIError subclasses.

        Once the session is hung up, commands raise AGIHangup without being sent: the conversation is over
        and nothing the handler still has to do (discarding a recording) needs the channel.
        """
        line = build_command(verb, args)
        async with self._lock:
            if self._hung_up or self._writer.is_closing():
                raise AGIHangup(f"{verb}: channel hung up or connection closed")
            try:
                async with asyncio.timeout(timeout_s or self._command_timeout_s) as deadline:
                    self._writer.write(line)
                    await self._writer.drain()
                    return await self._read_reply(deadline)
            except TimeoutError as exc:
                self._writer.close()  # the reply may still come: the stream can no longer be trusted
                if self._hung_up:
                    raise AGIHangup(f"{verb}: no reply after HANGUP") from exc
                raise AGITimeout(f"{verb}: no reply within the timeout") from exc
            except ConnectionError as exc:
                self._hung_up = True
                raise AGIHangup(f"{verb}: connection lost") from exc
            except (AGIProtocolError, asyncio.CancelledError):
                self._writer.close()  # a reply arriving now would be read as the next command's
                raise

    async def _read_reply(self, deadline: asyncio.Timeout) -> AGIResult:
        while True:
            line = await self._read_line()
            if line == "HANGUP":  # asynchronous: before or after the reply of the pending command
                self._hung_up = True
                soon = asyncio.get_running_loop().time() + _AFTER_HANGUP_TIMEOUT_S
                when = deadline.when()
                if when is None or soon < when:
                    deadline.reschedule(soon)
                continue
            match = _REPLY_RE.fullmatch(line)
            code = int(match["code"]) if match else 0
            if not line or 100 <= code < 200:  # "100 result=0 Trying..." precedes the real reply
                continue
            if code == 200:
                reply = parse_result(line)
                if self._hung_up:
                    raise AGIHangup("channel hung up", reply)
                return reply
            if code == 510:
                raise AGIInvalidCommand(line)
            if code == 511:
                self._hung_up = True
                raise AGIDeadChannel(line)
            if code == 520 and match is not None:
                usage = [match["rest"]]
                while match["sep"] == "-" and not usage[-1].startswith("520 "):
                    usage.append(await self._read_line())
                raise AGIUsageError("\n".join(usage))
            raise AGIProtocolError(f"unexpected reply {line!r}")

    async def _read_line(self) -> str:
        try:
            raw = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            self._hung_up = True
            raise AGIHangup("Asterisk closed the connection") from exc
        except asyncio.LimitOverrunError as exc:
            raise AGIProtocolError("reply line too long") from exc
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    async def _number(self, verb: str, *args: str | int) -> tuple[int, AGIResult]:
        """Commands whose result -1 means the channel hung up."""
        reply = await self.command(verb, *args)
        value = reply.number()
        if value < 0:
            raise AGIHangup(f"{verb} returned {value}", reply)
        return value, reply

    async def answer(self) -> None:
        await self._number("ANSWER")

    async def hangup(self) -> None:
        await self.command("HANGUP")
        self._hung_up = True

    async def verbose(self, message: str, level: int = 1) -> None:
        await self.command("VERBOSE", message, level)

    async def set_variable(self, name: str, value: str) -> None:
        await self.command("SET VARIABLE", name, value)

    async def get_variable(self, name: str) -> str | None:
        reply = await self.command("GET VARIABLE", name)
        return reply.data if reply.result == "1" else None

    async def stream_file(self, name: str, escape_digits: str = "") -> tuple[str, int]:
        """Play ``name`` (no extension); returns (digit pressed or "", endpos).

        Asterisk also answers -1 when the file does not exist, so a missing prompt surfaces as AGIHangup
        (Asterisk logs the missing file).
        """
        value, reply = await self._number("STREAM FILE", name, escape_digits)
        return _digit(value), reply.endpos()

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> GetDataResult:
        """Play ``prompt`` and collect digits until ``#``, ``max_digits`` or the timeout."""
        reply = await self.command("GET DATA", prompt, timeout_ms, max_digits)
        if reply.result == "-1":
            raise AGIHangup("GET DATA returned -1", reply)
        return GetDataResult(reply.result, reply.data == "timeout")

    async def wait_for_digit(self, timeout_ms: int) -> str:
        """One digit, or "" when the timeout expired."""
        value, _ = await self._number("WAIT FOR DIGIT", timeout_ms)
        return _digit(value)

    async def say_digits(self, digits: str, escape_digits: str = "") -> str:
        value, _ = await self._number("SAY DIGITS", digits, escape_digits)
        return _digit(value)

    async def exec(self, app: str, args: str | Sequence[str] = "") -> int:
        """Run a dialplan application; a sequence of arguments is joined with commas."""
        options = args if isinstance(args, str) else ",".join(args)
        reply = await self.command("EXEC", app, options)
        value = reply.number()
        if value == -2:
            raise AGICommandFailed(f"EXEC: no application {app!r}", reply)
        if value == -1:
            raise AGIHangup(f"EXEC {app} returned -1", reply)
        return value

    async def record_file(
        self,
        path: str,
        fmt: str,
        escape_digits: str,
        timeout_ms: int,
        *,
        beep: bool = True,
        silence_s: int | None = None,
        offset: int = 0,
    ) -> RecordResult:
        """Record to ``path.fmt`` until an escape digit, ``timeout_ms`` (-1: none) or ``silence_s`` silence.

        Asterisk reports a silence stop as ``(timeout)`` too; a stop before ``timeout_ms`` elapsed can only be
        silence, so that is how "silence" is told apart (a silence stop in the last moments reads "timeout").
        A hang-up raises AGIHangup (its ``reply`` keeps the endpos).
        """
        args: list[str | int] = [path, fmt, escape_digits, timeout_ms, offset]
        if beep:
            args.append("BEEP")
        if silence_s is not None:
            args.append(f"s={silence_s}")
        loop = asyncio.get_running_loop()
        started = loop.time()
        reply = await self.command("RECORD FILE", *args)
        elapsed_ms = (loop.time() - started) * 1000
        value = reply.number()
        if reply.data == "dtmf" or (reply.data == "randomerror" and value > 0):  # key pressed during beep
            return RecordResult(_digit(value), reply.endpos(), "dtmf")
        if reply.data == "timeout":
            stopped_early = timeout_ms < 0 or elapsed_ms < timeout_ms
            reason: RecordReason = "silence" if silence_s and stopped_early else "timeout"
            return RecordResult("", reply.endpos(), reason)
        if reply.data in ("hangup", "waitfor", "randomerror"):
            raise AGIHangup(f"RECORD FILE ended by {reply.data}", reply)
        raise AGICommandFailed(f"RECORD FILE failed ({reply.data or value})", reply)


class FastAGIServer:
    """Accepts FastAGI connections and runs the handler routed by ``agi_network_script``."""

    def __init__(
        self,
        routes: Mapping[str, Handler],
        *,
        host: str = "127.0.0.1",
        port: int = AGI_PORT,
        header_timeout_s: float = 5.0,
        command_timeout_s: float = 600.0,
        max_header_bytes: int = MAX_HEADER_BYTES,
        secret: str | None = None,
    ) -> None:
        self._secret = secret
        self._routes = {_script_path(name): handler for name, handler in routes.items()}
        self._host = host
        self._port = port
        self._header_timeout_s = header_timeout_s
        self._command_timeout_s = command_timeout_s
        self._max_header_bytes = max_header_bytes
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("FastAGI server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def active_sessions(self) -> int:
        """Connections being served, header reading included."""
        return len(self._sessions)

    async def start(self) -> None:
        self._closing = False
        # reuse_port: several engine processes on one host share the port the dialplan points to (the
        # kernel spreads the calls between them).
        self._server = await asyncio.start_server(
            self._on_connect, self._host, self._port, limit=self._max_header_bytes, reuse_port=True
        )
        log.info("fastagi.listening", host=self._host, port=self.port, routes=sorted(self._routes))

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop listening, let running sessions finish for ``grace_s``, then cancel and await the rest."""
        if self._server is None:
            return
        self._closing = True
        self._server.close()
        if self._sessions and grace_s > 0:
            await asyncio.wait(set(self._sessions), timeout=grace_s)
        for task in self._sessions:
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing:
            writer.close()
            return
        task = asyncio.create_task(self._serve(reader, writer), name="fastagi-session")
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            env = await self._read_env(reader, peer)
            if env is not None:
                await self._run(AGISession(env, reader, writer, command_timeout_s=self._command_timeout_s))
        finally:
            writer.close()
            with contextlib.suppress(OSError):  # includes TimeoutError and a peer that reset
                await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT_S)

    async def _read_env(self, reader: asyncio.StreamReader, peer: object) -> dict[str, str] | None:
        try:
            async with asyncio.timeout(self._header_timeout_s):
                block = await reader.readuntil(b"\n\n")
        except TimeoutError:
            log.warning("fastagi.header_timeout", peer=peer, timeout_s=self._header_timeout_s)
        except asyncio.IncompleteReadError as exc:
            log.warning("fastagi.disconnected_mid_headers", peer=peer, received_bytes=len(exc.partial))
        except asyncio.LimitOverrunError:
            log.warning("fastagi.headers_too_large", peer=peer, max_bytes=self._max_header_bytes)
        except ConnectionError as exc:
            log.warning("fastagi.connection_error", peer=peer, error=str(exc))
        else:
            env = parse_env(block)
            if env is None:
                log.warning("fastagi.malformed_headers", peer=peer)
            return env
        return None

    def _authentic(self, session: AGISession) -> bool:
        if self._secret is None:
            return True
        given = session.query.get("secret", "")
        return hmac.compare_digest(given.encode(), self._secret.encode())

    async def _run(self, session: AGISession) -> None:
        if not self._authentic(session):
            # Never logged: the script and its URL (they may hold a near miss of the secret).
            log.warning(
                "fastagi.refused_without_secret",
                channel=session.channel,
                uniqueid=session.env.get("agi_uniqueid"),
                secret_given="secret" in session.query,
            )
            with contextlib.suppress(AGIError):
                await session.command("HANGUP", timeout_s=_AFTER_HANGUP_TIMEOUT_S)
            return
        bound = log.bind(
            script=session.script, channel=session.channel, uniqueid=session.env.get("agi_uniqueid")
        )
        handler = self._routes.get(session.script)
        if handler is None:
            bound.error("fastagi.unknown_script")
            with contextlib.suppress(AGIError):
                await session.command("HANGUP", timeout_s=_AFTER_HANGUP_TIMEOUT_S)
            return
        bound.info("fastagi.session_started", args=len(session.args))
        try:
            await handler(session)
        except AGIHangup as exc:
            bound.info("fastagi.session_hung_up", detail=str(exc))
        except asyncio.CancelledError:
            bound.info("fastagi.session_cancelled")
            raise
        except Exception:  # noqa: BLE001 -- task boundary: a failing call must not take the server down
            bound.exception("fastagi.handler_failed")
        else:
            bound.info("fastagi.session_ended")
