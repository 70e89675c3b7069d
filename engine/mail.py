"""E-mail intake: a real SMTP listener inside the engine's event loop (aiosmtpd, not its threaded
Controller). The sender (From) is the account; the subject carries
`mot_de_passe:numéro:référence:commentaire:HHMMDDMMYYYY:`; the body is ignored.

Each mail gets the code an equivalent http.php request would. When sender and password matched, a
reply with the code and its French meaning goes back through the relay (rate-limited); otherwise no
reply at all, so a forged From cannot turn us into a spam relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from engine.errors import DatabaseUnavailable
from engine.services.intake import CODES, CompatAnswer, CompatRequest, submit
from engine.settings import Settings
from engine.store import Database, rates

log = structlog.get_logger(__name__)

_DATE = re.compile(r"\d{12}s?")
REPLIES = "mail_reply"


def parse_subject(subject: str) -> CompatRequest | None:
    """The manual's subject, or None when it is not that shape at all.

    The last non-empty field after the reference is the date when it is 12 digits (optionally + `s`);
    any other text there is the comment (the manual's own example has a date and no comment).
    """
    fields = subject.strip().split(":")
    while fields and not fields[-1].strip():
        fields.pop()
    if len(fields) < 3:
        return None
    password, numero, ref, *rest = (f if i >= 3 else f.strip() for i, f in enumerate(fields))
    diff = ""
    if rest and _DATE.fullmatch(rest[-1].strip()):
        diff = rest.pop().strip()
    comment = ":".join(rest).strip()
    return CompatRequest(password=password, numero=numero, ref=ref, com=comment, diff=diff)


@dataclass
class Intake:
    settings: Settings
    db: Database
    on_send: Any = None  # called after a send is created (wakes the dialer)

    # --- aiosmtpd handler hooks ---------------------------------------------------------------------
    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.strip().lower() != self.settings.intake_address.lower():
            return "550 5.1.1 Unknown recipient: send your messages to " + self.settings.intake_address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        try:
            answer, sender = await self._process(envelope, session)
        except Exception:
            log.exception("mail.failed")
            return "451 4.3.0 Temporary failure, try again later"
        if answer is not None and answer.account is not None:
            await self._reply(sender, answer)
        return "250 OK: received"

    async def _process(self, envelope: Envelope, session: Session) -> tuple[CompatAnswer | None, str]:
        raw = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        message = BytesParser(policy=policy.default).parsebytes(data, headersonly=True)
        sender = parseaddr(str(message.get("From", "")))[1].strip()
        subject = str(message.get("Subject", ""))  # policy.default decodes =?UTF-8?B?...?= words
        client = f"smtp:{session.peer[0] if isinstance(session.peer, tuple) else session.peer}"
        request = parse_subject(subject)
        if request is None:
            log.info("mail.refused", reason="subject is not password:number:reference[:comment][:date]")
            with contextlib.suppress(DatabaseUnavailable):
                await self.db.execute(
                    "INSERT INTO refused_requests (origin, code, client, detail) VALUES ('email', "
                    "'subject', $1, $2)",
                    client,
                    "malformed subject",
                )
            return None, sender
        request = CompatRequest(
            email=sender,
            password=request.password,
            numero=request.numero,
            ref=request.ref,
            com=request.com,
            diff=request.diff,
        )
        answer = await submit(self.db, self.settings, request, channel="email", client=client)
        if answer.send_id is not None and self.on_send is not None:
            self.on_send()
        log.info("mail.processed", code=answer.code)
        return answer, sender

    async def _reply(self, sender: str, answer: CompatAnswer) -> None:
        if not self.settings.smtp_relay or not sender:
            return
        try:
            wait = await rates.blocked_for_s(
                self.db, REPLIES, [sender.lower()], limit=self.settings.mail_replies_per_hour, window_s=3600
            )
            if wait is not None:
                log.info("mail.reply_rate_limited")
                return
            await rates.record(self.db, REPLIES, [sender.lower()])
        except DatabaseUnavailable:
            return
        reply = EmailMessage()
        reply["From"] = self.settings.mail_from
        reply["To"] = sender
        reply["Subject"] = f"vocalcast : code {answer.code}"
        reply["Date"] = formatdate(localtime=False)
        reply["Message-ID"] = make_msgid(domain="vocalcast")
        reply["Auto-Submitted"] = "auto-replied"
        reply.set_content(
            f"Bonjour,\n\nVotre demande d'envoi a reçu le code {answer.code} : {CODES[answer.code]}.\n\n"
            "Ce message est envoyé automatiquement ; merci de ne pas y répondre.\n"
        )
        host, _, port = self.settings.smtp_relay.rpartition(":")
        try:
            await asyncio.to_thread(send_mail, host or self.settings.smtp_relay, int(port or 25), reply)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("mail.reply_failed", error=str(exc))


def send_mail(host: str, port: int, message: EmailMessage) -> None:
    """Blocking: run it in a thread (asyncio.to_thread)."""
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        smtp.send_message(message)


@contextlib.asynccontextmanager
async def serve(settings: Settings, db: Database, on_send: Any = None) -> AsyncIterator[asyncio.Server]:
    """The SMTP listener on the engine's own loop, closed like aiosmtpd's UnthreadedController."""
    handler = Intake(settings, db, on_send)
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
