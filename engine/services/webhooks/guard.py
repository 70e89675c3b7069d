"""Where a webhook delivery may connect: an aiohttp connector that checks every address a host resolves
to, at connect time, and connects only to those (no second lookup a DNS rebinding could answer
differently); IP literals, IPv4-mapped IPv6 included, go through the same check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult

from engine.domain.webhooks import refusal_reason


class AddressRefused(Exception):
    """The endpoint's host is, or resolves to, an address deliveries may not reach."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(f"{host} -> {address}: {reason}")
        self.host = host
        self.address = address
        self.reason = reason


class GuardedConnector(aiohttp.TCPConnector):
    """A TCP connector whose every resolved address is checked before any connection: the addresses
    returned here are the only ones aiohttp connects to. No DNS cache: each delivery looks up again."""

    def __init__(self, *, allow_private: bool, **kwargs: Any) -> None:
        super().__init__(use_dns_cache=False, **kwargs)
        self.allow_private = allow_private

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Any] | None = None
    ) -> list[ResolveResult]:
        results = await super()._resolve_host(host, port, traces=traces)
        for result in results:
            reason = refusal_reason(result["host"], allow_private=self.allow_private)
            if reason is not None:
                # One bad address refuses the host: happy eyeballs could otherwise pick it.
                raise AddressRefused(host, result["host"], reason)
        return results
