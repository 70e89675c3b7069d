"""Where an instance lives, its name, mode and logs."""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass
from pathlib import Path

from engine.settings.fields import (
    SettingsError,
    absolute_path,
    boolean,
    log_format_name,
    port,
    positive_int,
    setting,
    text,
)


@dataclass(frozen=True)
class HostSettings:
    """Where an instance lives, its name, mode and logs."""

    # --- where things live -----------------------------------------------------------------------
    state_dir: Path = setting(
        "VOCALCAST_STATE_DIR",
        absolute_path,
        "/var/lib/vocalcast",
        "State of this instance: PostgreSQL cluster, Asterisk config and spool, secrets, logs.",
    )
    cache_dir: Path = setting(
        "VOCALCAST_CACHE_DIR",
        absolute_path,
        "/var/cache/vocalcast",
        "Cache shared by instances: the Asterisk root, keyed by its inputs.",
    )
    media_dir_override: str = setting(
        "VOCALCAST_MEDIA_DIR", text, "", "Converted messages and originals (default: <state dir>/media)."
    )
    debian_mirror: str = setting(
        "VOCALCAST_DEBIAN_MIRROR",
        text,
        "",
        "Debian mirror for the Asterisk root (default: the host's apt source).",
    )
    asterisk_uid: int = setting(
        "VOCALCAST_ASTERISK_UID",
        positive_int,
        "64101",
        "uid/gid of the asterisk user inside the root; must be unused on the host.",
    )

    # --- identity --------------------------------------------------------------------------------
    node: str = setting(
        "VOCALCAST_NODE",
        text,
        "",
        "Name of this engine process; its Stasis app is vocalcast-<node> (default: host name).",
    )
    demo: bool = setting(
        "VOCALCAST_DEMO",
        boolean,
        "0",
        "Demo mode: a demo trunk to a local SIPp phone that answers every call.",
    )

    # --- demo ------------------------------------------------------------------------------------
    demo_account: str = setting(
        "VOCALCAST_DEMO_ACCOUNT",
        text,
        "demo@vocalcast.local",
        "E-mail of the demo account `make up` creates.",
    )
    demo_sip_port: int = setting(
        "VOCALCAST_DEMO_SIP_PORT", port, "15070", "Port of the demo SIPp phone (127.0.0.1)."
    )

    # --- logs ------------------------------------------------------------------------------------
    log_level: str = setting("VOCALCAST_LOG_LEVEL", text, "info", "debug, info, warning or error.")
    log_format: str = setting(
        "VOCALCAST_LOG_FORMAT", log_format_name, "auto", "auto (JSON off a TTY), json, console."
    )
    log_keep_days: int = setting(
        "VOCALCAST_LOG_KEEP_DAYS",
        positive_int,
        "14",
        "Days of logs kept: the engine rotates the instance's logs daily (logrotate), compressed.",
    )

    @property
    def node_name(self) -> str:
        return self.node or _default_node()

    @property
    def app_name(self) -> str:
        """Stasis app of this engine process: the last websocket to register a name takes it over."""
        return f"vocalcast-{self.node_name}"

    @property
    def media_dir(self) -> Path:
        return Path(self.media_dir_override) if self.media_dir_override else self.state_dir / "media"

    @property
    def instance_id(self) -> str:
        """Short stable name of this instance inside the shared Asterisk root."""
        return "vc-" + hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:10]

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"

    def _check_host(self) -> None:
        if self.log_level not in {"debug", "info", "warning", "error"}:
            raise SettingsError("VOCALCAST_LOG_LEVEL: expected debug, info, warning or error")
        node = self.node_name
        if not node.replace("-", "").isalnum():
            raise SettingsError(f"VOCALCAST_NODE: only letters, digits and '-' allowed, got {node!r}")


def _default_node() -> str:
    name = socket.gethostname().split(".")[0].lower()
    return "".join(c if c.isalnum() or c == "-" else "-" for c in name) or "node"
