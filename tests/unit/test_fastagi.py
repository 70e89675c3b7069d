"""FastAGI server against a fake Asterisk over TCP that plays recorded protocol bytes (Asterisk 22 forms)."""

from __future__ import annotations

import _thread
import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from ivr.fastagi import (
    AGICommandFailed,
    AGIDeadChannel,
    AGIHangup,
    AGIInvalidCommand,
    AGIProtocolError,
    AGISession,
    AGITimeout,
    AGIUsageError,
    FastAGIServer,
    GetDataResult,
    RecordResult,
    build_command,
    parse_env,
    parse_result,
    quote_arg,
)

WAIT_S = 5.0  # bound on every wait in these tests; never asserted

ENV = {
    "agi_network": "yes",
    "agi_network_script": "/record?lang=fr&x=1",
    "agi_request": "agi://127.0.0.1/record?lang=fr&x=1",
    "agi_channel": "PJSIP/sipp-000001f6",
    "agi_language": "fr",
    "agi_uniqueid": "1732550000.12",
    "agi_version": "22.0.0",
    "agi_callerid": "0612345678",
    "agi_calleridname": "unknown",
    "agi_context": "from-sipp",
    "agi_extension": "200",
    "agi_priority": "1",
    "agi_arg_1": "greeting",
    "agi_arg_2": "a b",
}

USAGE_520 = [
    "520-Invalid command syntax.  Proper usage follows:",
    " Usage: GET DATA <file to be streamed> [timeout] [maxdigits]",
    "520 End of proper usage.",
]


def header_block(env: dict[str, str]) -> bytes:
    return "".join(f"{key}: {value}\n" for key, value in env.items()).encode() + b"\n"


OPEN_CLIENTS: list[FakeAsterisk] = []


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while OPEN_CLIENTS:
        client = OPEN_CLIENTS.pop()
        client.close()
        with suppress(OSError):
            await client.writer.wait_closed()


class FakeAsterisk:
    """The Asterisk side of one FastAGI connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, env: dict[str, str] | None = ENV) -> FakeAsterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if env is not None:
            writer.write(header_block(env))
        client = cls(reader, writer)
        OPEN_CLIENTS.append(client)
        return client

    async def send(self, *lines: str) -> None:
        self.writer.write("".join(f"{line}\n" for line in lines).encode())
        await self.writer.drain()

    async def expect(self, command: str, *replies: str) -> None:
        line = await asyncio.wait_for(self.reader.readline(), WAIT_S)
        assert line.decode() == command + "\n"
        await self.send(*replies)

    async def closed_by_server(self) -> bool:
        """True when the server closed the connection without sending anything more."""
        try:
            rest = await asyncio.wait_for(self.reader.read(), WAIT_S)
        except ConnectionResetError:
            return True
        return rest == b""

    def close(self) -> None:
        self.writer.close()


Body = Callable[[AGISession], Awaitable[Any]]


@asynccontextmanager
async def serve(body: Body, **options: Any) -> AsyncIterator[tuple[FastAGIServer, asyncio.Future[Any]]]:
    """A server routing "record" to ``body``; the future holds what the body returned or raised."""
    outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def handler(session: AGISession) -> None:
        try:
            result = await body(session)
        # Blind on purpose: the test reads every outcome, and a failing pytest.raises raises a BaseException.
        except (Exception, pytest.fail.Exception) as exc:  # noqa: BLE001
            outcome.set_exception(exc)
        else:
            outcome.set_result(result)

    async with FastAGIServer({"record": handler}, host="127.0.0.1", port=0, **options) as server:
        yield server, outcome


@contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Turn a frozen event loop into a KeyboardInterrupt instead of a hung test run.

    asyncio's runner turns a first SIGINT into cancelling the test (useless when the loop is frozen) and only
    a second one into KeyboardInterrupt, hence two interrupts.
    """
    done = threading.Event()

    def guard() -> None:
        if done.wait(seconds):
            return
        for _ in range(2):
            _thread.interrupt_main()
            if done.wait(1.0):
                return

    thread = threading.Thread(target=guard, name="loop-watchdog", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not predicate():  # noqa: ASYNC110 -- polls a counter or captured logs, with a deadline
            await asyncio.sleep(0.01)


def events(logs: list[dict[str, Any]]) -> list[str]:
    return [entry["event"] for entry in logs]


# --- pure functions ----------------------------------------------------------------------------


def test_parse_result_forms() -> None:
    assert parse_result("200 result=0") == parse_result("200 result=0 ")
    assert parse_result("200 result=1 (camp42)").data == "camp42"
    assert parse_result("200 result=1 (a (b) c)").data == "a (b) c"
    record = parse_result("200 result=0 (timeout) endpos=53520")
    assert (record.result, record.data, record.extras) == ("0", "timeout", {"endpos": "53520"})
    assert parse_result("200 result= (timeout)").result == ""
    assert parse_result("200 result=-1 endpos=0").endpos() == 0
    with pytest.raises(AGIProtocolError):
        parse_result("200 nothing")


def test_parse_env_rejects_garbage() -> None:
    assert parse_env(header_block(ENV)) == ENV
    assert parse_env(b"hello world\n\n") is None
    assert parse_env(b"GET / HTTP/1.1\nHost: x\n\n") is None
    assert parse_env(b"\n\n") is None


def test_quoting_examples() -> None:
    assert quote_arg("beep") == "beep"
    assert quote_arg(4000) == "4000"
    assert quote_arg("") == '""'
    assert quote_arg('say "hi" \\ now') == '"say \\"hi\\" \\\\ now"'
    assert build_command("GET DATA", ["beep", 4000, 2]) == b"GET DATA beep 4000 2\n"
    with pytest.raises(ValueError, match="line break"):
        quote_arg("two\nlines")
    with pytest.raises(ValueError, match="too long"):
        build_command("VERBOSE", ["x" * 9000])


def asterisk_parse_args(line: str) -> list[str]:
    """Python transcription of parse_args() in Asterisk 22 res/res_agi.c."""
    args: list[str] = []
    current: list[str] | None = None
    quoted = escaped = False
    for char in line:
        if char == '"' and not escaped:
            quoted = not quoted
            if quoted and current is None:
                current = []
                args.append("")
            continue
        if char in " \t" and not quoted and not escaped:
            if current is not None:
                args[-1] = "".join(current)
            current = None
            continue
        if char == "\\" and not escaped:
            escaped = True
            continue
        if current is None:
            current = []
            args.append("")
        current.append(char)
        escaped = False
    if current is not None:
        args[-1] = "".join(current)
    return args


@given(
    st.lists(st.text(st.characters(blacklist_characters="\r\n\0", codec="utf-8"), max_size=40), max_size=20)
)
def test_quoting_round_trips_through_asterisk_parser(args: list[str]) -> None:
    line = build_command("SET VARIABLE", args).decode().rstrip("\n")
    assert asterisk_parse_args(line) == ["SET", "VARIABLE", *args]


# --- sessions over TCP ---------------------------------------------------------------------------


async def test_happy_path_transcript() -> None:
    async def body(s: AGISession) -> dict[str, Any]:
        seen: dict[str, Any] = {"script": s.script, "query": s.query, "args": s.args}
        seen |= {"channel": s.channel, "caller": s.caller_id}
        await s.answer()
        await s.verbose("code ok")
        seen["code"] = await s.get_data("beep", 4000, 2)
        seen["late"] = await s.get_data("beep", 4000, 6)
        seen["none"] = await s.get_data("beep", 4000, 6)
        seen["rec"] = await s.record_file(
            "/var/spool/asterisk/recording/agi-1", "wav", "#", 7000, silence_s=3
        )
        seen["stop"] = await s.record_file(
            "/var/spool/asterisk/recording/agi-2", "wav", "#", 300000, beep=False, silence_s=5
        )
        seen["full"] = await s.record_file("/var/spool/asterisk/recording/agi-3", "wav", "#", 0)
        seen["early#"] = await s.record_file("/var/spool/asterisk/recording/agi-4", "wav", "#", 7000)
        seen["digit"] = await s.wait_for_digit(500)
        seen["play"] = await s.stream_file("hello-world")
        seen["var"] = await s.get_variable("CAMPAIGN")
        seen["unset"] = await s.get_variable("NOPE")
        await s.set_variable("REF", "trente deux")
        seen["say"] = await s.say_digits("32", "#")
        seen["exec"] = await s.exec("Playback", ["beep", "noanswer"])
        await s.hangup()
        return seen

    async with serve(body) as (server, outcome):
        ast = await FakeAsterisk.connect(server.port)
        await ast.expect("ANSWER", "200 result=0")
        await ast.expect('VERBOSE "code ok" 1', "200 result=1")
        await ast.expect("GET DATA beep 4000 2", "200 result=*9")
        await ast.expect("GET DATA beep 4000 6", "200 result=12 (timeout)")
        await ast.expect("GET DATA beep 4000 6", "200 result= (timeout)")
        await ast.expect(
            "RECORD FILE /var/spool/asterisk/recording/agi-1 wav # 7000 0 BEEP s=3",
            "100 result=0 Trying...",
            "200 result=0 (timeout) endpos=53520",
        )
        await ast.expect(
            "RECORD FILE /var/spool/asterisk/recording/agi-2 wav # 300000 0 s=5",
            "200 result=4000 (timeout) endpos=8000",
        )
        await ast.expect(
            "RECORD FILE /var/spool/asterisk/recording/agi-3 wav # 0 0 BEEP",
            "200 result=0 (timeout) endpos=0",
        )
        await ast.expect(
            "RECORD FILE /var/spool/asterisk/recording/agi-4 wav # 7000 0 BEEP",
            "200 result=35 (randomerror) endpos=0",
        )
        await ast.expect("WAIT FOR DIGIT 500", "200 result=0")
        await ast.expect('STREAM FILE hello-world ""', "200 result=0 endpos=11234")
        await ast.expect("GET VARIABLE CAMPAIGN", "200 result=1 (camp42)")
        await ast.expect("GET VARIABLE NOPE", "200 result=0")
        await ast.expect('SET VARIABLE REF "trente deux"', "200 result=1")
        await ast.expect("SAY DIGITS 32 #", "200 result=35")
        await ast.expect("EXEC Playback beep,noanswer", "200 result=0")
        await ast.expect("HANGUP", "200 result=1")
        seen = await asyncio.wait_for(outcome, WAIT_S)
        assert await ast.closed_by_server()
    assert seen == {
        "script": "record",
        "query": {"lang": "fr", "x": "1"},
        "args": ["greeting", "a b"],
        "channel": "PJSIP/sipp-000001f6",
        "caller": "0612345678",
        "code": GetDataResult("*9", timed_out=False),
        "late": GetDataResult("12", timed_out=True),
        "none": GetDataResult("", timed_out=True),
        "rec": RecordResult("", 53520, "silence"),
        "stop": RecordResult("", 8000, "silence"),
        "full": RecordResult("", 0, "timeout"),
        "early#": RecordResult("#", 0, "dtmf"),
        "digit": "",
        "play": ("", 11234),
        "var": "camp42",
        "unset": None,
        "say": "#",
        "exec": 0,
    }


async def test_record_dtmf_and_failures() -> None:
    async def body(s: AGISession) -> list[Any]:
        got: list[Any] = [
            await s.record_file("/var/spool/asterisk/recording/m", "wav", "#", 300000, silence_s=5)
        ]
        with pytest.raises(AGICommandFailed) as failed:
            await s.record_file("/nope/m", "wav", "#", 300000)
        got.append(failed.value.reply)
        with pytest.raises(AGIHangup) as hangup:
            await s.record_file("/var/spool/asterisk/recording/m", "wav", "#", 300000)
        got.append(hangup.value.reply)
        return got

    async with serve(body) as (server, outcome):
        ast = await FakeAsterisk.connect(server.port)
        await ast.expect(
            "RECORD FILE /var/spool/asterisk/recording/m wav # 300000 0 BEEP s=5",
            "200 result=35 (dtmf) endpos=80000",
        )
        await ast.expect("RECORD FILE /nope/m wav # 300000 0 BEEP", "200 result=-1 (writefile)")
        await ast.expect(
            "RECORD FILE /var/spool/asterisk/recording/m wav # 300000 0 BEEP",
            "200 result=-1 (hangup) endpos=12000",
        )
        dtmf, failed, hangup = await asyncio.wait_for(outcome, WAIT_S)
    assert dtmf == RecordResult("#", 80000, "dtmf")
    assert failed.data == "writefile"
    assert hangup.endpos() == 12000


async def test_hangup_line_before_the_reply_then_511() -> None:
    """Caller hangs up while the handler is busy: HANGUP is queued, the next command gets 511."""

    async def body(s: AGISession) -> tuple[bool, bool]:
        await s.answer()
        with pytest.raises(AGIDeadChannel):
            await s.stream_file("prompt")
        with pytest.raises(AGIHangup, match="hung up or connection closed"):
            await s.verbose("never sent")
        return s.hung_up, True

    async with serve(body) as (server, outcome):
        ast = await FakeAsterisk.connect(server.port)
        await ast.expect("ANSWER", "200 result=0", "HANGUP")
        await ast.expect(
            'STREAM FILE prompt ""', "511 Command Not Permitted on a dead channel or intercept routine"
        )
        assert await asyncio.wait_for(outcome, WAIT_S) == (True, True)
        assert await ast.closed_by_server()  # VERBOSE was never sent


async def test_511_alone_marks_the_session_dead() -> None:
    async def body(s: AGISession) -> bool:
        with pytest.raises(AGIDeadChannel):
            await s.get_data("code", 4000, 4)
        with pytest.raises(AGIHangup, match="hung up or connection closed"):
            await s.answer()
        return s.hung_up

    async with serve(body) as (server, outcome):
        ast = await FakeAsterisk.connect(server.port)
        await ast.expect(
            "GET DATA code 4000 4", "511 Command Not Permitted on a dead channel or intercept routine"
        )
        assert await asyncio.wait_for(outcome, WAIT_S) is True
        assert await ast.closed_by_server()  # ANSWER was never sent


async def test_hangup_line_before_a_200_reply_still_raises() -> None:
    async def body(s: AGISession) -> Any:
        with pytest.raises(AGIHangup) as caught:
            await s.verbose("dead channels still log")
        return caught.value.reply

    async with serve(body) as (server, outcome):
        ast = await FakeAsterisk.connect(server.port)
        await ast.expect('VERBOSE "dead channels still log" 1', "HANGUP", "200 result=1")
        reply = await asyncio.wait_for(outcome, WAIT_S)
    assert reply.result == "1"


async def test_reply_minus_one_then_hangup_line() -> None:
    """Hang-up during GET DATA: Asterisk answers result=-1, then sends HANGUP."""

    async def body(s: AGISession) -> bool:
        with pytest.raises(AGIHangup):
            await s.get_data("code", 5000, 8)
        with pytest.raises(AGIHangup):
            await s.wait_for_digit(1000)  # reads the queued HANGUP, then the 511
        return s.hung_up

    async with serve(body) as (server, outcome):
        ast = await FakeAsterisk.connect(server.port)
        await ast.expect("GET DATA code 5000 8", "200 result=-1", "HANGUP")
        await ast.expect(
            "WAIT FOR DIGIT 1000", "511 Command Not Permitted on a dead channel or intercept routine"
        )
        assert await asyncio.wait_for(outcome, WAIT_S) is True


async def test_minus_one_means_hangup_for_media_commands() -> None:
    async def body(s: AGISession) -> int:
        raised = 0
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: s.stream_file("x"),
            lambda: s.wait_for_digit(10),
            lambda: s.say_digits("1"),
            s.answer,
        ]
        for call in calls:
            with pytest.raises(AGIHangup):
                await call()
            raised += 1
        return raised

    async with serve(body) as (server, outcome):
        ast = await FakeAsterisk.connect(server.port)
        await ast.expect('STREAM FILE x ""', "200 result=-1 endpos=0")
        await ast.expect("WAIT FOR DIGIT 10", "200 result=-1")
        await ast.expect('SAY DIGITS 1 ""', "200 result=-1")
        await ast.expect("ANSWER", "200 result=-1")
        assert await asyncio.wait_for(outcome, WAIT_S) == 4


async def test_510_and_multiline_520_keep_the_stream_in_step() -> None:
    async def body(s: AGISession) -> tuple[str, str]:
        with pytest.raises(AGIInvalidCommand):
            await s.command("FROB")
        with pytest.raises(AGIUsageError) as usage:
            await s.command("GET DATA")
        with pytest.raises(AGIUsageError):
            await s.command("SAY DIGITS")
        return str(usage.value), (await s.command("NOOP")).result

    async with serve(body) as (server, outcome):
        ast = await FakeAsterisk.connect(server.port)
        await ast.expect("FROB", "510 Invalid or unknown command")
        await ast.expect("GET DATA", *USAGE_520)
        await ast.expect("SAY DIGITS", "520 Invalid command syntax.  Proper usage not available.")
        await ast.expect("NOOP", "200 result=0")
        usage, noop = await asyncio.wait_for(outcome, WAIT_S)
    assert "Usage: GET DATA" in usage
    assert noop == "0"


async def test_a_cancelled_command_closes_the_connection() -> None:
    """A reply can't be un-asked for: after a cancelled command the stream would be out of step."""

    async def body(s: AGISession) -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(s.get_data("code", 4000, 4), 0.01)
        with pytest.raises(AGIHangup, match="connection closed"):
            await s.answer()

    async with serve(body) as (server, outcome):
        ast = await FakeAsterisk.connect(server.port)
        await ast.expect("GET DATA code 4000 4")  # answered too late
        await asyncio.wait_for(outcome, WAIT_S)
        assert await ast.closed_by_server()


async def test_eof_mid_command() -> None:
    async def body(s: AGISession) -> bool:
        with pytest.raises(AGIHangup, match="closed"):
            await s.record_file("/var/spool/asterisk/recording/m", "wav", "#", 60000)
        return s.hung_up

    async with serve(body) as (server, outcome):
        ast = await FakeAsterisk.connect(server.port)
        await ast.expect(
            "RECORD FILE /var/spool/asterisk/recording/m wav # 60000 0 BEEP", "100 result=0 Trying..."
        )
        ast.close()
        assert await asyncio.wait_for(outcome, WAIT_S) is True
        await until(lambda: server.active_sessions == 0)


async def test_command_timeout_and_garbage_reply_close_the_connection() -> None:
    async def body(s: AGISession) -> None:
        with pytest.raises(AGITimeout):
            await s.command("WAIT FOR DIGIT", 100, timeout_s=0.05)
        with pytest.raises(AGIHangup):
            await s.answer()

    async with serve(body) as (server, outcome):
        ast = await FakeAsterisk.connect(server.port)
        await ast.expect("WAIT FOR DIGIT 100")  # never answered
        await asyncio.wait_for(outcome, WAIT_S)
        assert await ast.closed_by_server()

    async def garbage(s: AGISession) -> None:
        with pytest.raises(AGIProtocolError):
            await s.answer()

    async with serve(garbage) as (server, outcome):
        ast = await FakeAsterisk.connect(server.port)
        await ast.expect("ANSWER", "OK then")
        await asyncio.wait_for(outcome, WAIT_S)
        assert await ast.closed_by_server()


async def test_early_disconnect_does_not_stall_other_sessions_or_the_loop() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def body(s: AGISession) -> GetDataResult:
        await s.answer()
        return await s.get_data("code", 4000, 4)

    with watchdog(60), structlog.testing.capture_logs() as logs:
        ticking = asyncio.create_task(ticker())
        async with serve(body) as (server, outcome):
            good = await FakeAsterisk.connect(server.port)
            await good.expect("ANSWER", "200 result=0")
            await good.expect("GET DATA code 4000 4")  # pending while the bad client comes and goes
            bad = await FakeAsterisk.connect(server.port, env=None)
            await bad.send("agi_network: yes", "agi_network_script: record")
            bad.close()
            await until(lambda: "fastagi.disconnected_mid_headers" in events(logs))
            ticks_at_drop = ticks
            await until(lambda: ticks >= ticks_at_drop + 5)  # the loop kept running after the drop
            await good.send("200 result=1234")
            assert await asyncio.wait_for(outcome, WAIT_S) == GetDataResult("1234", timed_out=False)
            await until(lambda: server.active_sessions == 0)
        ticking.cancel()
    assert ticks > ticks_at_drop


@pytest.mark.parametrize(
    ("payload", "header_timeout_s", "event"),
    [
        (b"agi_network: yes\n", 0.05, "fastagi.header_timeout"),
        (b"agi_x: " + b"a" * (70 * 1024) + b"\n", WAIT_S, "fastagi.headers_too_large"),
        (b"hello world\n\n", WAIT_S, "fastagi.malformed_headers"),
    ],
)
async def test_bad_header_blocks_are_dropped(payload: bytes, header_timeout_s: float, event: str) -> None:
    async def body(s: AGISession) -> None:
        raise AssertionError("no handler may run")

    with structlog.testing.capture_logs() as logs:
        async with serve(body, header_timeout_s=header_timeout_s) as (server, outcome):
            ast = await FakeAsterisk.connect(server.port, env=None)
            ast.writer.write(payload)
            assert await ast.closed_by_server()
            await until(lambda: server.active_sessions == 0)
            assert not outcome.done()
    assert event in events(logs)


async def test_unknown_route_gets_hangup() -> None:
    async def body(s: AGISession) -> None:
        raise AssertionError("wrong route")

    with structlog.testing.capture_logs() as logs:
        async with serve(body) as (server, outcome):
            ast = await FakeAsterisk.connect(server.port, ENV | {"agi_network_script": "records/x"})
            await ast.expect("HANGUP", "200 result=1")
            assert await ast.closed_by_server()
            assert not outcome.done()
    assert "fastagi.unknown_script" in events(logs)


async def test_handler_exception_is_logged_and_server_keeps_serving() -> None:
    calls = 0

    async def handler(session: AGISession) -> None:
        nonlocal calls
        calls += 1
        await session.answer()
        if calls == 1:
            raise RuntimeError("bug in the IVR")

    with structlog.testing.capture_logs() as logs:
        async with FastAGIServer({"record": handler}, port=0) as server:
            for _ in range(2):
                ast = await FakeAsterisk.connect(server.port)
                await ast.expect("ANSWER", "200 result=0")
                assert await ast.closed_by_server()
    assert calls == 2
    assert events(logs).count("fastagi.handler_failed") == 1
    assert events(logs).count("fastagi.session_ended") == 1


async def test_close_cancels_a_running_session() -> None:
    cancelled = asyncio.Event()

    async def handler(session: AGISession) -> None:
        try:
            await session.get_data("code", 4000, 4)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    server = FastAGIServer({"record": handler}, port=0)
    await server.start()
    ast = await FakeAsterisk.connect(server.port)
    await ast.expect("GET DATA code 4000 4")  # never answered
    assert server.active_sessions == 1
    await asyncio.wait_for(server.close(), WAIT_S)
    assert cancelled.is_set()
    assert server.active_sessions == 0
    assert await ast.closed_by_server()
    with pytest.raises(OSError):
        await FakeAsterisk.connect(int(ast.writer.get_extra_info("peername")[1]))


async def test_close_with_grace_lets_the_session_finish() -> None:
    async def body(s: AGISession) -> str:
        return (await s.get_data("code", 4000, 4)).digits

    async with serve(body) as (server, outcome):
        ast = await FakeAsterisk.connect(server.port)
        await ast.expect("GET DATA code 4000 4")
        closing = asyncio.create_task(server.close(grace_s=WAIT_S))
        await asyncio.sleep(0)
        await ast.send("200 result=42")
        await asyncio.wait_for(closing, WAIT_S)
        assert outcome.result() == "42"


@pytest.mark.parametrize(
    "script",
    [
        "record",  # no secret at all: any local process forging agi_callerid
        "record?secret=",
        "record?secret=s3cret-nearly",  # a near miss
        "record?x=s3cret-value",  # the secret under another name
        "record/s3cret-value",  # in the path: another route, refused as well
    ],
)
async def test_a_request_without_the_secret_gets_hangup_and_reaches_no_handler(script: str) -> None:
    async def body(s: AGISession) -> None:
        raise AssertionError("no handler may run without the secret")

    with structlog.testing.capture_logs() as logs:
        async with serve(body, secret="s3cret-value") as (server, outcome):
            ast = await FakeAsterisk.connect(server.port, ENV | {"agi_network_script": script})
            await ast.expect("HANGUP", "200 result=1")
            assert await ast.closed_by_server()
            assert not outcome.done()
    refused = [e for e in logs if e["event"] == "fastagi.refused_without_secret"]
    assert len(refused) == 1
    assert "s3cret" not in repr(logs)  # neither the secret nor a near miss reaches the log


async def test_the_request_carrying_the_secret_reaches_its_handler() -> None:
    async def body(s: AGISession) -> str:
        return s.script

    async with serve(body, secret="s3cret-value") as (server, outcome):
        await FakeAsterisk.connect(server.port, ENV | {"agi_network_script": "/record?secret=s3cret-value"})
        assert await asyncio.wait_for(outcome, WAIT_S) == "record"
