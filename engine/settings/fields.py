"""What every settings module is made of: the value parsers and the field factory (a dataclass field
carrying its environment variable, parser, default and README line)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import field
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def boolean(raw: str) -> bool:
    low = raw.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean (1/0, true/false), got {raw!r}")


def port(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 65535:
        raise ValueError(f"port out of range: {value}")
    return value


def port_or_zero(raw: str) -> int:
    return 0 if int(raw) == 0 else port(raw)


def positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(f"expected an integer >= 0, got {raw!r}")
    return value


def non_negative_float(raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError(f"expected a non-negative number, got {value}")
    return value


def addresses(raw: str) -> tuple[str, ...]:
    """Comma-separated IP addresses, each checked and written in its canonical form."""
    return tuple(str(ipaddress.ip_address(part.strip())) for part in raw.split(",") if part.strip())


def absolute_path(raw: str) -> Path:
    path = Path(raw)
    if not path.is_absolute():
        raise ValueError(f"expected an absolute path, got {raw!r}")
    return path


def national_number(raw: str) -> str:
    if not (len(raw) == 10 and raw.isdigit() and raw[0] == "0" and raw[1] != "0"):
        raise ValueError(f"expected a 10-digit French national number like 0172360170, got {raw!r}")
    return raw


def text(raw: str) -> str:
    return raw


def log_format_name(raw: str) -> str:
    if raw not in {"auto", "json", "console"}:
        raise ValueError("expected auto, json or console")
    return raw


def setting(
    env: str,
    parse: Callable[[str], Any],
    default: str | None,
    doc: str,
    *,
    secret: bool = False,
) -> Any:
    """A settings field: its variable, parser, default (None: a secret, never defaulted) and README line."""
    return field(metadata={"env": env, "parse": parse, "default": default, "doc": doc, "secret": secret})
