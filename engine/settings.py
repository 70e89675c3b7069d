"""The one reader of the environment: every ``VOCALCAST_*`` setting, validated at start-up.

Secrets have no defaults. When a secret is not in the environment, it is read from the state
directory's ``secrets/`` folder, which ``vocalcast stack up`` fills on first start (mode 0600).
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean (1/0, true/false), got {raw!r}")


def _port(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 65535:
        raise ValueError(f"port out of range: {value}")
    return value


def _port_or_zero(raw: str) -> int:
    return 0 if int(raw) == 0 else _port(raw)


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError(f"expected a positive integer, got {value}")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(f"expected an integer >= 0, got {raw!r}")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError(f"expected a non-negative number, got {value}")
    return value


def _addresses(raw: str) -> tuple[str, ...]:
    """Comma-separated IP addresses, each checked and written in its canonical form."""
    return tuple(str(ipaddress.ip_address(part.strip())) for part in raw.split(",") if part.strip())


def _path(raw: str) -> Path:
    path = Path(raw)
    if not path.is_absolute():
        raise ValueError(f"expected an absolute path, got {raw!r}")
    return path


def _national_number(raw: str) -> str:
    if not (len(raw) == 10 and raw.isdigit() and raw[0] == "0" and raw[1] != "0"):
        raise ValueError(f"expected a 10-digit French national number like 0172360170, got {raw!r}")
    return raw


def _str(raw: str) -> str:
    return raw


def _log_format(raw: str) -> str:
    if raw not in {"auto", "json", "console"}:
        raise ValueError("expected auto, json or console")
    return raw


def _default_node() -> str:
    name = socket.gethostname().split(".")[0].lower()
    return "".join(c if c.isalnum() or c == "-" else "-" for c in name) or "node"


def _setting(
    env: str,
    parse: Callable[[str], Any],
    default: str | None,
    doc: str,
    *,
    secret: bool = False,
) -> Any:
    return field(metadata={"env": env, "parse": parse, "default": default, "doc": doc, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """Every setting of a vocalcast engine and of its local stack."""

    # --- where things live ---------------------------------------------------------------
    state_dir: Path = _setting(
        "VOCALCAST_STATE_DIR",
        _path,
        "/var/lib/vocalcast",
        "State of this instance: PostgreSQL cluster, Asterisk config and spool, secrets, logs.",
    )
    cache_dir: Path = _setting(
        "VOCALCAST_CACHE_DIR",
        _path,
        "/var/cache/vocalcast",
        "Cache shared by instances: the Asterisk root, keyed by its inputs.",
    )
    media_dir_override: str = _setting(
        "VOCALCAST_MEDIA_DIR", _str, "", "Converted messages and originals (default: <state dir>/media)."
    )
    debian_mirror: str = _setting(
        "VOCALCAST_DEBIAN_MIRROR",
        _str,
        "",
        "Debian mirror for the Asterisk root (default: the host's apt source).",
    )
    asterisk_uid: int = _setting(
        "VOCALCAST_ASTERISK_UID",
        _positive_int,
        "64101",
        "uid/gid of the asterisk user inside the root; must be unused on the host.",
    )

    # --- identity ------------------------------------------------------------------------------
    node: str = _setting(
        "VOCALCAST_NODE",
        _str,
        "",
        "Name of this engine process; its Stasis app is vocalcast-<node> (default: host name).",
    )
    demo: bool = _setting(
        "VOCALCAST_DEMO", _bool, "0", "Demo mode: a demo trunk to a local SIPp phone that answers every call."
    )

    # --- engine HTTP -----------------------------------------------------------------------------
    http_host: str = _setting("VOCALCAST_HTTP_HOST", _str, "127.0.0.1", "Engine HTTP bind address.")
    http_port: int = _setting("VOCALCAST_HTTP_PORT", _port, "8080", "Engine HTTP port (UI, API, /healthz).")
    health_port: int = _setting(
        "VOCALCAST_HEALTH_PORT",
        _port_or_zero,
        "0",
        "When set, /healthz and /metrics are served only on 127.0.0.1:<this port>, not on the HTTP port.",
    )

    # --- Asterisk ----------------------------------------------------------------------------------
    ari_port: int = _setting("VOCALCAST_ARI_PORT", _port, "18088", "Asterisk HTTP/ARI port (127.0.0.1).")
    ari_user: str = _setting("VOCALCAST_ARI_USER", _str, "vocalcast", "ARI user name.")
    ari_password: str = _setting(
        "VOCALCAST_ARI_PASSWORD",
        _str,
        None,
        "ARI password (generated into the state dir on first stack up).",
        secret=True,
    )
    ari_pool_size: int = _setting(
        "VOCALCAST_ARI_POOL_SIZE", _positive_int, "50", "Concurrent HTTP connections to ARI."
    )
    ari_reconnect_max_s: float = _setting(
        "VOCALCAST_ARI_RECONNECT_MAX_S",
        _non_negative_float,
        "5",
        "Longest wait between two ARI websocket reconnect attempts.",
    )
    sip_bind: str = _setting("VOCALCAST_SIP_BIND", _str, "127.0.0.1", "PJSIP UDP transport bind address.")
    sip_port: int = _setting("VOCALCAST_SIP_PORT", _port, "5060", "PJSIP UDP transport port.")
    sip_external_address: str = _setting(
        "VOCALCAST_SIP_EXTERNAL_ADDRESS", _str, "", "Public signalling address behind NAT (empty: none)."
    )
    sip_external_media_address: str = _setting(
        "VOCALCAST_SIP_EXTERNAL_MEDIA_ADDRESS", _str, "", "Public media address behind NAT (empty: none)."
    )
    rtp_start: int = _setting("VOCALCAST_RTP_START", _port, "20000", "First RTP port.")
    rtp_end_override: str = _setting(
        "VOCALCAST_RTP_END",
        _str,
        "",
        "Last RTP port (default: twice the maximum channels and the recording line's calls, two ports each).",
    )
    agi_port: int = _setting("VOCALCAST_AGI_PORT", _port, "4573", "FastAGI server port (127.0.0.1).")
    max_channels: int = _setting(
        "VOCALCAST_MAX_CHANNELS", _positive_int, "200", "Engine-wide maximum of simultaneous calls."
    )
    max_cps: float = _setting(
        "VOCALCAST_MAX_CPS", _non_negative_float, "50", "Engine-wide maximum of new calls per second."
    )
    max_recipients: int = _setting(
        "VOCALCAST_MAX_RECIPIENTS", _positive_int, "10000", "Most numbers in one send."
    )
    star_wait_s: float = _setting(
        "VOCALCAST_STAR_WAIT_S", _non_negative_float, "6", "How long the greeting waits for * after playing."
    )
    transfer_ring_timeout_s: float = _setting(
        "VOCALCAST_TRANSFER_RING_TIMEOUT_S",
        _non_negative_float,
        "30",
        "How long the call centre's line may ring on a transfer (touche 9).",
    )
    transfer_max_s: float = _setting(
        "VOCALCAST_TRANSFER_MAX_S", _non_negative_float, "1800", "Longest transferred conversation."
    )
    ring_timeout_s: float = _setting(
        "VOCALCAST_RING_TIMEOUT_S", _non_negative_float, "30", "How long an outbound call may ring."
    )

    # --- carrier trouble: trunk health, breakers, waits, pace ---------------------------------------------
    hep_port: int = _setting(
        "VOCALCAST_HEP_PORT",
        _port,
        "9060",
        "UDP port (127.0.0.1) where Asterisk mirrors SIP to the engine (HEP): Retry-After, silent trunks.",
    )
    hep_password: str = _setting(
        "VOCALCAST_HEP_PASSWORD", _str, None, "Password of Asterisk's HEP packets (generated).", secret=True
    )
    qualify_frequency_s: int = _setting(
        "VOCALCAST_QUALIFY_FREQUENCY_S",
        _positive_int,
        "30",
        "Seconds between OPTIONS pings of a trunk (its reachability); a lost trunk stops taking calls.",
    )
    trunk_check_s: float = _setting(
        "VOCALCAST_TRUNK_CHECK_S",
        _non_negative_float,
        "2",
        "How often the dialer reads what Asterisk loaded and each trunk's reachability.",
    )
    breaker_window_s: float = _setting(
        "VOCALCAST_BREAKER_WINDOW_S", _non_negative_float, "30", "Sliding window of a trunk's breaker."
    )
    breaker_min_failures: int = _setting(
        "VOCALCAST_BREAKER_MIN_FAILURES",
        _positive_int,
        "3",
        "Trunk-side failures within the window that may open a trunk's breaker.",
    )
    breaker_failure_ratio: float = _setting(
        "VOCALCAST_BREAKER_FAILURE_RATIO",
        _non_negative_float,
        "0.5",
        "Share of the window's calls that failed on the trunk's side for its breaker to open.",
    )
    breaker_cooldown_s: float = _setting(
        "VOCALCAST_BREAKER_COOLDOWN_S",
        _non_negative_float,
        "10",
        "First pause of an open breaker before its probe call; doubles at each failed probe.",
    )
    breaker_cooldown_max_s: float = _setting(
        "VOCALCAST_BREAKER_COOLDOWN_MAX_S", _non_negative_float, "300", "Longest pause of an open breaker."
    )
    retry_after_max_s: float = _setting(
        "VOCALCAST_RETRY_AFTER_MAX_S",
        _non_negative_float,
        "3600",
        "Longest pause a carrier's Retry-After (503, 429) may impose on its trunk.",
    )
    trunk_wait_max_s: float = _setting(
        "VOCALCAST_TRUNK_WAIT_MAX_S",
        _non_negative_float,
        "86400",
        "How long a recipient may wait for a trunk able to carry its call before it ends as congestion.",
    )
    trunk_retry_s: float = _setting(
        "VOCALCAST_TRUNK_RETRY_S",
        _non_negative_float,
        "5",
        "Pause before a call refused by every trunk is tried again (it uses none of the send's retries).",
    )
    retry_busy_factor: float = _setting(
        "VOCALCAST_RETRY_BUSY_FACTOR",
        _non_negative_float,
        "0.5",
        "A busy line is called again after this share of the send's retry interval.",
    )
    retry_no_answer_factor: float = _setting(
        "VOCALCAST_RETRY_NO_ANSWER_FACTOR",
        _non_negative_float,
        "1",
        "An unanswered call is tried again after this share of the send's retry interval.",
    )
    clock_offset_s: float = _setting(
        "VOCALCAST_CLOCK_OFFSET_S",
        float,
        "0",
        "Tests only: seconds added to the dialer's clock (deferred starts, due calls, retries, the calling "
        "hours of commercial sends), so a test can stand at any instant.",
    )
    asr_alarm_ratio: float = _setting(
        "VOCALCAST_ASR_ALARM_RATIO",
        _non_negative_float,
        "0.5",
        "A trunk answering fewer calls than this share of the other trunks' rate raises an alarm.",
    )
    asr_cutoff_ratio: float = _setting(
        "VOCALCAST_ASR_CUTOFF_RATIO",
        _non_negative_float,
        "0.2",
        "Below this share of the other trunks' answer rate, a trunk is taken out of routing.",
    )
    asr_min_calls: int = _setting(
        "VOCALCAST_ASR_MIN_CALLS",
        _positive_int,
        "50",
        "Calls a trunk must have ended in the window before its answer rate is judged.",
    )

    # --- PostgreSQL ----------------------------------------------------------------------------------
    database_url: str = _setting(
        "VOCALCAST_DATABASE_URL",
        _str,
        "",
        "PostgreSQL DSN; empty: the project-owned cluster in the state dir.",
    )
    pg_port: int = _setting(
        "VOCALCAST_PG_PORT", _port, "15432", "Port of the project-owned PostgreSQL cluster (127.0.0.1)."
    )
    pg_fsync: bool = _setting(
        "VOCALCAST_PG_FSYNC", _bool, "1", "fsync in the project-owned cluster (tests turn it off)."
    )
    db_password: str = _setting(
        "VOCALCAST_DB_PASSWORD",
        _str,
        None,
        "Password of the engine's role in the project-owned cluster (generated).",
        secret=True,
    )
    cdr_db_password: str = _setting(
        "VOCALCAST_CDR_DB_PASSWORD",
        _str,
        None,
        "Password of Asterisk's CDR role, INSERT-only on asterisk_cdr (generated).",
        secret=True,
    )
    db_pool_max: int = _setting("VOCALCAST_DB_POOL_MAX", _positive_int, "20", "Database pool size.")
    secret_key: str = _setting(
        "VOCALCAST_SECRET_KEY",
        _str,
        None,
        "Server secret for keyed hashes (personal codes) and sessions (generated on first stack up).",
        secret=True,
    )

    recording_number: str = _setting(
        "VOCALCAST_RECORDING_NUMBER",
        _national_number,
        "0172360170",
        "The recording IVR's number (national form); calls to any other number are refused.",
    )

    # --- messages ----------------------------------------------------------------------------------
    audio_max_bytes: int = _setting(
        "VOCALCAST_AUDIO_MAX_BYTES",
        _positive_int,
        str(20 * 1024 * 1024),
        "Largest accepted upload, in bytes.",
    )
    audio_min_duration_s: float = _setting(
        "VOCALCAST_AUDIO_MIN_DURATION_S",
        _non_negative_float,
        "1",
        "Shortest message, after trimming silence.",
    )
    audio_max_duration_s: float = _setting(
        "VOCALCAST_AUDIO_MAX_DURATION_S",
        _non_negative_float,
        "300",
        "Longest message, after trimming silence.",
    )
    form_max_bytes: int = _setting(
        "VOCALCAST_FORM_MAX_BYTES",
        _positive_int,
        str(2 * 1024 * 1024),
        "Largest form a logged-in page takes (uploads excepted); above it the answer is 413.",
    )
    paste_max_lines: int = _setting(
        "VOCALCAST_PASTE_MAX_LINES",
        _positive_int,
        "20000",
        "Most lines in a pasted list of numbers (pages and API); more is refused before parsing.",
    )
    audio_timeout_s: float = _setting(
        "VOCALCAST_AUDIO_TIMEOUT_S", _non_negative_float, "60", "Longest time one ffmpeg run may take."
    )

    # --- sending interfaces ---------------------------------------------------------------------------
    login_max_failures: int = _setting(
        "VOCALCAST_LOGIN_MAX_FAILURES",
        _positive_int,
        "5",
        "Failed logins (http.php, e-mail, web) per account and client address before that pair waits.",
    )
    login_account_max_failures: int = _setting(
        "VOCALCAST_LOGIN_ACCOUNT_MAX_FAILURES",
        _positive_int,
        "10",
        "Failed logins per account, all addresses together (addresses it logged in from lately excepted).",
    )
    login_client_max_failures: int = _setting(
        "VOCALCAST_LOGIN_CLIENT_MAX_FAILURES",
        _positive_int,
        "20",
        "Failed logins (and API tokens) per client address, all accounts together.",
    )
    login_window_s: float = _setting(
        "VOCALCAST_LOGIN_WINDOW_S",
        _non_negative_float,
        "900",
        "Window counting failed logins; each window that ends exhausted doubles the next (up to 32x).",
    )
    login_trusted_days: float = _setting(
        "VOCALCAST_LOGIN_TRUSTED_DAYS",
        _non_negative_float,
        "30",
        "An address that logged in to an account this recently keeps its own budget for that account.",
    )
    refusals_keep_days: float = _setting(
        "VOCALCAST_REFUSALS_KEEP_DAYS",
        _non_negative_float,
        "90",
        "Days refused http.php and e-mail requests are kept (then purged, with old throttle rows).",
    )
    refusals_per_client_per_min: int = _setting(
        "VOCALCAST_REFUSALS_PER_CLIENT_PER_MIN",
        _positive_int,
        "10",
        "Refusals recorded per minute for one client before it logged in (more are only counted in logs).",
    )
    password_workers: int = _setting(
        "VOCALCAST_PASSWORD_WORKERS",
        _positive_int,
        "2",
        "Threads hashing and checking passwords (argon2) at once, off the event loop.",
    )
    smtp_host: str = _setting("VOCALCAST_SMTP_HOST", _str, "127.0.0.1", "E-mail intake bind address.")
    smtp_port: int = _setting("VOCALCAST_SMTP_PORT", _port, "2525", "E-mail intake port.")
    intake_address: str = _setting(
        "VOCALCAST_INTAKE_ADDRESS", _str, "message@localhost", "The address customers e-mail their sends to."
    )
    mail_max_bytes: int = _setting(
        "VOCALCAST_MAIL_MAX_BYTES", _positive_int, "1048576", "Largest accepted intake e-mail."
    )
    smtp_relay: str = _setting(
        "VOCALCAST_SMTP_RELAY",
        _str,
        "",
        "host:port of the relay for replies and password e-mails (empty: none).",
    )
    mail_from: str = _setting(
        "VOCALCAST_MAIL_FROM", _str, "message@localhost", "From address of the replies vocalcast sends."
    )
    mail_trusted_relays: tuple[str, ...] = _setting(
        "VOCALCAST_MAIL_TRUSTED_RELAYS",
        _addresses,
        "",
        "Relay addresses (comma-separated) whose Received header names the real client of a mail.",
    )
    mail_replies_per_hour: int = _setting(
        "VOCALCAST_MAIL_REPLIES_PER_HOUR", _positive_int, "20", "Replies to one sender per hour, at most."
    )
    public_url: str = _setting(
        "VOCALCAST_PUBLIC_URL",
        _str,
        "",
        "The service's public address, for links in e-mails (default: local).",
    )

    # --- webhooks -----------------------------------------------------------------------------------
    webhook_allow_private: bool = _setting(
        "VOCALCAST_WEBHOOK_ALLOW_PRIVATE",
        _bool,
        "0",
        "Let webhooks reach loopback, private and link-local addresses (never metadata nor multicast).",
    )
    webhook_timeout_s: float = _setting(
        "VOCALCAST_WEBHOOK_TIMEOUT_S", _non_negative_float, "5", "Longest wait for one webhook delivery."
    )
    webhook_retry_base_s: float = _setting(
        "VOCALCAST_WEBHOOK_RETRY_BASE_S",
        _non_negative_float,
        "5",
        "First wait before a failed webhook is tried again; doubles at each try.",
    )
    webhook_retry_max_s: float = _setting(
        "VOCALCAST_WEBHOOK_RETRY_MAX_S",
        _non_negative_float,
        "3600",
        "Longest wait between two webhook tries.",
    )
    webhook_retry_window_s: float = _setting(
        "VOCALCAST_WEBHOOK_RETRY_WINDOW_S",
        _non_negative_float,
        "86400",
        "How long a webhook event is retried before it is given up.",
    )
    webhook_concurrency: int = _setting(
        "VOCALCAST_WEBHOOK_CONCURRENCY", _positive_int, "20", "Webhook deliveries in flight at once, at most."
    )
    webhook_log_days: int = _setting(
        "VOCALCAST_WEBHOOK_LOG_DAYS",
        _positive_int,
        "30",
        "Days a finished webhook event (it holds phone numbers) and its tries are kept in the delivery log.",
    )
    webhook_poll_s: float = _setting(
        "VOCALCAST_WEBHOOK_POLL_S", _non_negative_float, "1", "How often the outbox is read for due events."
    )

    # --- recording IVR ------------------------------------------------------------------------------
    ivr_code_tries: int = _setting(
        "VOCALCAST_IVR_CODE_TRIES", _positive_int, "3", "Wrong personal codes in one call before goodbye."
    )
    ivr_lockout_failures: int = _setting(
        "VOCALCAST_IVR_LOCKOUT_FAILURES",
        _positive_int,
        "5",
        "Wrong codes from one caller number within the window that block that number.",
    )
    ivr_lockout_window_s: float = _setting(
        "VOCALCAST_IVR_LOCKOUT_WINDOW_S",
        _non_negative_float,
        "900",
        "Window counting a caller's wrong codes.",
    )
    ivr_lockout_s: float = _setting(
        "VOCALCAST_IVR_LOCKOUT_S",
        _non_negative_float,
        "1800",
        "How long a blocked caller number stays blocked.",
    )
    ivr_global_failures_per_min: int = _setting(
        "VOCALCAST_IVR_GLOBAL_FAILURES_PER_MIN",
        _positive_int,
        "60",
        "Wrong codes per minute, all callers together (the guess budget), above which the code checks of "
        "callers never seen typing a right code slow down.",
    )
    ivr_record_max_s: float = _setting(
        "VOCALCAST_IVR_RECORD_MAX_S", _non_negative_float, "300", "Longest recording by phone."
    )
    ivr_silence_s: float = _setting(
        "VOCALCAST_IVR_SILENCE_S", _non_negative_float, "5", "Silence that ends a recording by phone."
    )
    ivr_digit_timeout_s: float = _setting(
        "VOCALCAST_IVR_DIGIT_TIMEOUT_S", _non_negative_float, "6", "How long the IVR waits for a key."
    )

    # --- abuse limits of the recording line, greetings, spending (issue 17) -------------------------------
    agi_secret: str = _setting(
        "VOCALCAST_AGI_SECRET",
        _str,
        None,
        "Secret every FastAGI request carries in its AGI URL (rendered into the dialplan; generated).",
        secret=True,
    )
    ivr_max_calls: int = _setting(
        "VOCALCAST_IVR_MAX_CALLS",
        _positive_int,
        "10",
        "Simultaneous calls on the recording number; above it a call is refused busy, unanswered.",
    )
    ivr_known_caller_days: int = _setting(
        "VOCALCAST_IVR_KNOWN_CALLER_DAYS",
        _positive_int,
        "365",
        "Days a caller number that typed a right code keeps its pace while the guess budget is spent.",
    )
    greeting_max_s: float = _setting(
        "VOCALCAST_GREETING_MAX_S",
        _non_negative_float,
        "30",
        "Longest greeting (message d'accueil) after trimming silence; a longer one is refused.",
    )
    daily_spend_cap: int = _setting(
        "VOCALCAST_DAILY_SPEND_CAP",
        _non_negative_int,
        "0",
        "Credits an account's calls may spend per day (Europe/Paris) unless the account has its own cap; "
        "0: no cap. Reached, its calls wait for the next day (reason shown in the report).",
    )
    account_max_transfers: int = _setting(
        "VOCALCAST_ACCOUNT_MAX_TRANSFERS",
        _non_negative_int,
        "10",
        "Simultaneous transfers (touche 9) per account and engine unless the account has its own cap; "
        "beyond, the callee hears the apology. 0: no transfer.",
    )
    smtp_tls_cert: str = _setting(
        "VOCALCAST_SMTP_TLS_CERT",
        _str,
        "",
        "PEM certificate (chain) of the e-mail intake: when set with its key, STARTTLS is offered.",
    )
    smtp_tls_key: str = _setting(
        "VOCALCAST_SMTP_TLS_KEY",
        _str,
        "",
        "PEM private key of VOCALCAST_SMTP_TLS_CERT (a file, never inline).",
    )
    smtp_require_tls: bool = _setting(
        "VOCALCAST_SMTP_REQUIRE_TLS",
        _bool,
        "0",
        "Refuse every command but EHLO/STARTTLS/QUIT before STARTTLS (needs the certificate).",
    )
    transfer_minute_credits: int = _setting(
        "VOCALCAST_TRANSFER_MINUTE_CREDITS",
        _non_negative_int,
        "0",
        "Credits per started minute of a transferred conversation beyond the first (0: transfers free).",
    )

    # --- demo -------------------------------------------------------------------------------------
    demo_account: str = _setting(
        "VOCALCAST_DEMO_ACCOUNT",
        _str,
        "demo@vocalcast.local",
        "E-mail of the demo account `make up` creates.",
    )
    demo_sip_port: int = _setting(
        "VOCALCAST_DEMO_SIP_PORT", _port, "15070", "Port of the demo SIPp phone (127.0.0.1)."
    )

    # --- logs -------------------------------------------------------------------------------------
    log_level: str = _setting("VOCALCAST_LOG_LEVEL", _str, "info", "debug, info, warning or error.")
    log_format: str = _setting(
        "VOCALCAST_LOG_FORMAT", _log_format, "auto", "auto (JSON off a TTY), json, console."
    )

    # --- derived ------------------------------------------------------------------------------------
    @property
    def node_name(self) -> str:
        return self.node or _default_node()

    @property
    def health_url(self) -> str:
        """Where /healthz answers: its own loopback listener when VOCALCAST_HEALTH_PORT is set."""
        if self.health_port:
            return f"http://127.0.0.1:{self.health_port}/healthz"
        return f"http://{self.http_host}:{self.http_port}/healthz"

    @property
    def app_name(self) -> str:
        """Stasis app of this engine process: the last websocket to register a name takes it over."""
        return f"vocalcast-{self.node_name}"

    @property
    def media_dir(self) -> Path:
        return Path(self.media_dir_override) if self.media_dir_override else self.state_dir / "media"

    @property
    def rtp_end(self) -> int:
        if self.rtp_end_override:
            return int(self.rtp_end_override)
        # A transferred call holds two channels, and each RTP session takes an even/odd port pair; the
        # recording line has its own pairs (capped by ivr_max_calls), so a flood of it starves no send.
        return self.rtp_start + 4 * self.max_channels + 2 * self.ivr_max_calls - 1

    @property
    def instance_id(self) -> str:
        """Short stable name of this instance inside the shared Asterisk root."""
        return "vc-" + hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:10]

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"

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
        if self.log_level not in {"debug", "info", "warning", "error"}:
            raise SettingsError("VOCALCAST_LOG_LEVEL: expected debug, info, warning or error")
        if not 0 < self.breaker_failure_ratio <= 1:
            raise SettingsError("VOCALCAST_BREAKER_FAILURE_RATIO: expected a share in (0, 1]")
        if not 0 < self.breaker_cooldown_s <= self.breaker_cooldown_max_s:
            raise SettingsError(
                "VOCALCAST_BREAKER_COOLDOWN_S: must be positive and at most VOCALCAST_BREAKER_COOLDOWN_MAX_S"
            )
        if not 0 < self.webhook_timeout_s <= 60:
            raise SettingsError("VOCALCAST_WEBHOOK_TIMEOUT_S: expected seconds in (0, 60]")
        if not 0 < self.webhook_retry_base_s <= self.webhook_retry_max_s:
            raise SettingsError(
                "VOCALCAST_WEBHOOK_RETRY_BASE_S: must be positive and at most VOCALCAST_WEBHOOK_RETRY_MAX_S"
            )
        if self.webhook_poll_s <= 0:
            raise SettingsError("VOCALCAST_WEBHOOK_POLL_S: must be positive")
        if self.retry_busy_factor <= 0 or self.retry_no_answer_factor <= 0:
            raise SettingsError("VOCALCAST_RETRY_BUSY_FACTOR and _NO_ANSWER_FACTOR must be positive")
        node = self.node_name
        if not node.replace("-", "").isalnum():
            raise SettingsError(f"VOCALCAST_NODE: only letters, digits and '-' allowed, got {node!r}")


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


if __name__ == "__main__":
    print(markdown_table())
