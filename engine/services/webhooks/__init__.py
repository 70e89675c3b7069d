"""Webhooks: an account's endpoint, events and signing secret (shown once, rotatable), a send's own
endpoint, the delivery log, test events and replays; ``run`` is the delivery worker's loop."""

from __future__ import annotations

import asyncio
import ipaddress
from datetime import UTC, datetime
from urllib.parse import urlsplit
from uuid import UUID

from engine.domain.webhooks import (
    EVENT_TYPES,
    Delivery,
    SendWebhook,
    WebhookSettings,
    check_events,
    refusal_reason,
)
from engine.errors import InvalidInput
from engine.services.webhooks.completion import CompletionMails
from engine.services.webhooks.urls import check_url
from engine.services.webhooks.worker import Deliveries, Render
from engine.settings import Settings
from engine.store import sends as sends_store
from engine.store import webhooks as store
from engine.store.db import Database

__all__ = ["Webhooks"]


class Webhooks:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def _check(self, raw: str) -> str:
        """A URL a customer may set: its form, and when its host is an address, that address (a host name
        is checked at each connection, on the addresses it resolves to then)."""
        url = check_url(raw)
        host = urlsplit(url).hostname or ""
        try:
            ipaddress.ip_address(host)
        except ValueError:
            literal = host.lower() in {"localhost", "localhost.localdomain"} or host.endswith(".localhost")
            reason = "loopback name" if literal and not self.settings.webhook_allow_private else None
        else:
            reason = refusal_reason(host, allow_private=self.settings.webhook_allow_private)
        if reason is not None:
            raise InvalidInput(
                "webhook_address",
                f"webhook URL host refused: {reason}",
                message_fr="Cette adresse n'est pas joignable depuis notre service (adresse privée ou "
                "réservée) : indiquez une adresse publique.",
            )
        return url

    def check_override(
        self, url: str, events: list[str] | tuple[str, ...] | None
    ) -> tuple[str, tuple[str, ...]]:
        """A send's own webhook, checked before the send is created."""
        return self._check(url), EVENT_TYPES if events is None else check_events(events)

    async def show(self, account_id: UUID) -> WebhookSettings | None:
        return await store.get_settings(self.db, account_id)

    async def configure(
        self, account_id: UUID, *, url: str | None, events: list[str] | tuple[str, ...] | None = None
    ) -> tuple[WebhookSettings, str | None]:
        """Set (or with ``url`` None, remove) the account's endpoint; the secret is returned the first time
        only. Setting it again enables an endpoint disabled by a 410."""
        clean = None if url is None else self._check(url)
        wanted = EVENT_TYPES if events is None else check_events(events)
        return await store.set_settings(self.db, account_id, url=clean, events=wanted)

    async def rotate(self, account_id: UUID) -> str:
        return await store.rotate_secret(self.db, account_id)

    async def for_send(self, account_id: UUID, send_id: UUID) -> SendWebhook | None:
        await sends_store.get_send(self.db, send_id, account_id=account_id)  # NotFound for another's
        return await store.get_send_webhook(self.db, send_id)

    async def set_for_send(
        self, account_id: UUID, send_id: UUID, *, url: str, events: list[str] | tuple[str, ...] | None = None
    ) -> SendWebhook:
        await sends_store.get_send(self.db, send_id, account_id=account_id)
        wanted = EVENT_TYPES if events is None else check_events(events)
        return await store.set_send_webhook(self.db, send_id, url=self._check(url), events=wanted)

    async def clear_for_send(self, account_id: UUID, send_id: UUID) -> bool:
        await sends_store.get_send(self.db, send_id, account_id=account_id)
        return await store.clear_send_webhook(self.db, send_id)

    async def test(self, account_id: UUID) -> Delivery:
        """Queue a test event to the account's endpoint (delivered like any other)."""
        event_id = await store.enqueue_test(self.db, account_id, datetime.now(UTC))
        if event_id is None:
            raise InvalidInput(
                "webhook_not_set",
                "no enabled webhook endpoint",
                message_fr="Aucune adresse de webhook active : enregistrez-en une d'abord.",
            )
        return await store.delivery(self.db, account_id, event_id)

    async def deliveries(
        self, account_id: UUID, *, limit: int = 50, before: datetime | None = None
    ) -> list[Delivery]:
        return await store.deliveries(self.db, account_id, limit=limit, before=before)

    async def delivery(self, account_id: UUID, event_id: UUID) -> tuple[Delivery, list[store.Try]]:
        found = await store.delivery(self.db, account_id, event_id)
        return found, await store.tries(self.db, event_id)

    async def replay(self, account_id: UUID, event_id: UUID) -> Delivery:
        return await store.replay(self.db, account_id, event_id)

    async def completion_email(self, account_id: UUID) -> bool:
        return await store.completion_email(self.db, account_id)

    async def set_completion_email(self, account_id: UUID, on: bool) -> None:
        """Whether the account gets an e-mail when each of its sends ends."""
        await store.set_completion_email(self.db, account_id, on)

    async def run(self, render: Render) -> None:
        """The delivery worker and the completion e-mails (engine process only)."""
        async with asyncio.TaskGroup() as group:
            group.create_task(Deliveries(self.db, self.settings, render).run())
            group.create_task(CompletionMails(self.db, self.settings).run())
