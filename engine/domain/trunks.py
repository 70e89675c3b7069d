"""SIP trunks as data: what an operator declares, validated before it reaches PJSIP config."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from engine.errors import InvalidInput

AuthMode = Literal["ip", "digest", "register"]
NumberFormat = Literal["e164", "national", "international00", "digits"]
AUTH_MODES: tuple[AuthMode, ...] = ("ip", "digest", "register")
NUMBER_FORMATS: tuple[NumberFormat, ...] = ("e164", "national", "international00", "digits")
CODECS = ("alaw", "ulaw", "g722", "opus")
DEFAULT_CODECS = ("alaw", "ulaw")  # what French operators expect, A-law first

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9-]{1,63}$")
# Values end up inside PJSIP config lines: no separators, comments or line breaks.
_DEPOSIT_PREFIX = re.compile(r"^[0-9*#+]{1,16}$")
_DEPOSIT_HEADER = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}: ?[ -~]{1,128}$")
_CONFIG_SAFE = re.compile(r"^[A-Za-z0-9_.@+*#~!$%^&()=-]{1,128}$")


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

    @property
    def offers_deposit(self) -> bool:
        return bool(self.deposit_prefix or self.deposit_header)

    def deposit_header_pair(self) -> tuple[str, str] | None:
        if not self.deposit_header:
            return None
        name, _, value = self.deposit_header.partition(":")
        return name.strip(), value.strip()

    def validate(self) -> Trunk:
        """The trunk itself, or InvalidInput naming the first bad field."""
        if not _NAME.match(self.name):
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
            if value is not None and not _CONFIG_SAFE.match(value):
                raise InvalidInput(
                    "trunk_value", f"trunk {label} contains characters not allowed in SIP config"
                )
        if self.from_domain is not None and not _is_host(self.from_domain):
            raise InvalidInput("trunk_value", f"trunk from-domain {self.from_domain!r} is not a host name")
        if not self.codecs or any(c not in CODECS for c in self.codecs):
            raise InvalidInput("trunk_codecs", f"trunk codecs must be among {', '.join(CODECS)}")
        if self.number_format not in NUMBER_FORMATS:
            raise InvalidInput("trunk_format", f"number format must be one of {', '.join(NUMBER_FORMATS)}")
        if self.deposit_prefix is not None and not _DEPOSIT_PREFIX.match(self.deposit_prefix):
            raise InvalidInput("trunk_deposit", "deposit prefix: digits, *, # or + only (1 to 16)")
        if self.deposit_header is not None and not _DEPOSIT_HEADER.match(self.deposit_header):
            raise InvalidInput("trunk_deposit", "deposit header must look like 'X-Name: value'")
        if self.max_channels < 1 or self.max_cps <= 0:
            raise InvalidInput("trunk_limits", "trunk limits must be positive")
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
        return bool(_HOSTNAME.match(value))
    return True
