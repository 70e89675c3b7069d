"""The completion e-mail: when a send of an account that asked for it ends, its summary (numbers, final
outcomes, credits used) and a link to its report, through the mail relay (engine/mailer.py)."""

from __future__ import annotations

import asyncio
from typing import Final
from zoneinfo import ZoneInfo

import structlog

from engine import mailer
from engine.domain.outcomes import Outcome
from engine.domain.sends import Progress, Send, SendStatus
from engine.errors import DatabaseUnavailable, NotFound
from engine.settings import Settings
from engine.store import sends as sends_store
from engine.store import webhooks as store
from engine.store.accounts import get_account
from engine.store.db import Database

log = structlog.get_logger(__name__)

PARIS: Final = ZoneInfo("Europe/Paris")
MAX_TRIES: Final = 5
FIRST_RETRY_S: Final = 60.0
LEASE_S: Final = 120.0


def _label(outcome: str) -> str:
    try:
        return Outcome(outcome).label_fr
    except ValueError:
        return outcome


def summary(send: Send, progress: Progress, link: str) -> tuple[str, str]:
    """The e-mail's subject and text (French: the customer reads it)."""
    name = f"« {send.comment} »" if send.comment else f"n° {str(send.id)[:8]}"
    ended = "annulé" if send.status is SendStatus.cancelled else "terminé"
    when = send.created_at.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")
    lines = [
        "Bonjour,",
        "",
        f"Votre envoi {name} du {when} est {ended}.",
        "",
        f"Numéros : {progress.total}",
    ]
    for outcome, count in sorted(progress.outcomes.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"  {_label(outcome)} : {count}")
    if progress.cancelled:
        lines.append(f"  Non appelés (envoi annulé) : {progress.cancelled}")
    lines += ["", f"Crédits utilisés : {send.credits_used}", "", f"Le rapport détaillé : {link}", ""]
    return f"vocalcast : envoi {name} {ended}", "\n".join(lines)


class CompletionMails:
    """Sends the queued completion e-mails (run beside the webhook deliveries)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def _base(self) -> str:
        configured = self.settings.public_url.rstrip("/")
        return configured or f"http://{self.settings.http_host}:{self.settings.http_port}"

    async def run(self) -> None:
        while True:
            try:
                due = await store.claim_completion_emails(self.db, limit=10, lease_s=LEASE_S)
            except DatabaseUnavailable as exc:
                log.warning("completion_mail.database_unavailable", error=str(exc))
                due = []
            for mail in due:
                try:
                    await self._send(mail)
                except DatabaseUnavailable as exc:  # its lease ends, and it is taken again
                    log.warning("completion_mail.database_unavailable", error=str(exc))
            await asyncio.sleep(self.settings.webhook_poll_s)

    async def _send(self, mail: store.DueMail) -> None:
        try:
            send = await sends_store.get_send(self.db, mail.send_id)
            progress = await sends_store.progress(self.db, mail.send_id)
            account = await get_account(self.db, mail.account_id)
        except NotFound:
            await store.record_completion_email(self.db, mail.send_id, status="failed")
            return
        subject, body = summary(send, progress, f"{self._base()}/historique/{send.id}")
        message = mailer.compose(self.settings, to=account.email, subject=subject, body=body)
        if await mailer.send(self.settings, message):
            await store.record_completion_email(self.db, mail.send_id, status="sent")
            log.info("completion_mail.sent", send_id=str(send.id))
        elif mail.tries + 1 >= MAX_TRIES:
            await store.record_completion_email(self.db, mail.send_id, status="failed")
            log.warning("completion_mail.given_up", send_id=str(send.id))
        else:
            retry_in_s = FIRST_RETRY_S * 2**mail.tries
            await store.record_completion_email(
                self.db, mail.send_id, status="pending", retry_in_s=retry_in_s
            )
