"""The one reader of the environment: every ``VOCALCAST_*`` setting, validated at start-up.

The settings are grouped by concept, one module each (host, telephony, carrier, database, web, mail,
webhooks, ivr); ``Settings`` is all of them at once. Secrets have no defaults. When a secret is not in
the environment, it is read from the state directory's ``secrets/`` folder, which ``vocalcast stack
up`` fills on first start (mode 0600).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from engine.settings.carrier import CarrierSettings
from engine.settings.cluster import ClusterSettings
from engine.settings.database import DatabaseSettings
from engine.settings.fields import SettingsError
from engine.settings.host import HostSettings
from engine.settings.ivr import IvrSettings
from engine.settings.limits import LimitSettings
from engine.settings.mail import MailSettings
from engine.settings.privacy import PrivacySettings
from engine.settings.telephony import TelephonySettings
from engine.settings.web import WebSettings
from engine.settings.webhooks import WebhookSettings

__all__ = ["INSTANCE_FILE", "PROJECT_ROOT", "Settings", "SettingsError", "instance_record", "markdown_table"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


# The README's table lists the concepts in this order: a dataclass puts the fields of its last base first.
@dataclass(frozen=True)
class Settings(
    ClusterSettings,
    IvrSettings,
    PrivacySettings,
    WebhookSettings,
    LimitSettings,
    MailSettings,
    WebSettings,
    DatabaseSettings,
    CarrierSettings,
    TelephonySettings,
    HostSettings,
):
    """Every setting of a vocalcast engine and of its local stack."""

    @property
    def rtp_end(self) -> int:
        if self.rtp_end_override:
            return int(self.rtp_end_override)
        # A transferred call holds two channels, and each RTP session takes an even/odd port pair; the
        # recording line has its own pairs (capped by ivr_max_calls), so a flood of it starves no send.
        return self.rtp_start + 4 * self.max_channels + 2 * self.ivr_max_calls - 1

    def _check_rtp(self) -> None:
        if self.rtp_end_override:
            try:
                end = int(self.rtp_end_override)
            except ValueError as exc:
                raise SettingsError(f"VOCALCAST_RTP_END: not an integer: {self.rtp_end_override!r}") from exc
            if end - self.rtp_start + 1 < 4 * self.max_channels:
                raise SettingsError(
                    f"VOCALCAST_RTP_END: range {self.rtp_start}-{end} is too small for "
                    f"VOCALCAST_MAX_CHANNELS={self.max_channels} (needs {4 * self.max_channels} ports)"
                )
        if self.rtp_end > 65535:
            raise SettingsError("VOCALCAST_RTP_START: the RTP range would end above port 65535")

    @property
    def pg_socket_dir(self) -> Path:
        return self.state_dir / "pg" / "run"

    @property
    def dsn(self) -> str:
        if self.database_url:
            return self.database_url
        password = quote(self.require("db_password"), safe="")
        return f"postgresql://vocalcast:{password}@127.0.0.1:{self.pg_port}/vocalcast"

    def require(self, name: str) -> str:
        """A secret's value, or a SettingsError naming its variable."""
        value = getattr(self, name)
        if not value:
            env = _FIELDS[name].metadata["env"]
            raise SettingsError(
                f"{env} is not set and {self.secrets_dir / env} does not exist: "
                "set it, or run `vocalcast stack up` once to generate it"
            )
        return str(value)

    def masked(self) -> dict[str, str]:
        """Settings as strings, secrets masked: safe for logs and `stack status`."""
        out: dict[str, str] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.metadata["env"]] = "***" if f.metadata["secret"] and value else str(value)
        return out

    @classmethod
    def from_env_with(cls, overrides: Mapping[str, str]) -> Settings:
        """The settings of this environment with ``overrides`` winning (a cluster node's own, issue 19)."""
        return cls.from_env({**os.environ, **overrides})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of the environment; a variable it does not set takes the value the instance's
        stack was started with (<state dir>/run/instance.env, written by `stack up`), then its default.
        So a command run from a plain shell sees the running stack's mode and ports, not the defaults."""
        env = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        state_dir = Path(env.get("VOCALCAST_STATE_DIR", "/var/lib/vocalcast"))
        env = {**_recorded(state_dir), **env}
        for f in dataclasses.fields(cls):
            meta = f.metadata
            raw = env.get(meta["env"])
            if raw is None and meta["secret"]:
                secret_file = state_dir / "secrets" / meta["env"]
                if secret_file.is_file():
                    raw = secret_file.read_text().strip()
            if raw is None:
                raw = meta["default"]
            if raw is None:
                values[f.name] = ""
                continue
            try:
                values[f.name] = meta["parse"](raw)
            except ValueError as exc:
                raise SettingsError(f"{meta['env']}: {exc}") from exc
        settings = cls(**values)
        settings._validate()
        return settings

    def _validate(self) -> None:
        for check in (
            self._check_host,
            self._check_rtp,
            self._check_carrier,
            self._check_webhooks,
            self._check_privacy,
            self._check_media,
        ):
            check()


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
INSTANCE_FILE = Path("run") / "instance.env"


def _recorded(state_dir: Path) -> dict[str, str]:
    """The non-secret settings the instance's stack runs with (empty when it never started)."""
    path = state_dir / INSTANCE_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    recorded = {}
    secret = {f.metadata["env"] for f in dataclasses.fields(Settings) if f.metadata["secret"]}
    for line in lines:
        name, sep, value = line.partition("=")
        if sep and name.startswith("VOCALCAST_") and name not in secret and name != "VOCALCAST_STATE_DIR":
            recorded[name] = value
    return recorded


def instance_record(settings: Settings) -> str:
    """What `stack up` writes to <state dir>/run/instance.env: every non-secret setting, one per line."""
    lines = []
    for f in dataclasses.fields(settings):
        meta = f.metadata
        if meta["secret"] or meta["env"] == "VOCALCAST_STATE_DIR":
            continue
        value = getattr(settings, f.name)
        if isinstance(value, bool):
            text = "1" if value else "0"
        elif isinstance(value, tuple):
            text = ",".join(value)
        else:
            text = str(value)
        if "\n" in text:
            raise SettingsError(f"{meta['env']}: a value may not hold a line break")
        lines.append(f"{meta['env']}={text}")
    return "\n".join(lines) + "\n"


def documented() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting: the README's configuration table."""
    rows = []
    for f in dataclasses.fields(Settings):
        meta = f.metadata
        default = (
            "(generated)" if meta["secret"] else (meta["default"] if meta["default"] != "" else "(empty)")
        )
        rows.append((meta["env"], default, meta["doc"]))
    return rows


def markdown_table() -> str:
    """The README's configuration table (a unit test keeps the README in step with this)."""
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    lines += [f"| `{env}` | `{default}` | {doc} |" for env, default, doc in documented()]
    return "\n".join(lines)
