"""SIP trunks as data: what an operator declares, validated before it reaches PJSIP config."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from engine.domain.routing import route_prefixes
from engine.errors import InvalidInput

AuthMode = Literal["ip", "digest", "register"]
NumberFormat = Literal["e164", "national", "international00", "digits"]
AUTH_MODES: tuple[AuthMode, ...] = ("ip", "digest", "register")
NUMBER_FORMATS: tuple[NumberFormat, ...] = ("e164", "national", "international00", "digits")
# Only what Asterisk plays our files in without transcoding (.alaw, .ulaw beside each message); G.722 and
# Opus would need translators we neither load nor test.
CODECS = ("alaw", "ulaw")
DEFAULT_CODECS = ("alaw", "ulaw")  # what French operators expect, A-law first

# Values end up inside PJSIP config lines: no separators, comments or line breaks. Every pattern is matched
# against the whole value (fullmatch): `$` alone would let a value end with a newline.
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_HOSTNAME = re.compile(r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9-]{1,63}")
_DEPOSIT_PREFIX = re.compile(r"[0-9*#+]{1,16}")
_DEPOSIT_HEADER = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,63}: ?[ -~]{1,128}")
_CONFIG_SAFE = re.compile(r"[A-Za-z0-9_.@+*#~!$%^&()=-]{1,128}")
# A SIP URI for the outbound proxy: sip:host[:port][;lr]
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_PROXY = re.compile(r"sips?:[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?(;lr)?")


@dataclass(frozen=True)
class Trunk:
    name: str
    host: str
    port: int = 5060
    auth: AuthMode = "ip"
    username: str | None = None
    password: str | None = None
    from_user: str | None = None
    from_domain: str | None = None
    codecs: tuple[str, ...] = DEFAULT_CODECS  # offered in this order
    number_format: NumberFormat = "e164"
    pai_number: str | None = None
    max_channels: int = 30
    max_cps: float = 5.0
    priority: int = 100
    enabled: bool = True
    demo: bool = False
    # Direct voicemail deposit offered by the operator: a prefix before the number, and/or a header.
    deposit_prefix: str | None = None
    deposit_header: str | None = None
    qualify: bool = True  # OPTIONS pings tell its reachability (off for SBCs that ignore OPTIONS)
    failover_only: bool = False  # takes calls only while every higher-priority trunk is unhealthy
    routes: tuple[str, ...] = ()  # number types or E.164 prefixes it carries; () = every number
    identify: tuple[str, ...] = ()  # more addresses or CIDRs its inbound calls come from (host is one)
    outbound_proxy: str | None = None  # sip:host[:port][;lr]
    registration_line: bool = False  # register with `line`: inbound calls matched by our contact's line
    # The presented numbers (E.164) its carrier accepts for us in From (issue 18): a call presenting a
    # number goes only through trunks whose list holds it (engine/domain/routing.py).
    presented: tuple[str, ...] = ()

    @property
    def offers_deposit(self) -> bool:
        return bool(self.deposit_prefix or self.deposit_header)

    def deposit_header_pair(self) -> tuple[str, str] | None:
        if not self.deposit_header:
            return None
        name, _, value = self.deposit_header.partition(":")
        return name.strip(), value.strip()

    @property
    def prefixes(self) -> tuple[str, ...]:
        return route_prefixes(self.routes)

    def validate(self) -> Trunk:
        """The trunk itself, or InvalidInput naming the first bad field."""
        if not _NAME.fullmatch(self.name):
            raise InvalidInput(
                "trunk_name",
                f"trunk name {self.name!r}: lowercase letters, digits, - and _, "
                "starting with a letter, at most 32 characters",
            )
        if not _is_host(self.host):
            raise InvalidInput("trunk_host", f"trunk host {self.host!r} is not an IP address or host name")
        if not 1 <= self.port <= 65535:
            raise InvalidInput("trunk_port", f"trunk port {self.port} out of range")
        if self.auth not in AUTH_MODES:
            raise InvalidInput("trunk_auth", f"trunk auth must be one of {', '.join(AUTH_MODES)}")
        if self.auth != "ip" and not (self.username and self.password):
            raise InvalidInput("trunk_auth", f"trunk auth {self.auth!r} needs --username and --password")
        for label, value in (
            ("username", self.username),
            ("password", self.password),
            ("from-user", self.from_user),
            ("pai-number", self.pai_number),
        ):
            if value is not None and not _CONFIG_SAFE.fullmatch(value):
                raise InvalidInput(
                    "trunk_value", f"trunk {label} contains characters not allowed in SIP config"
                )
        if self.from_domain is not None and not _is_host(self.from_domain):
            raise InvalidInput("trunk_value", f"trunk from-domain {self.from_domain!r} is not a host name")
        if not self.codecs or any(c not in CODECS for c in self.codecs):
            raise InvalidInput("trunk_codecs", f"trunk codecs must be among {', '.join(CODECS)}")
        if self.number_format not in NUMBER_FORMATS:
            raise InvalidInput("trunk_format", f"number format must be one of {', '.join(NUMBER_FORMATS)}")
        if self.deposit_prefix is not None and not _DEPOSIT_PREFIX.fullmatch(self.deposit_prefix):
            raise InvalidInput("trunk_deposit", "deposit prefix: digits, *, # or + only (1 to 16)")
        if self.deposit_header is not None and not _DEPOSIT_HEADER.fullmatch(self.deposit_header):
            raise InvalidInput("trunk_deposit", "deposit header must look like 'X-Name: value'")
        if self.max_channels < 1 or self.max_cps <= 0:
            raise InvalidInput("trunk_limits", "trunk limits must be positive")
        self.prefixes  # noqa: B018 - raises InvalidInput for a bad route
        for address in self.identify:
            if not _is_network(address):
                raise InvalidInput(
                    "trunk_identify", f"trunk identify {address!r} is not an IP address, network or host name"
                )
        if self.outbound_proxy is not None and not _PROXY.fullmatch(self.outbound_proxy):
            raise InvalidInput(
                "trunk_proxy", f"trunk outbound proxy {self.outbound_proxy!r}: expected sip:host[:port][;lr]"
            )
        for number in self.presented:
            if not _E164.fullmatch(number):
                raise InvalidInput(
                    "trunk_presented", f"trunk presented number {number!r} is not in E.164 form"
                )
        if self.registration_line and self.auth != "register":
            raise InvalidInput("trunk_line", "--line applies to trunks we register to (--auth register)")
        return self

    def dial_string(self, wire_number: str) -> str:
        """The ARI endpoint to originate ``wire_number`` (already in this trunk's format) through it."""
        return f"PJSIP/{wire_number}@{self.name}"


def usable_trunks(trunks: Iterable[Trunk], *, demo: bool) -> list[Trunk]:
    """The trunks that may carry calls: enabled ones, and the demo trunk only in demo mode."""
    return [t for t in trunks if t.enabled and (demo or not t.demo)]


def _is_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return bool(_HOSTNAME.fullmatch(value))
    return True


def _is_network(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return _is_host(value)
    return True
