"""Webhook rules without I/O: the event types, what an endpoint URL may be, the signature, which
addresses a delivery may connect to, and what each answer means (delivered, retried when, given up)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any, Final
from uuid import UUID

from engine.errors import InvalidInput

EVENT_TYPES: Final = (
    "send.started",
    "send.completed",
    "attempt.final",
    "recipient.final",
    "optout.added",
)
TEST_EVENT: Final = "webhook.test"
URL_MAX_LENGTH: Final = 2000  # the CHECK of sql/0017
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - a prefix that makes a leaked secret recognisable

# Headers of every delivery.
EVENT_ID_HEADER: Final = "X-Vocalcast-Event-Id"
TIMESTAMP_HEADER: Final = "X-Vocalcast-Timestamp"
SIGNATURE_HEADER: Final = "X-Vocalcast-Signature"

# Cloud metadata services: refused even when private addresses are allowed.
METADATA_ADDRESSES: Final = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """An account's endpoint as the customer sees it (never the secret)."""

    account_id: UUID
    url: str | None
    events: tuple[str, ...]
    disabled_at: datetime | None
    disabled_reason: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SendWebhook:
    """One send's own endpoint and events (replacing the account's for that send)."""

    send_id: UUID
    url: str
    events: tuple[str, ...]
    disabled_at: datetime | None
    disabled_reason: str | None


@dataclass(frozen=True, slots=True)
class Event:
    """One event to deliver: what happened, when, and the object's state then (as the outbox row holds
    it: the database row and what the API shows with it)."""

    id: UUID
    type: str
    send_id: UUID | None
    sequence: int
    occurred_at: datetime
    object: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event as logged: where it goes and how its tries went."""

    id: UUID
    type: str
    send_id: UUID | None
    sequence: int
    occurred_at: datetime
    url: str
    status: str
    tries: int
    next_at: datetime | None
    last_status: int | None
    last_error: str | None
    last_latency_ms: int | None
    delivered_at: datetime | None


# --- settings -------------------------------------------------------------------------------------------


def check_events(events: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The events wanted, each known, each once, in the documented order."""
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise InvalidInput(
            "webhook_events",
            f"unknown webhook events {unknown}",
            message_fr="Événements inconnus : "
            + ", ".join(unknown[:5])
            + f". Possibles : {', '.join(EVENT_TYPES)}.",
        )
    return tuple(e for e in EVENT_TYPES if e in events)


# --- signature ------------------------------------------------------------------------------------------


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 over ``f"{timestamp}.{body}"`` with the account's secret, in hex."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str, timestamp: int, body: bytes, given: str, *, at: float, tolerance_s: float = 300
) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent (replays refused)."""
    if abs(at - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), given)


# --- where a delivery may connect -------------------------------------------------------------------------

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _embedded_v4(address: Address) -> Address:
    """The IPv4 address an IPv6 one carries (::ffff:a.b.c.d mapped, ::a.b.c.d compatible, 64:ff9b::/96
    NAT64), else the address itself: a private IPv4 address is private in any of these forms."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        packed = address.packed
        if packed[:12] == bytes(12) and packed[12:] not in (bytes(4), b"\x00\x00\x00\x01"):
            return ipaddress.IPv4Address(packed[12:])
        if packed[:12] == bytes.fromhex("0064ff9b0000000000000000"):
            return ipaddress.IPv4Address(packed[12:])
    return address


def refusal_reason(raw: str, *, allow_private: bool) -> str | None:
    """Why a delivery may not connect to the address ``raw`` (None: it may). Always refused: unspecified,
    multicast, reserved, cloud metadata; refused unless ``allow_private``: loopback, private (RFC 1918,
    shared, unique local), link-local and every other non-global address."""
    try:
        address = _embedded_v4(ipaddress.ip_address(raw.split("%", 1)[0]))
    except ValueError:
        return "not an IP address"
    if address in METADATA_ADDRESSES:
        return "cloud metadata address"
    if address.is_unspecified:
        return "unspecified address"
    if address.is_multicast:
        return "multicast address"
    if address.is_loopback:  # before reserved: ::1 is in the reserved ::/8
        return None if allow_private else "loopback address"
    if address.is_link_local:
        return None if allow_private else "link-local address"
    if address.is_reserved:
        return "reserved address"
    if address.is_global:
        return None
    return None if allow_private else "private address"


# --- answers and retries ----------------------------------------------------------------------------------


class Verdict(Enum):
    delivered = "delivered"
    retry = "retry"
    failed = "failed"  # a 4xx (other than 408/429) or a redirect: the receiver refused it, no retry
    gone = "gone"  # 410: the endpoint is disabled


RETRIED_STATUSES: Final = frozenset({408, 429})


def verdict(status: int | None) -> Verdict:
    """What an answer means (None: no answer — timeout, connection refused or reset, address refused)."""
    if status is None or status >= 500 or status in RETRIED_STATUSES:
        return Verdict.retry
    if 200 <= status < 300:
        return Verdict.delivered
    if status == 410:
        return Verdict.gone
    return Verdict.failed


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: base, 2·base, 4·base... capped at ``max_s``, for ``window_s`` after the event
    was queued; a Retry-After longer than the next delay is honoured (within the window)."""

    base_s: float = 5.0
    max_s: float = 3600.0
    window_s: float = 86400.0

    def delay_s(self, tries: int, retry_after_s: float | None = None) -> float:
        """The wait after the ``tries``-th failed try (1-based)."""
        delay = min(self.base_s * 2.0 ** min(max(tries - 1, 0), 60), self.max_s)
        if retry_after_s is not None and retry_after_s > delay:
            delay = retry_after_s
        return delay

    def next_try_s(self, tries: int, elapsed_s: float, retry_after_s: float | None = None) -> float | None:
        """Seconds until the next try, or None when the window is over (the event is given up)."""
        delay = self.delay_s(tries, retry_after_s)
        if elapsed_s + delay > self.window_s:
            remaining = self.window_s - elapsed_s
            # One last try at the window's end, unless the receiver asked for more than is left.
            if remaining <= 0 or (retry_after_s is not None and retry_after_s > remaining):
                return None
            return remaining
        return delay


def retry_after_s(raw: str | None, *, at: datetime | None = None) -> float | None:
    """A Retry-After header's wait in seconds (delta-seconds or an HTTP date), None when absent or bad."""
    if raw is None:
        return None
    text = raw.strip()
    if text.isdigit():
        return float(text)
    if at is None:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - at).total_seconds())
