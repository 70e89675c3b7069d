"""Webhooks: an account's endpoint and signing secret, a send's own endpoint, and the outbox the triggers
of sql/0017 fill (claimed by the delivery worker, which records every try here: the delivery log)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import asyncpg

from engine.domain.webhooks import (
    EVENT_TYPES,
    SECRET_PREFIX,
    TEST_EVENT,
    Delivery,
    SendWebhook,
    WebhookSettings,
)
from engine.errors import NotFound
from engine.store.db import Executor, in_transaction

SECRET_BYTES: Final = 32
_SETTINGS: Final = "account_id, url, events, disabled_at, disabled_reason, updated_at"
_EVENT: Final = (
    "id, type, send_id, sequence, occurred_at, url, status, tries, next_at, last_status, last_error, "
    "last_latency_ms, delivered_at"
)


def _settings(row: asyncpg.Record) -> WebhookSettings:
    return WebhookSettings(
        account_id=row["account_id"],
        url=row["url"],
        events=tuple(row["events"]),
        disabled_at=row["disabled_at"],
        disabled_reason=row["disabled_reason"],
        updated_at=row["updated_at"],
    )


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(
        id=row["id"],
        type=row["type"],
        send_id=row["send_id"],
        sequence=row["sequence"],
        occurred_at=row["occurred_at"],
        url=row["url"],
        status=row["status"],
        tries=row["tries"],
        next_at=row["next_at"] if row["status"] == "pending" else None,
        last_status=row["last_status"],
        last_error=row["last_error"],
        last_latency_ms=row["last_latency_ms"],
        delivered_at=row["delivered_at"],
    )


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


# --- settings ---------------------------------------------------------------------------------------------
async def get_settings(db: Executor, account_id: UUID) -> WebhookSettings | None:
    row = await db.fetchrow(
        f"SELECT {_SETTINGS} FROM webhook_settings WHERE account_id = $1",  # noqa: S608 - constant columns
        account_id,
    )
    return None if row is None else _settings(row)


async def set_settings(
    db: Executor, account_id: UUID, *, url: str | None, events: tuple[str, ...] = EVENT_TYPES
) -> tuple[WebhookSettings, str | None]:
    """Set the account's endpoint (None: none) and events; a disabled endpoint is enabled again. Returns
    the settings and, the first time only, the signing secret (shown once)."""
    secret = new_secret()
    row = await db.fetchrow(
        "INSERT INTO webhook_settings (account_id, url, events, secret) VALUES ($1, $2, $3, $4) "  # noqa: S608
        "ON CONFLICT (account_id) DO UPDATE SET url = EXCLUDED.url, events = EXCLUDED.events, "
        "disabled_at = NULL, disabled_reason = NULL, updated_at = now() "
        f"RETURNING {_SETTINGS}, (xmax = 0) AS created",
        account_id,
        url,
        list(events),
        secret,
    )
    if row is None:
        raise RuntimeError("webhook settings upsert returned nothing")
    return _settings(row), secret if row["created"] else None


async def rotate_secret(db: Executor, account_id: UUID) -> str:
    """A new signing secret (the old one stops signing at once); shown once."""
    secret = new_secret()
    row = await db.fetchrow(
        "INSERT INTO webhook_settings (account_id, url, secret) VALUES ($1, NULL, $2) "
        "ON CONFLICT (account_id) DO UPDATE SET secret = EXCLUDED.secret, updated_at = now() "
        "RETURNING account_id",
        account_id,
        secret,
    )
    if row is None:
        raise RuntimeError("webhook secret upsert returned nothing")
    return secret


async def get_send_webhook(db: Executor, send_id: UUID) -> SendWebhook | None:
    row = await db.fetchrow(
        "SELECT send_id, url, events, disabled_at, disabled_reason FROM send_webhooks WHERE send_id = $1",
        send_id,
    )
    if row is None:
        return None
    return SendWebhook(
        row["send_id"], row["url"], tuple(row["events"]), row["disabled_at"], row["disabled_reason"]
    )


async def add_send_webhook(conn: Executor, send_id: UUID, *, url: str, events: tuple[str, ...]) -> None:
    """A new send's own endpoint, stored in the transaction creating the send: its send.started, queued
    at that commit (a deferred trigger), goes there and nowhere else."""
    await conn.execute(
        "INSERT INTO send_webhooks (send_id, url, events) VALUES ($1, $2, $3)", send_id, url, list(events)
    )


async def set_send_webhook(db: Executor, send_id: UUID, *, url: str, events: tuple[str, ...]) -> SendWebhook:
    """The send's own endpoint from now on. Its events not tried yet (send.started of a send created a
    moment ago) go there instead, or are dropped when it does not want them; a send already started
    whose send.started nobody wanted gets one now. An event being tried is left to its try (it is leased:
    next_at is in the future), so no event is ever sent to both endpoints nor lost."""
    async with in_transaction(db) as conn:
        await conn.execute(
            "INSERT INTO send_webhooks (send_id, url, events) VALUES ($1, $2, $3) ON CONFLICT (send_id) "
            "DO UPDATE SET url = EXCLUDED.url, events = EXCLUDED.events, disabled_at = NULL, "
            "disabled_reason = NULL",
            send_id,
            url,
            list(events),
        )
        await conn.execute(
            "WITH untried AS (SELECT id FROM webhook_events WHERE send_id = $1 AND status = 'pending' "
            "AND tries = 0 AND next_at <= clock_timestamp() FOR UPDATE SKIP LOCKED) "
            "UPDATE webhook_events e SET url = $2, target = 'send', "
            "status = CASE WHEN e.type = ANY ($3::text[]) THEN 'pending' ELSE 'dropped' END, "
            "last_error = CASE WHEN e.type = ANY ($3::text[]) THEN NULL "
            "ELSE 'not wanted by the send''s own webhook' END "
            "FROM untried WHERE e.id = untried.id",
            send_id,
            url,
            list(events),
        )
        await conn.execute(
            "SELECT webhook_enqueue(s.account_id, s.id, 'send.started', webhook_send_object(s)) FROM sends s "
            "WHERE s.id = $1 AND s.started_at IS NOT NULL AND 'send.started' = ANY ($2::text[]) "
            "AND NOT EXISTS (SELECT 1 FROM webhook_events e WHERE e.send_id = s.id "
            "AND e.type = 'send.started')",
            send_id,
            list(events),
        )
    return SendWebhook(send_id, url, events, None, None)


async def clear_send_webhook(db: Executor, send_id: UUID) -> bool:
    status = await db.execute("DELETE FROM send_webhooks WHERE send_id = $1", send_id)
    return status.endswith(" 1")


# --- events -----------------------------------------------------------------------------------------------
async def enqueue_test(db: Executor, account_id: UUID, at: datetime) -> UUID | None:
    """A test event to the account's endpoint (whatever its events), None when it has none enabled."""
    value: UUID | None = await db.fetchval(
        "INSERT INTO webhook_events (account_id, type, object, url, target) "
        "SELECT account_id, $2, $3::jsonb, url, 'account' FROM webhook_settings "
        "WHERE account_id = $1 AND url IS NOT NULL AND disabled_at IS NULL RETURNING id",
        account_id,
        TEST_EVENT,
        json.dumps({"message": "Ceci est un événement de test de vocalcast.", "at": at.isoformat()}),
    )
    return value


async def deliveries(
    db: Executor, account_id: UUID, *, limit: int = 50, before: datetime | None = None
) -> list[Delivery]:
    """The account's events, newest first (the delivery log)."""
    rows = await db.fetch(
        f"SELECT {_EVENT} FROM webhook_events WHERE account_id = $1 "  # noqa: S608 - constant columns
        "AND ($3::timestamptz IS NULL OR occurred_at < $3) ORDER BY occurred_at DESC, sequence DESC LIMIT $2",
        account_id,
        limit,
        before,
    )
    return [_delivery(r) for r in rows]


async def delivery(db: Executor, account_id: UUID, event_id: UUID) -> Delivery:
    row = await db.fetchrow(
        f"SELECT {_EVENT} FROM webhook_events WHERE account_id = $1 AND id = $2",  # noqa: S608
        account_id,
        event_id,
    )
    if row is None:
        raise NotFound(f"no webhook event {event_id}", message_fr="Événement introuvable.")
    return _delivery(row)


@dataclass(frozen=True, slots=True)
class Try:
    at: datetime
    status: int | None
    error: str | None
    latency_ms: int


async def tries(db: Executor, event_id: UUID) -> list[Try]:
    rows = await db.fetch(
        "SELECT at, status, error, latency_ms FROM webhook_deliveries WHERE event_id = $1 ORDER BY at, id",
        event_id,
    )
    return [Try(r["at"], r["status"], r["error"], r["latency_ms"]) for r in rows]


async def replay(db: Executor, account_id: UUID, event_id: UUID) -> Delivery:
    """Deliver an event again, with the same id and body, to the endpoint that wants it now; a new
    retry window starts."""
    row = await db.fetchrow(
        "UPDATE webhook_events e SET status = 'pending', next_at = clock_timestamp(), "  # noqa: S608 - constant columns
        "queued_at = clock_timestamp(), url = coalesce("
        "(SELECT w.url FROM send_webhooks w WHERE e.target = 'send' AND w.send_id = e.send_id), "
        "(SELECT a.url FROM webhook_settings a WHERE a.account_id = e.account_id), e.url) "
        f"WHERE e.account_id = $1 AND e.id = $2 RETURNING {_EVENT}",
        account_id,
        event_id,
    )
    if row is None:
        raise NotFound(f"no webhook event {event_id}", message_fr="Événement introuvable.")
    return _delivery(row)


# --- the delivery worker ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DueEvent:
    """An event to deliver now, with what signing and rendering it needs."""

    id: UUID
    account_id: UUID
    send_id: UUID | None
    type: str
    sequence: int
    occurred_at: datetime
    object: dict[str, Any]
    url: str
    target: str
    body: str | None
    tries: int
    queued_at: datetime
    secret: str


async def claim_due(db: Executor, *, limit: int, lease_s: float) -> list[DueEvent]:
    """Events due now, each leased for ``lease_s`` (another engine skips it; a crash mid-try retries it
    after the lease: at-least-once). SKIP LOCKED: several engines share the outbox."""
    rows = await db.fetch(
        "WITH due AS (SELECT id FROM webhook_events WHERE status = 'pending' "
        "AND next_at <= clock_timestamp() ORDER BY next_at LIMIT $1 FOR UPDATE SKIP LOCKED) "
        "UPDATE webhook_events e SET next_at = clock_timestamp() + make_interval(secs => $2) FROM due "
        "WHERE e.id = due.id RETURNING e.id, e.account_id, e.send_id, e.type, e.sequence, e.occurred_at, "
        "e.object, e.url, e.target, e.body, e.tries, e.queued_at, "
        "(SELECT s.secret FROM webhook_settings s WHERE s.account_id = e.account_id) AS secret",
        limit,
        lease_s,
    )
    return [
        DueEvent(
            id=r["id"],
            account_id=r["account_id"],
            send_id=r["send_id"],
            type=r["type"],
            sequence=r["sequence"],
            occurred_at=r["occurred_at"],
            object=json.loads(r["object"]),
            url=r["url"],
            target=r["target"],
            body=r["body"],
            tries=r["tries"],
            queued_at=r["queued_at"],
            secret=r["secret"] or "",
        )
        for r in rows
    ]


async def save_body(db: Executor, event_id: UUID, body: str) -> None:
    await db.execute("UPDATE webhook_events SET body = $2 WHERE id = $1 AND body IS NULL", event_id, body)


async def record_try(
    db: Executor,
    event_id: UUID,
    *,
    status: int | None,
    error: str | None,
    latency_ms: int,
    outcome: str,
    retry_in_s: float | None = None,
) -> None:
    """One try's answer; ``outcome``: delivered, pending (again in ``retry_in_s``), failed, dropped."""
    async with in_transaction(db) as conn:
        await conn.execute(
            "INSERT INTO webhook_deliveries (event_id, status, error, latency_ms) VALUES ($1, $2, $3, $4)",
            event_id,
            status,
            error,
            latency_ms,
        )
        await conn.execute(
            "UPDATE webhook_events SET status = $2, tries = tries + 1, last_status = $3, last_error = $4, "
            "last_latency_ms = $5, "
            "delivered_at = CASE WHEN $2 = 'delivered' THEN clock_timestamp() ELSE delivered_at END, "
            "next_at = CASE WHEN $2 = 'pending' THEN clock_timestamp() + make_interval(secs => $6) "
            "ELSE next_at END WHERE id = $1",
            event_id,
            outcome,
            status,
            error,
            latency_ms,
            retry_in_s or 0.0,
        )


async def disable_endpoint(db: Executor, event: DueEvent, reason: str) -> str | None:
    """The endpoint of ``event`` answered 410: disable it (if it is still that URL), drop the events still
    waiting for it. Returns the account's e-mail when the endpoint was enabled until now (tell them once)."""
    async with in_transaction(db) as conn:
        if event.target == "send":
            changed = await conn.fetchval(
                "UPDATE send_webhooks SET disabled_at = now(), disabled_reason = $3 WHERE send_id = $1 "
                "AND url = $2 AND disabled_at IS NULL RETURNING send_id",
                event.send_id,
                event.url,
                reason,
            )
        else:
            changed = await conn.fetchval(
                "UPDATE webhook_settings SET disabled_at = now(), disabled_reason = $3 WHERE account_id = $1 "
                "AND url = $2 AND disabled_at IS NULL RETURNING account_id",
                event.account_id,
                event.url,
                reason,
            )
        await conn.execute(
            "UPDATE webhook_events SET status = 'dropped', last_error = $3 "
            "WHERE account_id = $1 AND url = $2 AND status = 'pending' AND id <> $4",
            event.account_id,
            event.url,
            "endpoint disabled (410)",
            event.id,
        )
        if changed is None:
            return None
        email: str | None = await conn.fetchval("SELECT email FROM accounts WHERE id = $1", event.account_id)
        return email


# --- the completion e-mail ----------------------------------------------------------------------------------
async def completion_email(db: Executor, account_id: UUID) -> bool:
    value = await db.fetchval(
        "SELECT completion_email FROM account_notifications WHERE account_id = $1", account_id
    )
    return bool(value)


async def set_completion_email(db: Executor, account_id: UUID, on: bool) -> None:
    await db.execute(
        "INSERT INTO account_notifications (account_id, completion_email) VALUES ($1, $2) "
        "ON CONFLICT (account_id) DO UPDATE SET completion_email = EXCLUDED.completion_email",
        account_id,
        on,
    )


@dataclass(frozen=True, slots=True)
class DueMail:
    send_id: UUID
    account_id: UUID
    tries: int


async def claim_completion_emails(db: Executor, *, limit: int, lease_s: float) -> list[DueMail]:
    rows = await db.fetch(
        "WITH due AS (SELECT send_id FROM completion_emails WHERE status = 'pending' "
        "AND next_at <= clock_timestamp() ORDER BY next_at LIMIT $1 FOR UPDATE SKIP LOCKED) "
        "UPDATE completion_emails c SET next_at = clock_timestamp() + make_interval(secs => $2) FROM due "
        "WHERE c.send_id = due.send_id RETURNING c.send_id, c.account_id, c.tries",
        limit,
        lease_s,
    )
    return [DueMail(r["send_id"], r["account_id"], r["tries"]) for r in rows]


async def record_completion_email(db: Executor, send_id: UUID, *, status: str, retry_in_s: float = 0) -> None:
    """``status``: sent, failed (given up), or pending (again in ``retry_in_s``)."""
    await db.execute(
        "UPDATE completion_emails SET status = $2, tries = tries + 1, "
        "sent_at = CASE WHEN $2 = 'sent' THEN clock_timestamp() END, "
        "next_at = clock_timestamp() + make_interval(secs => $3) WHERE send_id = $1",
        send_id,
        status,
        retry_in_s,
    )


async def purge(db: Executor, *, older_than_days: int) -> int:
    """Forget finished events (delivered, failed, dropped: their tries go with them) and sent completion
    e-mails older than that; pending events stay whatever their age. Returns how many events went."""
    async with in_transaction(db) as conn:
        status = await conn.execute(
            "DELETE FROM webhook_events WHERE status <> 'pending' "
            "AND occurred_at < clock_timestamp() - make_interval(days => $1)",
            older_than_days,
        )
        await conn.execute(
            "DELETE FROM completion_emails WHERE status <> 'pending' "
            "AND next_at < clock_timestamp() - make_interval(days => $1)",
            older_than_days,
        )
    return int(status.rsplit(" ", 1)[1])
