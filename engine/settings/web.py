"""The engine's HTTP side: listeners, upload and form limits, login throttles."""

from __future__ import annotations

from dataclasses import dataclass

from engine.settings.fields import non_negative_float, port, port_or_zero, positive_int, setting, text


@dataclass(frozen=True)
class WebSettings:
    """The engine's HTTP side: listeners, upload and form limits, login throttles."""

    # --- engine HTTP -----------------------------------------------------------------------------
    http_host: str = setting("VOCALCAST_HTTP_HOST", text, "127.0.0.1", "Engine HTTP bind address.")
    http_port: int = setting("VOCALCAST_HTTP_PORT", port, "8080", "Engine HTTP port (UI, API, /healthz).")
    health_port: int = setting(
        "VOCALCAST_HEALTH_PORT",
        port_or_zero,
        "0",
        "When set, /healthz and /metrics are served only on 127.0.0.1:<this port>, not on the HTTP port.",
    )

    # --- messages --------------------------------------------------------------------------------
    audio_max_bytes: int = setting(
        "VOCALCAST_AUDIO_MAX_BYTES",
        positive_int,
        str(20 * 1024 * 1024),
        "Largest accepted upload, in bytes.",
    )
    audio_min_duration_s: float = setting(
        "VOCALCAST_AUDIO_MIN_DURATION_S",
        non_negative_float,
        "1",
        "Shortest message, after trimming silence.",
    )
    audio_max_duration_s: float = setting(
        "VOCALCAST_AUDIO_MAX_DURATION_S",
        non_negative_float,
        "300",
        "Longest message, after trimming silence.",
    )
    form_max_bytes: int = setting(
        "VOCALCAST_FORM_MAX_BYTES",
        positive_int,
        str(2 * 1024 * 1024),
        "Largest form a logged-in page takes (uploads excepted); above it the answer is 413.",
    )
    paste_max_lines: int = setting(
        "VOCALCAST_PASTE_MAX_LINES",
        positive_int,
        "20000",
        "Most lines in a pasted list of numbers (pages and API); more is refused before parsing.",
    )
    audio_timeout_s: float = setting(
        "VOCALCAST_AUDIO_TIMEOUT_S", non_negative_float, "60", "Longest time one ffmpeg run may take."
    )

    # --- logins and refusals ---------------------------------------------------------------------
    login_max_failures: int = setting(
        "VOCALCAST_LOGIN_MAX_FAILURES",
        positive_int,
        "5",
        "Failed logins (http.php, e-mail, web) per account and client address before that pair waits.",
    )
    login_account_max_failures: int = setting(
        "VOCALCAST_LOGIN_ACCOUNT_MAX_FAILURES",
        positive_int,
        "10",
        "Failed logins per account, all addresses together (addresses it logged in from lately excepted).",
    )
    login_client_max_failures: int = setting(
        "VOCALCAST_LOGIN_CLIENT_MAX_FAILURES",
        positive_int,
        "20",
        "Failed logins (and API tokens) per client address, all accounts together.",
    )
    login_window_s: float = setting(
        "VOCALCAST_LOGIN_WINDOW_S",
        non_negative_float,
        "900",
        "Window counting failed logins; each window that ends exhausted doubles the next (up to 32x).",
    )
    login_trusted_days: float = setting(
        "VOCALCAST_LOGIN_TRUSTED_DAYS",
        non_negative_float,
        "30",
        "An address that logged in to an account this recently keeps its own budget for that account.",
    )
    refusals_keep_days: float = setting(
        "VOCALCAST_REFUSALS_KEEP_DAYS",
        non_negative_float,
        "90",
        "Days refused http.php and e-mail requests are kept (then purged, with old throttle rows).",
    )
    refusals_per_client_per_min: int = setting(
        "VOCALCAST_REFUSALS_PER_CLIENT_PER_MIN",
        positive_int,
        "10",
        "Refusals recorded per minute for one client before it logged in (more are only counted in logs).",
    )
    password_workers: int = setting(
        "VOCALCAST_PASSWORD_WORKERS",
        positive_int,
        "2",
        "Threads hashing and checking passwords (argon2) at once, off the event loop.",
    )

    @property
    def health_url(self) -> str:
        """Where /healthz answers: its own loopback listener when VOCALCAST_HEALTH_PORT is set."""
        if self.health_port:
            return f"http://127.0.0.1:{self.health_port}/healthz"
        return f"http://{self.http_host}:{self.http_port}/healthz"
