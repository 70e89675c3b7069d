"""Several engines on one PostgreSQL (issue 19): heartbeats, takeover of a dead node, shared trunk limits."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from engine.settings.fields import (
    SettingsError,
    boolean,
    non_negative_float,
    non_negative_int,
    port,
    setting,
    text,
)

MEDIA_TRANSPORTS = ("files", "http")


def media_transport_name(raw: str) -> str:
    if raw not in MEDIA_TRANSPORTS:
        raise ValueError(f"expected one of {', '.join(MEDIA_TRANSPORTS)}, got {raw!r}")
    return raw


def media_servers_map(raw: str) -> dict[str, str]:
    """``name=http://host:port,...``: each media server's name and its ARI base URL."""
    pairs: dict[str, str] = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        name, sep, url = part.strip().partition("=")
        name, url = name.strip(), url.strip().rstrip("/")
        if not sep or not name.replace("-", "").isalnum():
            raise ValueError(f"expected name=http://host:port, got {part.strip()!r}")
        split = urlsplit(url)
        if split.scheme not in ("http", "https") or not split.hostname:
            raise ValueError(f"{name}: expected an http(s) URL, got {url!r}")
        pairs[name] = url
    return pairs


@dataclass(frozen=True)
class ClusterSettings:
    """Several engines on one PostgreSQL: heartbeats, takeover of a dead node, shared trunk limits."""

    # --- several engines on one PostgreSQL -------------------------------------------------------------
    node_heartbeat_s: float = setting(
        "VOCALCAST_NODE_HEARTBEAT_S",
        non_negative_float,
        "2",
        "How often each engine (node) writes its heartbeat into PostgreSQL and looks for dead nodes.",
    )
    node_dead_after_s: float = setting(
        "VOCALCAST_NODE_DEAD_AFTER_S",
        non_negative_float,
        "20",
        "A node silent for longer is declared dead by another, which fences it (raises its epoch) and "
        "takes its calls over; a node places no call once half of it has passed since its last heartbeat.",
    )
    cluster: bool = setting(
        "VOCALCAST_CLUSTER",
        boolean,
        "0",
        "Several engines share the trunks: each trunk's channels, calls per second and carrier pauses "
        "are taken from counters in PostgreSQL (off: each engine keeps them in its own memory).",
    )
    # Issue 19, fencing at the edge: the test of a node frozen between its fence check and its originate.
    test_freeze_originate: int = setting(
        "VOCALCAST_TEST_FREEZE_ORIGINATE",
        non_negative_int,
        "0",
        "Tests only: the engine stops itself (SIGSTOP) right before its N-th POST /channels, after every "
        "fence check (0: never).",
    )

    # --- media across hosts (issue 19) ------------------------------------------------------------------
    media_transport: str = setting(
        "VOCALCAST_MEDIA_TRANSPORT",
        media_transport_name,
        "files",
        "files: Asterisk plays messages from the media dir mounted into its root and the recording IVR "
        "reads its spool (one box). http: media servers fetch messages from the engine's media listener "
        "(signed URLs, cached by Asterisk) and the IVR fetches each recording through the ARI of the "
        "media server that recorded it: no shared filesystem.",
    )
    media_http_bind: str = setting(
        "VOCALCAST_MEDIA_HTTP_BIND",
        text,
        "127.0.0.1",
        "Bind address of the engine's media listener (http transport); never the public site.",
    )
    media_http_port: int = setting(
        "VOCALCAST_MEDIA_HTTP_PORT", port, "18090", "Port of the engine's media listener (http transport)."
    )
    media_url: str = setting(
        "VOCALCAST_MEDIA_URL",
        text,
        "",
        "Base URL media servers fetch messages from (default: http://127.0.0.1:<media port>).",
    )
    media_servers: str = setting(
        "VOCALCAST_MEDIA_SERVERS",
        text,
        "",
        "Media servers whose recordings the IVR fetches (http transport): name=ARI base URL, comma-"
        "separated; a name is a node name, which its dialplan puts in its AGI URL (default: this node's "
        "Asterisk on 127.0.0.1:<ARI port>).",
    )

    media_cache_keep_s: float = setting(
        "VOCALCAST_MEDIA_CACHE_KEEP_S",
        non_negative_float,
        "3600",
        "http transport: a message kept longer in this node's Asterisk media cache is removed from it "
        "(fetched again when next played): a deleted message's audio leaves the media servers within it.",
    )

    @property
    def media_server_urls(self) -> dict[str, str]:
        """VOCALCAST_MEDIA_SERVERS: each media server's name and its Asterisk HTTP base URL."""
        return media_servers_map(self.media_servers)

    @property
    def media_base_url(self) -> str:
        if self.media_url:
            return self.media_url.rstrip("/")
        return f"http://127.0.0.1:{self.media_http_port}"

    def _check_media(self) -> None:
        try:
            media_servers_map(self.media_servers)
        except ValueError as exc:
            raise SettingsError(f"VOCALCAST_MEDIA_SERVERS: {exc}") from exc
        if self.media_url:
            split = urlsplit(self.media_url)
            if split.scheme not in ("http", "https") or not split.hostname:
                raise SettingsError(f"VOCALCAST_MEDIA_URL: expected an http(s) URL, got {self.media_url!r}")

    # --- the Kamailio edge (issue 19) --------------------------------------------------------------------
    sip_edge: str = setting(
        "VOCALCAST_SIP_EDGE",
        text,
        "",
        "host:port of the Kamailio edge's internal socket (empty: none, the trunks are this Asterisk's own). "
        "Set: every trunk's calls leave this node's Asterisk toward Kamailio, which relays them to the "
        "trunk's carrier (credentials and limits there), and inbound calls come from Kamailio only.",
    )
