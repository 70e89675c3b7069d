"""An overlong request line to http.php gets its code 100, not the HTTP parser's 400 (issue 17): the line
is told by the start aiohttp keeps of it, from its C parser (the target) or its Python one (the line)."""

from __future__ import annotations

from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from engine.web.runner import HeadersTooLarge, is_header_overflow, is_http_php_line


def test_only_an_overlong_line_to_http_php_is_told_apart() -> None:
    for kept in (
        bytearray(b"/http.php?email=a%40b.fr&numero=0612..."),  # C parser: the target, a bytearray
        b"GET /http.php?email=a%40b.fr&numero=0612...",  # Python parser: the request line
        b"POST /http.php HTTP/1.1",
        b"/http.php...",
    ):
        assert is_http_php_line(LineTooLong(kept, 73728)), kept
    for kept in (
        b"/http.phpx?a=b...",
        b"GET /connexion?suite=xxx...",
        b"/api/v1/sends?x...",
        b"X-Long: aaa...",
    ):
        assert not is_http_php_line(LineTooLong(kept, 73728)), kept
    assert not is_http_php_line(BadHttpMessage("/http.php?x"))
    assert not is_http_php_line(None)


def test_a_header_overflow_is_told_from_an_overlong_request_line() -> None:
    # A field too long once the request line has ended within its limit: the headers' fault.
    assert is_header_overflow(LineTooLong(b"X-Long: /http.php?xxx...", 8190), 40, 73728)
    # The request line itself: no end yet, or an end past its limit.
    assert not is_header_overflow(LineTooLong(b"/http.php?x...", 73728), None, 73728)
    assert not is_header_overflow(LineTooLong(b"/http.php?x...", 73728), 80_000, 73728)
    assert is_header_overflow(BadHttpMessage("Too many headers received"), 30, 73728)
    assert is_header_overflow(HeadersTooLarge("Header block over 65536 bytes"), 30, 73728)
    assert not is_header_overflow(BadHttpMessage("Invalid header"), 30, 73728)
    assert not is_header_overflow(None, 30, 73728)


def test_an_absolute_target_to_http_php_is_told_too() -> None:
    assert is_http_php_line(LineTooLong(b"GET http://example.fr/http.php?x...", 73728))
    assert not is_http_php_line(LineTooLong(b"GET http://example.fr/connexion?x...", 73728))
