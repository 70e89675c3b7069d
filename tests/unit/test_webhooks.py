"""Webhook rules: the signature, the backoff schedule, what each answer means, which addresses a delivery
may reach (IPv4-mapped IPv6 and names resolving to private addresses included) and what URL may be set."""

from __future__ import annotations

import dataclasses
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from engine.domain.webhooks import (
    Backoff,
    Verdict,
    check_events,
    refusal_reason,
    retry_after_s,
    signature,
    verdict,
    verify,
)
from engine.errors import InvalidInput
from engine.services.webhooks import Webhooks
from engine.services.webhooks.guard import AddressRefused, GuardedConnector
from engine.services.webhooks.urls import check_url
from engine.settings import Settings

# --- signature --------------------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_timestamp_dot_body_in_hex() -> None:
    # Computed apart: hmac.new(b"whsec_test", b'1700000000.{"a":1}', sha256).hexdigest()
    expected = "38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
    assert signature("whsec_test", 1700000000, b'{"a":1}') == expected


def test_receiver_check_refuses_tampering_other_secrets_and_old_timestamps() -> None:
    body = b'{"id":"x"}'
    sig = signature("s1", 1000, body)
    assert verify("s1", 1000, body, sig, at=1000 + 299)
    assert not verify("s1", 1000, body + b" ", sig, at=1000)
    assert not verify("s2", 1000, body, sig, at=1000)
    assert not verify("s1", 1001, body, sig, at=1001)  # the timestamp is signed too
    assert not verify("s1", 1000, body, sig, at=1000 + 301)  # a replay older than 5 minutes


# --- answers and backoff ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, Verdict.delivered),
        (204, Verdict.delivered),
        (None, Verdict.retry),  # timeout, connection refused or reset
        (500, Verdict.retry),
        (503, Verdict.retry),
        (408, Verdict.retry),
        (429, Verdict.retry),
        (400, Verdict.failed),
        (401, Verdict.failed),
        (404, Verdict.failed),
        (301, Verdict.failed),  # redirects are not followed
        (410, Verdict.gone),
    ],
)
def test_verdict_of_each_answer(status: int | None, expected: Verdict) -> None:
    assert verdict(status) is expected


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    backoff = Backoff(base_s=5, max_s=3600, window_s=86400)
    assert [backoff.delay_s(n) for n in range(1, 12)] == [
        5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600,
    ]  # fmt: skip
    assert backoff.delay_s(500) == 3600


def test_backoff_retries_for_the_window_then_gives_up() -> None:
    backoff = Backoff(base_s=5, max_s=3600, window_s=86400)
    elapsed, tries, waits = 0.0, 0, []
    while True:
        tries += 1
        wait = backoff.next_try_s(tries, elapsed)
        if wait is None:
            break
        waits.append(wait)
        elapsed += wait
    assert elapsed == 86400  # the last try is at the window's end, none after it
    # 5 s doubling to 2560 s (10 waits, 5115 s), 22 hourly waits, one last wait to the window's end.
    assert waits[:10] == [5 * 2**n for n in range(10)]
    assert waits[10:32] == [3600] * 22
    assert waits[32:] == [86400 - 5115 - 22 * 3600]


def test_retry_after_is_honoured_within_the_window() -> None:
    backoff = Backoff(base_s=5, max_s=3600, window_s=86400)
    assert backoff.next_try_s(1, 0, retry_after_s=120) == 120  # longer than the backoff: honoured
    assert backoff.next_try_s(3, 0, retry_after_s=1) == 20  # shorter: the backoff stands
    assert backoff.next_try_s(1, 86000, retry_after_s=1000) is None  # more than is left: given up
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert retry_after_s("120") == 120
    assert retry_after_s("Sat, 05 Dec 2026 12:01:30 GMT", at=now) == 90
    assert retry_after_s((now - timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S GMT"), at=now) == 0
    assert retry_after_s("soon", at=now) is None
    assert retry_after_s(None) is None


# --- addresses --------------------------------------------------------------------------------------------

REFUSED = {
    "127.0.0.1": "loopback address",
    "127.8.9.10": "loopback address",
    "::1": "loopback address",
    "10.1.2.3": "private address",
    "172.16.0.1": "private address",
    "192.168.1.1": "private address",
    "100.64.0.1": "private address",  # shared address space (carrier-grade NAT)
    "fc00::1": "private address",
    "169.254.1.1": "link-local address",
    "fe80::1": "link-local address",
    "169.254.169.254": "cloud metadata address",
    "fd00:ec2::254": "cloud metadata address",
    "::ffff:127.0.0.1": "loopback address",  # IPv4-mapped IPv6
    "::ffff:10.0.0.1": "private address",
    "::ffff:169.254.169.254": "cloud metadata address",
    "::ffff:7f00:1": "loopback address",  # the same mapped address, written in hex
    "::127.0.0.1": "loopback address",  # IPv4-compatible (deprecated)
    "64:ff9b::10.0.0.1": "private address",  # NAT64
    "0.0.0.0": "unspecified address",
    "::": "unspecified address",
    "224.0.0.1": "multicast address",
    "ff02::1": "multicast address",
    "240.0.0.1": "reserved address",
}


@pytest.mark.parametrize(("address", "reason"), sorted(REFUSED.items()))
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    assert refusal_reason(address, allow_private=False) == reason


@pytest.mark.parametrize("address", ["8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal_reason(address, allow_private=False) is None


def test_the_operator_setting_allows_private_never_metadata_multicast_or_reserved() -> None:
    for address in ("127.0.0.1", "::ffff:127.0.0.1", "10.1.2.3", "192.168.1.1", "fe80::1", "169.254.1.1"):
        assert refusal_reason(address, allow_private=True) is None, address
    for address in ("169.254.169.254", "::ffff:169.254.169.254", "224.0.0.1", "240.0.0.1", "0.0.0.0"):
        assert refusal_reason(address, allow_private=True) is not None, address


class FakeResolver(AbstractResolver):
    """Answers every name with the given addresses (no DNS, nothing leaves the machine)."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


async def _post(url: str, resolver: Any, *, allow_private: bool = False) -> None:
    connector = GuardedConnector(allow_private=allow_private, resolver=resolver)
    async with aiohttp.ClientSession(connector=connector) as http, http.post(url, data=b"{}"):
        pass


@pytest.mark.parametrize(
    "addresses",
    [["10.0.0.5"], ["169.254.169.254"], ["::ffff:127.0.0.1"], ["203.0.113.7", "192.168.0.9"]],
)
async def test_a_name_resolving_to_a_private_address_is_refused_at_connect_time(addresses: list[str]) -> None:
    resolver = FakeResolver(addresses)
    with pytest.raises(AddressRefused) as refused:
        await _post("https://hooks.example.test/in", resolver)
    assert resolver.asked == ["hooks.example.test"]  # looked up at connect time, then refused
    assert refused.value.host == "hooks.example.test"


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/x", "http://[::ffff:127.0.0.1]:9/", "http://[::1]:9/", "http://169.254.169.254/"],
)
async def test_an_address_literal_is_checked_too(url: str) -> None:
    resolver = FakeResolver([])
    with pytest.raises(AddressRefused):
        await _post(url, resolver)
    assert resolver.asked == []  # never reached DNS


async def test_metadata_is_refused_even_when_private_addresses_are_allowed() -> None:
    with pytest.raises(AddressRefused):
        await _post("http://meta.example.test/", FakeResolver(["169.254.169.254"]), allow_private=True)


# --- what may be set --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://a.example.fr/",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "http://",
        "https://user:pw@a.example.fr/",
        "https://a.example.fr:0/",
        "https://a.example.fr:99999/",
        "https://a.example.fr/" + "x" * 2000,
        "https://a.example.fr/ space",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        check_url(url)


def test_good_urls_are_kept() -> None:
    assert check_url(" https://a.example.fr/in?key=1 ") == "https://a.example.fr/in?key=1"
    assert check_url("http://a.example.fr:8080/") == "http://a.example.fr:8080/"


def test_setting_a_private_literal_is_refused_unless_allowed() -> None:
    settings = Settings.from_env({"VOCALCAST_STATE_DIR": "/nonexistent"})
    hooks = Webhooks(None, settings)  # type: ignore[arg-type] - _check reads no database
    for url in (
        "http://10.0.0.1/",
        "http://[::ffff:192.168.0.1]/",
        "http://localhost:8080/",
        "http://0.0.0.0/",
    ):
        with pytest.raises(InvalidInput) as refused:
            hooks._check(url)
        assert refused.value.code == "webhook_address"
    assert hooks._check("https://hooks.example.fr/") == "https://hooks.example.fr/"
    allowed = Webhooks(None, dataclasses.replace(settings, webhook_allow_private=True))  # type: ignore[arg-type]
    assert allowed._check("http://127.0.0.1:8080/in") == "http://127.0.0.1:8080/in"


def test_events_are_known_and_ordered() -> None:
    assert check_events(["recipient.final", "send.started", "send.started"]) == (
        "send.started",
        "recipient.final",
    )
    with pytest.raises(InvalidInput):
        check_events(["send.exploded"])


def test_completion_summary_of_a_cancelled_send() -> None:
    from uuid import uuid4

    from engine.domain.retries import RetryPolicy
    from engine.domain.sends import Progress, Send, SendStatus
    from engine.services.webhooks.completion import summary

    at = datetime(2026, 7, 14, 8, 30, tzinfo=UTC)
    send = Send(
        id=uuid4(), account_id=uuid4(), message_id=uuid4(), greeting_message_id=None, transfer_number=None,
        sender_e164=None, comment="Relance", origin="api", status=SendStatus.cancelled, start_at=at,
        deferred=False, retry=RetryPolicy(extra_attempts=0, interval_s=60), voicemail_drop=False, demo=False,
        recipients_total=5, credits_held=0, credits_used=1, code=None, created_at=at, started_at=at,
        ended_at=at,
    )  # fmt: skip
    progress = Progress(
        total=5, done=2, calling=0, pending=0, cancelled=3, attempts=2, credits_used=1,
        outcomes={"busy": 1, "listened": 1},
    )  # fmt: skip
    subject, text = summary(send, progress, "https://vocal.example.fr/historique/x")
    assert subject == "vocalcast : envoi « Relance » annulé"
    assert "Votre envoi « Relance » du 14/07/2026 à 10:30 est annulé." in text  # Paris time
    assert "  Occupé : 1\n  Message écouté : 1\n  Non appelés (envoi annulé) : 3\n" in text
    assert "Crédits utilisés : 1" in text and text.rstrip().endswith("https://vocal.example.fr/historique/x")
