"""What our trunks really answered, at the SIP level: Asterisk mirrors every SIP message it sends and
receives to us over HEP (res_hep_pjsip, HEP version 3 over UDP on loopback). Our INVITEs carry the attempt
id in an X-VC-Attempt header (engine.telephony.calls), which ties their Call-ID, and so every response,
to the attempt.

ARI tells how a call ended (a cause, the final SIP code) but not what a trunk's response said nor whether
the trunk answered at all: the pause a carrier asks for (``Retry-After`` on a 503 or a 429) and a trunk
that never answered our INVITE (a dead carrier whose calls would otherwise end as "no answer") are read
here. Observations are kept for a few minutes, then forgotten.
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

import structlog

log = structlog.get_logger(__name__)

_MAGIC: Final = b"HEP3"
_CHUNK_AUTH: Final = 14
_CHUNK_PAYLOAD: Final = 15
_STATUS_LINE: Final = re.compile(rb"^SIP/2\.0 (\d{3})")
_REQUEST_LINE: Final = re.compile(rb"^([A-Z]+) ")
_CSEQ: Final = re.compile(rb"^cseq\s*:\s*\d+\s+([A-Z]+)", re.MULTILINE | re.IGNORECASE)
_RETRY_AFTER: Final = re.compile(rb"^retry-after\s*:\s*(\d{1,7})", re.MULTILINE | re.IGNORECASE)
_CALL_ID: Final = re.compile(rb"^(?:call-id|i)\s*:\s*(\S+)", re.MULTILINE | re.IGNORECASE)
_ATTEMPT: Final = re.compile(rb"^x-vc-attempt\s*:\s*([0-9a-f-]{36})\s*$", re.MULTILINE | re.IGNORECASE)
ATTEMPT_HEADER: Final = "X-VC-Attempt"
KEEP_S: Final = 600.0  # an observation outlives its call by this long at most
MAX_KEPT: Final = 100_000


@dataclass
class Observation:
    """What happened on the wire for one channel's INVITE transaction."""

    invites: int = 0  # INVITEs sent (retransmissions included)
    responses: list[int] = field(default_factory=list)  # status codes received for our INVITE
    retry_after_s: float | None = None
    first_seen: float = field(default_factory=time.monotonic)

    @property
    def answered_at_all(self) -> bool:
        """Did the far end send anything back to our INVITE (even a 100 Trying)?"""
        return bool(self.responses)

    @property
    def final_code(self) -> int | None:
        finals = [code for code in self.responses if code >= 200]
        return finals[-1] if finals else None


def parse_hep3(packet: bytes) -> dict[int, bytes] | None:
    """The chunks of a HEP3 packet by type (vendor 0), or None when it is not one."""
    if len(packet) < 6 or packet[:4] != _MAGIC:
        return None
    total = struct.unpack("!H", packet[4:6])[0]
    if total > len(packet):
        return None
    chunks: dict[int, bytes] = {}
    i = 6
    while i + 6 <= total:
        vendor, kind, length = struct.unpack("!HHH", packet[i : i + 6])
        if length < 6 or i + length > total:
            return None
        if vendor == 0:
            chunks[kind] = packet[i + 6 : i + length]
        i += length
    return chunks


class SipWatch(asyncio.DatagramProtocol):
    """The HEP receiver: one observation per INVITE dialog (Call-ID), found by its attempt id."""

    def __init__(self, *, password: str = "") -> None:
        self._password = password.encode()
        self._seen: OrderedDict[str, Observation] = OrderedDict()  # by Call-ID
        self._call_of: dict[str, str] = {}  # attempt id -> Call-ID
        self.packets = 0
        self.refused = 0

    def observation(self, attempt_id: str) -> Observation | None:
        call_id = self._call_of.get(attempt_id)
        return self._seen.get(call_id) if call_id is not None else None

    def forget(self, attempt_id: str) -> None:
        call_id = self._call_of.pop(attempt_id, None)
        if call_id is not None:
            self._seen.pop(call_id, None)

    # --- asyncio.DatagramProtocol ----------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        chunks = parse_hep3(data)
        if chunks is None or (self._password and chunks.get(_CHUNK_AUTH, b"") != self._password):
            self.refused += 1
            return
        self.packets += 1
        payload = chunks.get(_CHUNK_PAYLOAD)
        if payload:
            self.feed(payload)

    def feed(self, sip: bytes) -> None:
        """One SIP message (only INVITE transactions matter here)."""
        head = sip[:4096]
        cseq = _CSEQ.search(head)
        call_id = _CALL_ID.search(head)
        if cseq is None or cseq.group(1) != b"INVITE" or call_id is None:
            return
        dialog = call_id.group(1).decode("ascii", "replace")
        status = _STATUS_LINE.match(head)
        if status is None:
            request = _REQUEST_LINE.match(head)
            if request is not None and request.group(1) == b"INVITE":
                attempt = _ATTEMPT.search(head)
                if attempt is not None:
                    self._call_of[attempt.group(1).decode("ascii")] = dialog
                self._observe(dialog).invites += 1
            return
        observation = self._observe(dialog)
        code = int(status.group(1))
        observation.responses.append(code)
        if code in {429, 500, 503}:
            retry_after = _RETRY_AFTER.search(head)
            if retry_after is not None:
                observation.retry_after_s = float(retry_after.group(1))

    def _observe(self, channel_id: str) -> Observation:
        found = self._seen.get(channel_id)
        if found is None:
            found = self._seen[channel_id] = Observation()
            self._trim()
        return found

    def _trim(self) -> None:
        horizon = time.monotonic() - KEEP_S
        while self._seen:
            oldest = next(iter(self._seen.values()))
            if oldest.first_seen >= horizon and len(self._seen) <= MAX_KEPT:
                break
            self._seen.popitem(last=False)
        if len(self._call_of) > 2 * MAX_KEPT:
            self._call_of = {a: c for a, c in self._call_of.items() if c in self._seen}
