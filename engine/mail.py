"""E-mail intake: a real SMTP listener inside the engine's event loop (aiosmtpd, not its threaded
Controller). The sender (From) is the account; the subject carries
`mot_de_passe:numéro:référence:commentaire:HHMMDDMMYYYY:`; the body is ignored.

This module only speaks SMTP: what a mail means, its code and its reply are the intake service's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from email.utils import parseaddr

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from engine.services.intake import Intake
from engine.settings import Settings

log = structlog.get_logger(__name__)


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
        client = f"smtp:{session.peer[0] if isinstance(session.peer, tuple) else session.peer}"
        try:
            await self.intake.mail(sender, subject, client=client)
        except Exception:  # the boundary of one mail: the sender is told to retry, the error is logged
            log.exception("mail.failed")
            return "451 4.3.0 Temporary failure, try again later"
        return "250 OK: received"


@contextlib.asynccontextmanager
async def serve(settings: Settings, intake: Intake) -> AsyncIterator[asyncio.Server]:
    """The SMTP listener on the engine's own loop, closed like aiosmtpd's UnthreadedController."""
    handler = IntakeHandler(settings, intake)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            data_size_limit=settings.mail_max_bytes,
            enable_SMTPUTF8=True,
            hostname="vocalcast",
            ident="vocalcast intake",
        ),
        host=settings.smtp_host,
        port=settings.smtp_port,
        reuse_port=True,  # several engine processes on one host share the intake port
    )
    log.info("mail.listening", host=settings.smtp_host, port=settings.smtp_port)
    try:
        yield server
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)
