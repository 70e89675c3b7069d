"""E-mail intake: a real SMTP listener inside the engine's event loop (aiosmtpd, not its threaded
Controller). The sender (From) is the account; the subject carries
`mot_de_passe:numéro:référence:commentaire:HHMMDDMMYYYY:`; the body is ignored.

This module only speaks SMTP: what a mail means, its code and its reply are the intake service's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from email.utils import parseaddr
from typing import Final

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from engine.errors import ConfigurationError
from engine.services.intake import Intake
from engine.settings import Settings

log = structlog.get_logger(__name__)


# Postfix's "from HELO (RDNS [192.0.2.7])" or "(unknown [IPv6:2001:db8::7])": the address the relay saw,
# inside the parentheses the relay writes (the HELO before them is the client's word, one token).
_RECEIVED_FROM: Final = re.compile(r"^\s*from\s+\S+\s+\((?:\S+\s+)?\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]\)")


def real_client(peer: str, received: list[object], settings: Settings) -> str:
    """Who sent the mail: the SMTP peer, unless it is one of VOCALCAST_MAIL_TRUSTED_RELAYS — then the
    address its own Received header (the topmost) names. Behind a relay every mail comes from the
    relay's address: without this one stranger's wrong passwords would throttle every customer."""
    try:
        peer_ip = str(ipaddress.ip_address(peer))
    except ValueError:
        return peer
    if peer_ip not in settings.mail_trusted_relays or not received:
        return peer_ip
    found = _RECEIVED_FROM.match(str(received[0]))
    if found is None:
        return peer_ip
    try:
        return str(ipaddress.ip_address(found.group(1)))
    except ValueError:
        return peer_ip


@dataclass
class IntakeHandler:
    """aiosmtpd's handler: every accepted mail goes to the intake service."""

    settings: Settings
    intake: Intake

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.strip().lower() != self.settings.intake_address.lower():
            return "550 5.1.1 Unknown recipient: send your messages to " + self.settings.intake_address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        message = BytesParser(policy=policy.default).parsebytes(data, headersonly=True)
        sender = parseaddr(str(message.get("From", "")))[1].strip()
        subject = str(message.get("Subject", ""))  # policy.default decodes =?UTF-8?B?...?= words
        peer = str(session.peer[0] if isinstance(session.peer, tuple) else session.peer)
        client = f"smtp:{real_client(peer, message.get_all('Received') or [], self.settings)}"
        try:
            await self.intake.mail(sender, subject, client=client)
        except Exception:  # the boundary of one mail: the sender is told to retry, the error is logged
            log.exception("mail.failed")
            return "451 4.3.0 Temporary failure, try again later"
        return "250 OK: received"


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The intake's STARTTLS context (TLS 1.2 at least) when a certificate and its key are set, else None;
    passwords typed in the subject then cross the network encrypted (issue 17)."""
    if not settings.smtp_tls_cert or not settings.smtp_tls_key:
        if settings.smtp_require_tls:
            raise ConfigurationError("VOCALCAST_SMTP_REQUIRE_TLS needs VOCALCAST_SMTP_TLS_CERT and _KEY")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.smtp_tls_cert, settings.smtp_tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"VOCALCAST_SMTP_TLS_CERT/KEY cannot be loaded: {exc}") from exc
    return context


@contextlib.asynccontextmanager
async def serve(settings: Settings, intake: Intake) -> AsyncIterator[asyncio.Server]:
    """The SMTP listener on the engine's own loop, closed like aiosmtpd's UnthreadedController."""
    handler = IntakeHandler(settings, intake)
    loop = asyncio.get_running_loop()
    tls = tls_context(settings)
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            data_size_limit=settings.mail_max_bytes,
            enable_SMTPUTF8=True,
            hostname="vocalcast",
            ident="vocalcast intake",
            tls_context=tls,
            require_starttls=tls is not None and settings.smtp_require_tls,
        ),
        host=settings.smtp_host,
        port=settings.smtp_port,
        reuse_port=True,  # several engine processes on one host share the intake port
    )
    log.info("mail.listening", host=settings.smtp_host, port=settings.smtp_port, starttls=tls is not None)
    try:
        yield server
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)
