"""The SIP watch (engine/telephony/sipwatch.py): HEP3 packets as res_hep_pjsip sends them, and what a
trunk answered to each attempt's INVITE."""

from __future__ import annotations

import struct

from engine.telephony.sipwatch import SipWatch, parse_hep3

ATTEMPT = "5f0c8a2e-6c1d-4f53-9d0e-2a1b3c4d5e6f"


def hep(payload: bytes, *, password: bytes = b"s3cret", extra: bytes = b"") -> bytes:
    def chunk(kind: int, value: bytes) -> bytes:
        return struct.pack("!HHH", 0, kind, 6 + len(value)) + value

    body = chunk(14, password) + chunk(15, payload) + extra
    return b"HEP3" + struct.pack("!H", 6 + len(body)) + body


def invite(call_id: str = "abc@host") -> bytes:
    return (
        f"INVITE sip:0612345678@192.0.2.10 SIP/2.0\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
        f"X-VC-Attempt: {ATTEMPT}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def response(code: int, call_id: str = "abc@host", retry_after: int | None = None) -> bytes:
    retry = f"Retry-After: {retry_after} (maintenance)\r\n" if retry_after is not None else ""
    return (
        f"SIP/2.0 {code} Whatever\r\ncall-id: {call_id}\r\ncseq: 1 INVITE\r\n{retry}Content-Length: 0\r\n\r\n"
    ).encode()


def test_a_refusal_with_retry_after_is_tied_to_its_attempt() -> None:
    watch = SipWatch(password="s3cret")
    for packet in (invite(), response(100), response(503, retry_after=20)):
        watch.datagram_received(hep(packet), ("127.0.0.1", 5000))
    seen = watch.observation(ATTEMPT)
    assert seen is not None
    assert (seen.invites, seen.responses, seen.retry_after_s, seen.final_code) == (1, [100, 503], 20.0, 503)
    assert seen.answered_at_all
    watch.forget(ATTEMPT)
    assert watch.observation(ATTEMPT) is None


def test_a_trunk_that_never_answered_is_seen_as_such() -> None:
    watch = SipWatch()
    watch.feed(invite("x@y"))
    watch.feed(invite("x@y"))  # a retransmission
    seen = watch.observation(ATTEMPT)
    assert seen is not None and seen.invites == 2 and not seen.answered_at_all


def test_foreign_or_broken_packets_are_refused() -> None:
    watch = SipWatch(password="s3cret")
    watch.datagram_received(hep(invite(), password=b"wrong"), ("127.0.0.1", 5000))
    watch.datagram_received(b"HEP3\x00\x10garbage-garbage", ("127.0.0.1", 5000))
    watch.datagram_received(b"not hep at all", ("127.0.0.1", 5000))
    assert watch.refused == 3 and watch.observation(ATTEMPT) is None
    # A chunk longer than the packet, or shorter than its own header.
    assert parse_hep3(b"HEP3\x00\x0c" + struct.pack("!HHH", 0, 15, 100)) is None
    assert parse_hep3(b"HEP3\x00\x0c" + struct.pack("!HHH", 0, 15, 2)) is None


def test_other_transactions_do_not_count() -> None:
    watch = SipWatch()
    watch.feed(invite())
    watch.feed(b"SIP/2.0 200 OK\r\nCall-ID: abc@host\r\nCSeq: 2 BYE\r\n\r\n")
    seen = watch.observation(ATTEMPT)
    assert seen is not None and seen.responses == []
