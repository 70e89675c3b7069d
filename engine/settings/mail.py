"""The e-mail intake and the e-mails vocalcast sends."""

from __future__ import annotations

from dataclasses import dataclass

from engine.settings.fields import addresses, boolean, port, positive_int, setting, text


@dataclass(frozen=True)
class MailSettings:
    """The e-mail intake and the e-mails vocalcast sends."""

    # --- e-mail intake and replies ---------------------------------------------------------------
    smtp_host: str = setting("VOCALCAST_SMTP_HOST", text, "127.0.0.1", "E-mail intake bind address.")
    smtp_port: int = setting("VOCALCAST_SMTP_PORT", port, "2525", "E-mail intake port.")
    intake_address: str = setting(
        "VOCALCAST_INTAKE_ADDRESS", text, "message@localhost", "The address customers e-mail their sends to."
    )
    mail_max_bytes: int = setting(
        "VOCALCAST_MAIL_MAX_BYTES", positive_int, "1048576", "Largest accepted intake e-mail."
    )
    smtp_relay: str = setting(
        "VOCALCAST_SMTP_RELAY",
        text,
        "",
        "host:port of the relay for replies and password e-mails (empty: none).",
    )
    mail_from: str = setting(
        "VOCALCAST_MAIL_FROM", text, "message@localhost", "From address of the replies vocalcast sends."
    )
    mail_trusted_relays: tuple[str, ...] = setting(
        "VOCALCAST_MAIL_TRUSTED_RELAYS",
        addresses,
        "",
        "Relay addresses (comma-separated) whose Received header names the real client of a mail.",
    )
    mail_replies_per_hour: int = setting(
        "VOCALCAST_MAIL_REPLIES_PER_HOUR", positive_int, "20", "Replies to one sender per hour, at most."
    )
    public_url: str = setting(
        "VOCALCAST_PUBLIC_URL",
        text,
        "",
        "The service's public address, for links in e-mails (default: local).",
    )

    # --- STARTTLS on the intake (issue 17) ---------------------------------------------------------------
    smtp_tls_cert: str = setting(
        "VOCALCAST_SMTP_TLS_CERT",
        text,
        "",
        "PEM certificate (chain) of the e-mail intake: when set with its key, STARTTLS is offered.",
    )
    smtp_tls_key: str = setting(
        "VOCALCAST_SMTP_TLS_KEY",
        text,
        "",
        "PEM private key of VOCALCAST_SMTP_TLS_CERT (a file, never inline).",
    )
    smtp_require_tls: bool = setting(
        "VOCALCAST_SMTP_REQUIRE_TLS",
        boolean,
        "0",
        "Refuse every command but EHLO/STARTTLS/QUIT before STARTTLS (needs the certificate).",
    )
