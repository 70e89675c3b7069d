"""The engine's HTTP server: aiohttp's, except for a request head too large to parse (issue 17).

aiohttp refuses a request line over ``max_line_size``, a header field over ``max_field_size`` (8190 bytes)
or more than ``max_headers`` (128) fields with a 400 before any route runs; its C parser has no limit on the
header block as a whole (128 fields of 8 KiB pass), so the handler adds one: ``MAX_HEADER_BYTES``.
http.php's contract is HTTP 200 and a code whatever arrives: a request to it over any of these limits gets
its own code 100 (too large) like a query over 64 KiB that did fit. Any other route keeps the parser's 400
for an overlong request line and gets 431 (Request Header Fields Too Large, RFC 6585) for its headers: the
client (or the proxy in front) learns which part to shorten. Either way nothing is routed and the
connection is closed: the rest of the bad request is never parsed as a next one (no smuggling).

An error is raised where the parser stands, possibly deep in the headers: the handler keeps the first
``HEAD_KEPT`` bytes of the request being parsed (memory stays bounded) to tell its target. It knows where a
request starts when the previous one is complete (head parsed and body read) as a new chunk arrives: the
exact start for requests sent one after another on a kept-alive connection. Requests pipelined into one
chunk share the first one's start, and aiohttp answers the error alone, for the first of them (the
requests parsed in that chunk are dropped): the client reads it as the answer to that first request.
"""

from __future__ import annotations

import re
from typing import Final

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import RequestHandler, _ErrInfo
from aiohttp.web_request import BaseRequest

from engine.web.httpphp import TOO_LARGE

# The start of the request line (Python parser, or the head kept here) or of the target (C parser's
# LineTooLong); an absolute-form target (``GET http://host/http.php``) is routed by its path too.
_HTTP_PHP_LINE: Final = re.compile(
    rb"^(?:[A-Za-z]+ +)?(?:[A-Za-z][A-Za-z0-9+.-]*://[^/?# ]*)?/http\.php(?:[?# \r\n]|\.\.\.|$)"
)
HEAD_KEPT: Final = 256
# The header block after the request line, all fields together (a browser's cookies stay far below).
MAX_HEADER_BYTES: Final = 64 * 1024
_TOO_MANY_HEADERS: Final = "Too many headers received"  # aiohttp's BadHttpMessage, both parsers


class HeadersTooLarge(BadHttpMessage):
    """The header block passed ``MAX_HEADER_BYTES``, or a field aiohttp's parser let through its limit."""


def is_http_php_line(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a request line too long whose target is /http.php."""
    if not isinstance(exc, LineTooLong) or not exc.args:
        return False
    line = exc.args[0]  # bytes, or a bytearray (the C parser's buffer)
    if isinstance(line, str):
        line = line.encode("latin-1", "replace")
    return isinstance(line, bytes | bytearray) and _HTTP_PHP_LINE.match(line) is not None


def is_header_overflow(exc: BaseException | None, first_line: int | None, max_line_size: int) -> bool:
    """Whether ``exc`` refuses the header block as too large (a field, their number or their total).

    ``first_line`` is the length of the request line (None while its end has not arrived): a LineTooLong
    is the request line's own when that line is longer than ``max_line_size`` or has no end yet."""
    if isinstance(exc, HeadersTooLarge):
        return True
    if isinstance(exc, LineTooLong):
        return first_line is not None and first_line <= max_line_size
    return isinstance(exc, BadHttpMessage) and exc.message == _TOO_MANY_HEADERS


class _Handler(RequestHandler):
    # The request being parsed: its first bytes, its request line's length, its head's size so far.
    _head: bytes = b""
    _first_line: int | None = None
    _head_size = 0
    _in_head = False  # bytes since the request's start are all head (no request came out of them yet)
    _last_payload: StreamReader | None = None  # the body of the last request out of the parser
    _refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:  # the head was refused here: nothing after it is parsed
            return
        if self._force_close or self._close or self._upgraded or self._payload_parser is not None:
            super().data_received(data)
            return
        if not data:  # aiohttp re-parsing what it buffered (pipelined requests): nothing new arrived
            self._after_parse(self._request_count, data)
            return
        if not self._in_head and (self._last_payload is None or self._last_payload.is_eof()):
            # The previous request is complete: this chunk starts the next one.
            self._head, self._first_line, self._head_size, self._in_head = b"", None, 0, True
        if len(self._head) < HEAD_KEPT:
            self._head += bytes(data[: HEAD_KEPT - len(self._head)])
        if self._first_line is None:
            end = data.find(b"\n")
            self._first_line = None if end < 0 else self._head_size + end
        self._head_size += len(data)
        self._after_parse(self._request_count, data)

    def _after_parse(self, count: int, data: bytes) -> None:
        """Parse ``data``; ``count`` requests had come out before it."""
        super().data_received(data)
        if self._request_count != count:  # requests (or an error) came out: their heads are complete
            self._in_head = False
            self._last_payload = self._messages[-1][1] if self._messages else EMPTY_PAYLOAD
            self._check_blocks(self._request_count - count)
        elif (
            self._in_head
            and self._first_line is not None
            and self._head_size - self._first_line > MAX_HEADER_BYTES
        ):
            self._refuse(len(self._messages))

    def _check_blocks(self, count: int) -> None:
        """Refuse the first of the last ``count`` requests parsed whose header block is too large, or one
        of its fields (aiohttp's pure-Python parser misses a field over its limit split across reads)."""
        first = len(self._messages) - count
        for index in range(max(first, 0), len(self._messages)):
            message = self._messages[index][0]
            if isinstance(message, RawRequestMessage):
                sizes = [len(name) + len(value) for name, value in message.raw_headers]
                if sum(sizes) + 4 * len(sizes) > MAX_HEADER_BYTES:
                    self._refuse(index, f"Header block over {MAX_HEADER_BYTES} bytes")
                    return
                if max(sizes, default=0) > self.max_field_size:
                    self._refuse(index, f"Header field over {self.max_field_size} bytes")
                    return

    def _refuse(self, index: int, why: str = f"Header block over {MAX_HEADER_BYTES} bytes") -> None:
        """Answer the request at ``index`` of the queue (or the next one) as aiohttp answers a parse error:
        those after it are dropped, and nothing more is read."""
        exc = HeadersTooLarge(why)
        self._refused = True
        while len(self._messages) > index:
            self._messages.pop()
        self._request_count += 1
        self._messages.append((_ErrInfo(status=400, exc=exc, message=exc.message), EMPTY_PAYLOAD))
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _to_http_php(self) -> bool:
        return _HTTP_PHP_LINE.match(self._head) is not None

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status == 400 and request.writer.output_size == 0:
            if is_header_overflow(exc, self._first_line, self.max_line_size):
                if self._to_http_php():
                    return _too_large()
                self.log_debug("Request headers too large from %s: %s", request.remote, exc)
                response = web.Response(status=431, text="431: Request Header Fields Too Large")
                response.force_close()
                return response
            if is_http_php_line(exc):
                return _too_large()
        return super().handle_error(request, status, exc, message)


def _too_large() -> web.Response:
    response = web.Response(
        text=TOO_LARGE,
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )
    response.force_close()  # the rest of the request is still on the socket: never parsed as a next one
    return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class HttpRunner(web.AppRunner):
    """web.AppRunner whose connections answer an oversized http.php request with code 100."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # same layout, one method more specific: aiohttp builds the Server
        return server
