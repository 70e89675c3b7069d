"""The JSON body of a webhook delivery: the event's envelope around the object as the API shows it —
a send as GET /sends/{id}, a recipient as GET /sends/{id}/recipients, an attempt as one of its ``calls``
(with its recipient's id and number) — rendered with the API's own functions from the state the outbox
row holds (the database row when the event happened, see sql/0017)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from engine.domain.retries import RetryPolicy
from engine.domain.sends import Send, SendStatus
from engine.domain.webhooks import Event
from engine.web.api_common import iso
from engine.web.api_sends import _ATTEMPT_FIELDS, recipient_json, send_json

PROGRESS_FIELDS = ("total", "done", "calling", "pending", "cancelled", "attempts")


def _when(raw: Any) -> datetime | None:
    """A timestamp as PostgreSQL's JSON writes it (ISO 8601 with zone; ±infinity)."""
    if raw is None:
        return None
    if raw == "-infinity":
        return datetime.min.replace(tzinfo=UTC)
    if raw == "infinity":
        return datetime.max.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(raw))


def _required(raw: Any) -> datetime:
    value = _when(raw)
    if value is None:
        raise ValueError("a required timestamp is missing")
    return value


def _uuid(raw: Any) -> UUID | None:
    return None if raw is None else UUID(str(raw))


def send_object(row: dict[str, Any]) -> dict[str, Any]:
    send = Send(
        id=UUID(row["id"]),
        account_id=UUID(row["account_id"]),
        message_id=UUID(row["message_id"]),
        greeting_message_id=_uuid(row.get("greeting_message_id")),
        transfer_number=row.get("transfer_number"),
        sender_e164=row.get("sender_e164"),
        comment=row.get("comment") or "",
        origin=row["origin"],
        status=SendStatus(row["status"]),
        start_at=_required(row["start_at"]),
        deferred=bool(row.get("deferred")),
        retry=RetryPolicy(
            extra_attempts=int(row["extra_attempts"]), interval_s=float(row["retry_interval_s"])
        ),
        voicemail_drop=bool(row.get("voicemail_drop")),
        demo=bool(row.get("demo")),
        recipients_total=int(row["recipients_total"]),
        credits_held=int(row["credits_held"]),
        credits_used=int(row["credits_used"]),
        code=row.get("code"),
        created_at=_required(row["created_at"]),
        started_at=_when(row.get("started_at")),
        ended_at=_when(row.get("ended_at")),
    )
    refs: dict[UUID, int] = {}
    if row.get("message_ref") is not None:
        refs[send.message_id] = int(row["message_ref"])
    if send.greeting_message_id is not None and row.get("greeting_ref") is not None:
        refs[send.greeting_message_id] = int(row["greeting_ref"])
    out = send_json(send, refs)
    progress = row.get("progress") or {}
    out["progress"] = {
        **{name: int(progress.get(name) or 0) for name in PROGRESS_FIELDS},
        "credits_used": send.credits_used,
        "outcomes": dict(progress.get("outcomes") or {}),
        "estimated_end_at": None,
    }
    return out


def recipient_object(row: dict[str, Any]) -> dict[str, Any]:
    return recipient_json(
        {
            **row,
            "final_at": _when(row.get("final_at")),
            "next_attempt_at": _when(row.get("next_attempt_at")),
            "attempts_detail": row.get("attempts_detail") or [],
        }
    )


def attempt_object(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "recipient_id": row["recipient_id"],
        "number": row.get("number"),
        **{name: row.get(name) for name in _ATTEMPT_FIELDS},
    }


def render(event: Event) -> dict[str, Any]:
    """The envelope: stable id, type, per-send sequence number, time (ISO 8601 with zone), the object."""
    data: dict[str, Any]
    if event.type.startswith("send."):
        data = send_object(event.object)
    elif event.type == "recipient.final":
        data = recipient_object(event.object)
    elif event.type == "attempt.final":
        data = attempt_object(event.object)
    else:
        data = dict(event.object)
    return {
        "id": str(event.id),
        "type": event.type,
        "created_at": iso(event.occurred_at),
        "send_id": None if event.send_id is None else str(event.send_id),
        "sequence": event.sequence,
        "data": data,
    }
