"""The delivery worker: takes due events from the outbox, POSTs each one signed to its endpoint and records
the answer (delivered, retried later with exponential backoff, given up, or the endpoint disabled on 410).

Each event is its own task (at most ``concurrency`` at once): a slow or failing endpoint holds back no other
event. The dialer never waits on any of this: the triggers of sql/0017 queue events in its transactions and
this loop reads them from its own connections.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import structlog

from engine import mailer
from engine.domain.webhooks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Backoff,
    Event,
    Verdict,
    retry_after_s,
    signature,
    verdict,
)
from engine.errors import DatabaseUnavailable
from engine.services.webhooks.guard import AddressRefused, GuardedConnector
from engine.settings import Settings
from engine.store import webhooks as store
from engine.store.db import Database

log = structlog.get_logger(__name__)

PURGE_EVERY_S: Final = 3600.0
RESPONSE_BODY_LIMIT: Final = 4096  # what is read of an answer; the rest is never downloaded
ERROR_MAX_LENGTH: Final = 300
USER_AGENT: Final = "vocalcast-webhooks/1"

Render = Callable[[Event], dict[str, Any]]


def host_of(url: str) -> str:
    """The endpoint's host, for logs (never its path or query: they may hold the customer's tokens)."""
    return urlsplit(url).hostname or "?"


class Deliveries:
    """The outbox's delivery loop (run under the engine's supervisor)."""

    def __init__(self, db: Database, settings: Settings, render: Render) -> None:
        self.db = db
        self.settings = settings
        self.render = render
        self.backoff = Backoff(
            base_s=settings.webhook_retry_base_s,
            max_s=settings.webhook_retry_max_s,
            window_s=settings.webhook_retry_window_s,
        )
        self.concurrency = settings.webhook_concurrency
        # An event whose try outlives this (a crash mid-try) is taken again: at-least-once.
        self.lease_s = 2 * settings.webhook_timeout_s + 30

    async def run(self) -> None:
        connector = GuardedConnector(
            allow_private=self.settings.webhook_allow_private, limit=self.concurrency
        )
        timeout = aiohttp.ClientTimeout(total=self.settings.webhook_timeout_s)
        tasks: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, trust_env=False, headers={"User-Agent": USER_AGENT}
        ) as http:
            next_purge = 0.0
            try:
                while True:
                    if time.monotonic() >= next_purge:
                        next_purge = time.monotonic() + PURGE_EVERY_S
                        await self._purge()
                    free = self.concurrency - len(tasks)
                    claimed = 0
                    if free > 0:
                        try:
                            events = await store.claim_due(self.db, limit=free, lease_s=self.lease_s)
                        except DatabaseUnavailable as exc:
                            log.warning("webhooks.database_unavailable", error=str(exc))
                            events = []
                        claimed = len(events)
                        for event in events:
                            task = asyncio.create_task(self._deliver(http, event), name=f"webhook-{event.id}")
                            tasks.add(task)
                            task.add_done_callback(tasks.discard)
                    if claimed < free or free <= 0:
                        await asyncio.sleep(self.settings.webhook_poll_s)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _purge(self) -> None:
        try:
            gone = await store.purge(self.db, older_than_days=self.settings.webhook_log_days)
        except DatabaseUnavailable as exc:
            log.warning("webhooks.database_unavailable", error=str(exc))
            return
        if gone:
            log.info("webhooks.log_purged", events=gone, older_than_days=self.settings.webhook_log_days)

    async def _deliver(self, http: aiohttp.ClientSession, event: store.DueEvent) -> None:
        try:
            await self._try(http, event)
        except asyncio.CancelledError:
            raise
        except Exception:  # the boundary of one delivery's task: the event is retried after its lease
            log.exception("webhook.try_failed", event_id=str(event.id))

    async def _try(self, http: aiohttp.ClientSession, event: store.DueEvent) -> None:
        body = event.body
        if body is None:
            rendered = self.render(
                Event(event.id, event.type, event.send_id, event.sequence, event.occurred_at, event.object)
            )
            body = json.dumps(rendered, ensure_ascii=False, separators=(",", ":"))
            await store.save_body(self.db, event.id, body)
        raw = body.encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: str(event.id),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(event.secret, timestamp, raw),
        }
        status: int | None = None
        error: str | None = None
        wait: float | None = None
        started = time.monotonic()
        try:
            async with http.post(event.url, data=raw, headers=headers, allow_redirects=False) as resp:
                status = resp.status
                wait = retry_after_s(resp.headers.get("Retry-After"), at=datetime.now(UTC))
                await resp.content.read(RESPONSE_BODY_LIMIT)
                if not resp.content.at_eof():
                    resp.close()  # a big answer is cut off here, its connection dropped
        except AddressRefused as exc:
            error = f"address refused: {exc.reason} ({exc.address})"
        except TimeoutError:
            error = f"timeout after {self.settings.webhook_timeout_s:g} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        latency_ms = round((time.monotonic() - started) * 1000)
        # The URL's path and query may hold the customer's own tokens: only its host goes to logs.
        error = None if error is None else error.replace(event.url, host_of(event.url))[:ERROR_MAX_LENGTH]
        await self._record(event, status, error, latency_ms, wait)

    async def _record(
        self,
        event: store.DueEvent,
        status: int | None,
        error: str | None,
        latency_ms: int,
        wait: float | None,
    ) -> None:
        outcome = verdict(status)
        if error is not None and error.startswith("address refused"):
            outcome = Verdict.failed  # the URL points where deliveries may not go: no retry helps
        logged = {"event_id": str(event.id), "host": host_of(event.url), "status": status, "ms": latency_ms}
        if outcome is Verdict.delivered:
            await store.record_try(self.db, event.id, status=status, error=None, latency_ms=latency_ms,
                                   outcome="delivered")  # fmt: skip
            log.info("webhook.delivered", **logged)
            return
        if outcome is Verdict.retry:
            elapsed_s = (datetime.now(UTC) - event.queued_at).total_seconds()
            retry_in_s = self.backoff.next_try_s(event.tries + 1, elapsed_s, wait)
            if retry_in_s is not None:
                await store.record_try(self.db, event.id, status=status, error=error, latency_ms=latency_ms,
                                       outcome="pending", retry_in_s=retry_in_s)  # fmt: skip
                log.info("webhook.retry", retry_in_s=round(retry_in_s, 1), error=error, **logged)
                return
            error = error or f"HTTP {status}"
            error = f"given up after {self.backoff.window_s:g} s: {error}"[:ERROR_MAX_LENGTH]
        if outcome is Verdict.gone:
            error = "endpoint disabled: it answered 410 Gone"
            email = await store.disable_endpoint(self.db, event, error)
            log.warning("webhook.endpoint_disabled", **logged)
            if email is not None:
                await self._tell(email, event.url)
        elif error is None:
            error = f"refused by the endpoint (HTTP {status}): not retried"
        await store.record_try(self.db, event.id, status=status, error=error, latency_ms=latency_ms,
                               outcome="failed")  # fmt: skip
        log.warning("webhook.failed", error=error, **logged)

    async def _tell(self, email: str, url: str) -> None:
        """The customer is told by e-mail (when a relay is set) that their endpoint was disabled."""
        message = mailer.compose(
            self.settings,
            to=email,
            subject="vocalcast : votre webhook a été désactivé",
            body=(
                "Bonjour,\n\n"
                f"L'adresse de votre webhook ({url[:200]}) a répondu « 410 Gone » : nous avons cessé de "
                "lui envoyer des événements.\n"
                "Pour les recevoir de nouveau, enregistrez une adresse dans Paramètres (ou avec "
                "PUT /api/v1/webhook).\n"
            ),
        )
        await mailer.send(self.settings, message)
