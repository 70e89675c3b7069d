"""Outgoing e-mail (replies to intake mail, password links): one message through the SMTP relay
(``VOCALCAST_SMTP_RELAY``), in a thread so the event loop never waits on the network."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import structlog

from engine.settings import Settings

log = structlog.get_logger(__name__)


def compose(
    settings: Settings, *, to: str, subject: str, body: str, auto_submitted: str = "auto-generated"
) -> EmailMessage:
    """A plain-text message from us (``auto_submitted``: RFC 3834, "auto-replied" for replies)."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="vocalcast")
    message["Auto-Submitted"] = auto_submitted
    message.set_content(body)
    return message


async def send(settings: Settings, message: EmailMessage) -> bool:
    """Hand ``message`` to the relay; False (logged) when there is no relay or it refused."""
    if not settings.smtp_relay:
        log.warning("mail.no_relay", subject=str(message["Subject"]))
        return False
    host, _, port = settings.smtp_relay.rpartition(":")
    try:
        await asyncio.to_thread(_send, host or settings.smtp_relay, int(port or 25), message)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("mail.send_failed", error=str(exc))
        return False
    return True


def _send(host: str, port: int, message: EmailMessage) -> None:
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        smtp.send_message(message)
