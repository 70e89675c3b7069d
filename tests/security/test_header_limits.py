"""Oversized request heads over raw sockets (issue 17): a header field over aiohttp's 8 KiB, more than its
128 fields, or a header block over MAX_HEADER_BYTES. http.php answers HTTP 200 and its code 100 (too
large) as for any oversized request; another route answers 431. Nothing is routed, the connection closes,
and a request hidden behind the bad one on the socket is never parsed (no smuggling). On the real engine.

On the code before this test, every case here got aiohttp's plain 400 (and the header block had no limit
but 128 fields of 8 KiB)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from urllib.parse import urlencode

import pytest

from engine.app import Engine
from engine.store import Database
from engine.web.runner import MAX_HEADER_BYTES
from tests.integration.dialing import Customer
from tests.security.conftest import PASSWORD

pytestmark = pytest.mark.integration

# Each way a head is too large: one field over 8190 bytes, 129 fields, 20 fields of 4 KiB (80 KiB in all).
OVERSIZED = {
    "one field": [("X-Long", "x" * 9_000)],
    "too many": [(f"X-F{i}", "1") for i in range(129)],
    "block": [(f"X-B{i}", "b" * 4_096) for i in range(MAX_HEADER_BYTES // 4_096 + 4)],
}


def head(method: str, target: str, fields: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in fields)]
    if method == "POST":
        lines += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Conn:
    """One raw TCP connection to the engine."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, engine: Engine) -> Conn:
        return cls(*await asyncio.open_connection("127.0.0.1", engine.http_port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        with contextlib.suppress(ConnectionError):  # the engine may close before reading it all
            await self.writer.drain()

    async def response(self) -> tuple[int, dict[str, str], str]:
        """The next response on the socket: status, headers (lower-case names), body."""
        async with asyncio.timeout(10):
            status_line = await self.reader.readuntil(b"\r\n")
            headers: dict[str, str] = {}
            while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
                name, _, val = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = val.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body.decode()

    async def closed(self) -> bool:
        """Whether the engine closed the connection with nothing more to say."""
        try:
            async with asyncio.timeout(10):
                return await self.reader.read() == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.writer.close()


def send_query(who: Customer) -> str:
    """A valid http.php send: if it were ever parsed and routed, a send row would appear."""
    return urlencode(
        {"email": who.account.email, "pass": PASSWORD, "numero": "0612345678", "ref": who.message.ref}
    )


async def test_an_oversized_head_gets_code_100_on_http_php_and_431_elsewhere(
    engine: Engine, client: Customer, db: Database
) -> None:
    smuggled = head("GET", f"/http.php?{send_query(client)}", [])
    for method, case in itertools.product(("GET", "POST"), OVERSIZED):
        body = send_query(client).encode() if method == "POST" else b""
        for target, expected in (("/http.php", (200, "100")), ("/connexion", (431, None))):
            where = (method, case, target)
            path = f"{target}?{send_query(client)}" if method == "GET" and target == "/http.php" else target
            conn = await Conn.open(engine)
            try:
                # The bad request, and a valid send right behind it on the same socket.
                await conn.send(head(method, path, OVERSIZED[case], body) + smuggled)
                status, headers, text = await conn.response()
                assert status == expected[0], (where, text)
                if expected[1] is not None:
                    assert text == expected[1], where
                    assert headers["content-type"] == "text/plain; charset=utf-8", where
                assert await conn.closed(), where
            finally:
                conn.close()
    await refused_as_soon_as_a_limit_is_passed(engine, client)
    # Neither the refused requests nor the ones behind them were ever routed.
    assert await db.fetchval("SELECT count(*) FROM sends") == 0


async def refused_as_soon_as_a_limit_is_passed(engine: Engine, client: Customer) -> None:
    smuggled = head("GET", f"/http.php?{send_query(client)}", [])
    for case in ("one field", "block"):
        for target, expected in (("/http.php", 200), ("/connexion", 431)):
            whole = head("POST", target, OVERSIZED[case]) + smuggled
            conn = await Conn.open(engine)
            try:
                # 4 KiB at a time, each its own read: refused before the head's end was sent.
                answer = asyncio.ensure_future(conn.response())
                sent = 0
                while sent < len(whole) and not answer.done():
                    await conn.send(whole[sent : sent + 4_096])
                    sent += 4_096
                    await asyncio.sleep(0.002)
                status, _, text = await answer
                assert status == expected, (case, target, text)
                assert target != "/http.php" or text == "100", case
                if case == "block":  # answered while the head was still arriving
                    assert sent < len(whole) - len(smuggled), target
                assert await conn.closed(), (case, target)
            finally:
                conn.close()


async def test_each_request_of_a_connection_is_judged_on_its_own_target_and_head(engine: Engine) -> None:
    too_long = OVERSIZED["one field"]
    # A first request to http.php, then an oversized one to a page: the page's answer (431), not 100.
    conn = await Conn.open(engine)
    try:
        await conn.send(head("GET", "/http.php", []))
        status, _, first = await conn.response()
        assert (status, first) == (200, "87")  # no e-mail: the connection is kept alive
        await conn.send(head("POST", "/connexion", too_long))
        assert (await conn.response())[0] == 431
        assert await conn.closed()
    finally:
        conn.close()
    # Requests pipelined in one write are each answered as before.
    conn = await Conn.open(engine)
    try:
        await conn.send(head("GET", "/http.php", []) * 3)
        assert [(await conn.response())[2] for _ in range(3)] == ["87"] * 3
    finally:
        conn.close()
    # And the other way round: a page, then an oversized http.php request gets its code 100.
    conn = await Conn.open(engine)
    try:
        await conn.send(head("GET", "/connexion", []))
        assert (await conn.response())[0] == 200
        await conn.send(head("GET", "/http.php?numero=0612345678", too_long))
        status, _, text = await conn.response()
        assert (status, text) == (200, "100")
        assert await conn.closed()
    finally:
        conn.close()
    # 100 fields, 48 KiB in all, none over 8 KiB: below every limit, http.php answers as usual.
    fields = [(f"X-F{i}", "y" * 480) for i in range(100)] + [("X-Big", "z" * 8_000)]
    for method in ("GET", "POST"):
        conn = await Conn.open(engine)
        try:
            await conn.send(head(method, "/http.php", fields))
            status, _, text = await conn.response()
            assert (status, text) == (200, "87"), method
        finally:
            conn.close()
