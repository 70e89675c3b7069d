"""The engine's HTTP server: aiohttp's, except for a request line too long to parse (issue 17).

aiohttp refuses a request line over ``max_line_size`` with a 400 before any route runs. http.php's
contract is HTTP 200 and a code whatever arrives: a GET to it with a query over that size gets its own
code 100 (too large) like a query over 64 KiB that did fit, and the connection is closed. Any other route
keeps aiohttp's 400. Only the line's first 100 bytes are kept by the parser: memory stays bounded.
"""

from __future__ import annotations

import re
from typing import Final

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from engine.web.httpphp import TOO_LARGE

# The start of the request line (Python parser) or of the target (C parser) as LineTooLong keeps it.
_HTTP_PHP_LINE: Final = re.compile(rb"^(?:[A-Za-z]+ +)?/http\.php(?:[?# ]|\.\.\.|$)")


def is_http_php_line(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a request line too long whose target is /http.php."""
    if not isinstance(exc, LineTooLong) or not exc.args:
        return False
    line = exc.args[0]  # bytes, or a bytearray (the C parser's buffer)
    if isinstance(line, str):
        line = line.encode("latin-1", "replace")
    return isinstance(line, bytes | bytearray) and _HTTP_PHP_LINE.match(line) is not None


class _Handler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status == 400 and is_http_php_line(exc) and request.writer.output_size == 0:
            response = web.Response(
                text=TOO_LARGE,
                content_type="text/plain",
                charset="utf-8",
                headers={"Cache-Control": "no-store"},
            )
            response.force_close()  # the rest of the line is still on the socket
            return response
        return super().handle_error(request, status, exc, message)


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class HttpRunner(web.AppRunner):
    """web.AppRunner whose connections answer an overlong http.php request line with code 100."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # same layout, one method more specific: aiohttp builds the Server
        return server
