"""Sends and their recipients: creation, progress, operator actions, credits settlement, and the sends the
dialer starts, runs and completes (its claims and the attempts' results: engine.store.attempts)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import structlog

from engine.domain.outcomes import Outcome
from engine.domain.retries import RetryPolicy
from engine.domain.sends import Progress, Send, SendCounters, SendSpec, SendStatus, transition
from engine.errors import NotFound
from engine.store import credits
from engine.store.db import Executor, in_transaction

log = structlog.get_logger(__name__)


_SEND_COLUMNS = (
    "id, account_id, message_id, greeting_message_id, transfer_number, sender_e164, comment, origin, status, "
    "start_at, deferred, extra_attempts, retry_interval_s, voicemail_drop, demo, recipients_total, "
    "credits_held, credits_used, code, created_at, started_at, ended_at, purpose, stop_listed_skipped"
)


def _send(row: asyncpg.Record) -> Send:
    return Send(
        id=row["id"],
        account_id=row["account_id"],
        message_id=row["message_id"],
        greeting_message_id=row["greeting_message_id"],
        transfer_number=row["transfer_number"],
        sender_e164=row["sender_e164"],
        comment=row["comment"],
        origin=row["origin"],
        status=SendStatus(row["status"]),
        start_at=row["start_at"],
        deferred=row["deferred"],
        retry=RetryPolicy(extra_attempts=row["extra_attempts"], interval_s=float(row["retry_interval_s"])),
        voicemail_drop=row["voicemail_drop"],
        demo=row["demo"],
        recipients_total=row["recipients_total"],
        credits_held=row["credits_held"],
        credits_used=row["credits_used"],
        code=row["code"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        purpose=row["purpose"],
        stop_listed_skipped=row["stop_listed_skipped"],
    )


# --- creation --------------------------------------------------------------------------------------------
async def insert_send(db: Executor, spec: SendSpec, *, code: str | None = None) -> Send:
    """Store a send, its recipients and the credits it reserves, all or nothing.

    Raises InsufficientCredits (nothing stored) when the balance cannot cover one credit per number.
    With an idempotency key already used by the account, returns that earlier send instead.
    """
    now = datetime.now(UTC)
    start_at = spec.start_at or now
    send_id = uuid.uuid4()
    async with in_transaction(db) as conn:
        row = await conn.fetchrow(
            "INSERT INTO sends (id, account_id, message_id, greeting_message_id, transfer_number, "  # noqa: S608
            "sender_e164, "
            "comment, origin, status, start_at, deferred, extra_attempts, retry_interval_s, "
            "voicemail_drop, demo, "
            "recipients_total, credits_held, idempotency_key, code, started_at, purpose, "
            "stop_listed_skipped) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$16,$17,$18,$19,$20,$21) "
            # A concurrent request with the same idempotency key: wait for it, then answer with its send.
            "ON CONFLICT (account_id, idempotency_key) DO NOTHING "
            f"RETURNING {_SEND_COLUMNS}",
            send_id,
            spec.account_id,
            spec.message_id,
            spec.greeting_message_id,
            spec.transfer_number,
            spec.sender_e164,
            spec.comment,
            spec.origin,
            SendStatus.scheduled if spec.start_at is not None and spec.start_at > now else SendStatus.running,
            start_at,
            spec.start_at is not None,
            spec.retry.extra_attempts,
            round(spec.retry.interval_s),
            spec.voicemail_drop,
            spec.demo,
            len(spec.targets),
            spec.idempotency_key,
            code,
            None if spec.start_at is not None and spec.start_at > now else now,
            spec.purpose,
            spec.stop_listed_skipped,
        )
        if row is None:
            existing = await send_by_key(conn, spec.account_id, str(spec.idempotency_key))
            if existing is None:
                raise RuntimeError("idempotency conflict without an existing send")
            return existing
        await credits.reserve(
            conn, spec.account_id, send_id, len(spec.targets), reason=f"envoi {str(send_id)[:8]}"
        )
        await conn.copy_records_to_table(
            "send_recipients",
            records=[(send_id, t.number.e164, t.number.is_mobile, t.contact_id) for t in spec.targets],
            columns=["send_id", "e164", "is_mobile", "contact_id"],
        )
        return _send(row)


async def send_by_key(db: Executor, account_id: UUID, key: str) -> Send | None:
    """The account's send created with idempotency key ``key``, else None."""
    row = await db.fetchrow(
        f"SELECT {_SEND_COLUMNS} FROM sends WHERE account_id = $1 AND idempotency_key = $2",  # noqa: S608
        account_id,
        key,
    )
    return None if row is None else _send(row)


# --- reading ----------------------------------------------------------------------------------------------
async def scheduled_matching(
    db: Executor, account_id: UUID, message_id: UUID, at: datetime, numbers: Sequence[str]
) -> list[UUID]:
    """The account's scheduled sends of ``message_id`` starting at ``at`` whose recipients include
    every one of ``numbers`` (http.php's cancellation: `diff` followed by `s`)."""
    rows = await db.fetch(
        "SELECT s.id FROM sends s WHERE s.account_id = $1 AND s.message_id = $2 AND s.status = 'scheduled' "
        "AND s.start_at = $3 AND (SELECT count(*) FROM send_recipients r WHERE r.send_id = s.id "
        "AND r.e164 = ANY($4::text[])) = $5",
        account_id,
        message_id,
        at,
        list(numbers),
        len(numbers),
    )
    return [row["id"] for row in rows]


async def get_send(db: Executor, send_id: UUID, *, account_id: UUID | None = None) -> Send:
    """A send; with ``account_id``, only that account's (another account's send is NotFound)."""
    row = await db.fetchrow(
        f"SELECT {_SEND_COLUMNS} FROM sends WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2)",  # noqa: S608
        send_id,
        account_id,
    )
    if row is None:
        raise NotFound(f"no send {send_id}", message_fr="Envoi introuvable.")
    return _send(row)


async def list_sends(
    db: Executor, account_id: UUID, *, limit: int = 50, before: datetime | None = None
) -> list[Send]:
    rows = await db.fetch(
        f"SELECT {_SEND_COLUMNS} FROM sends WHERE account_id = $1 AND ($3::timestamptz IS NULL OR "  # noqa: S608
        "created_at < $3) "
        "ORDER BY created_at DESC LIMIT $2",
        account_id,
        limit,
        before,
    )
    return [_send(r) for r in rows]


async def progress(db: Executor, send_id: UUID) -> Progress:
    row = await db.fetchrow(
        "SELECT count(*) AS total, count(*) FILTER (WHERE state = 'done') AS done, "
        "count(*) FILTER (WHERE state = 'calling') AS calling, count(*) FILTER (WHERE state = 'pending') "
        "AS pending, "
        "count(*) FILTER (WHERE state = 'cancelled') AS cancelled, coalesce(sum(attempts), 0) AS attempts "
        "FROM send_recipients WHERE send_id = $1",
        send_id,
    )
    outcomes = await db.fetch(
        "SELECT outcome, count(*) AS n FROM send_recipients WHERE send_id = $1 AND state = 'done' GROUP BY "
        "outcome",
        send_id,
    )
    used = await db.fetchval("SELECT credits_used FROM sends WHERE id = $1", send_id)
    if row is None or used is None:
        raise NotFound(f"no send {send_id}")
    return Progress(
        total=row["total"],
        done=row["done"],
        calling=row["calling"],
        pending=row["pending"],
        cancelled=row["cancelled"],
        attempts=row["attempts"],
        credits_used=used,
        outcomes={r["outcome"]: r["n"] for r in outcomes},
    )


async def outcomes_of(db: Executor, send_ids: Sequence[UUID]) -> dict[UUID, dict[str, int]]:
    """Final outcomes per send, for a page of sends in one query ({} for a send with none yet)."""
    rows = await db.fetch(
        "SELECT send_id, outcome, count(*) AS n FROM send_recipients WHERE send_id = ANY($1::uuid[]) "
        "AND state = 'done' GROUP BY send_id, outcome",
        list(send_ids),
    )
    outcomes: dict[UUID, dict[str, int]] = {send_id: {} for send_id in send_ids}
    for r in rows:
        outcomes[r["send_id"]][r["outcome"]] = r["n"]
    return outcomes


async def recipients(
    db: Executor, send_id: UUID, *, limit: int = 1000, after_id: int = 0
) -> list[dict[str, Any]]:
    """Per recipient: its final outcome and every attempt (keyset pages by recipient id)."""
    rows = await db.fetch(
        "SELECT r.id, r.e164, r.state, r.outcome, r.attempts, r.final_at, r.wait_reason, r.next_attempt_at, "
        "coalesce(json_agg(json_build_object('id', a.id, 'attempt_no', a.attempt_no, 'trunk', a.trunk, "
        "'outcome', a.outcome, 'cause', a.cause, 'sip_code', a.sip_code, 'created_at', a.created_at, "
        "'ended_at', a.ended_at, 'ring_s', a.ring_s, 'talk_s', a.talk_s, 'transfer_outcome', "
        "a.transfer_outcome, "
        "'transfer_s', a.transfer_s, 'transfer_credits', a.transfer_credits, 'demo', a.demo) "
        "ORDER BY a.created_at) FILTER (WHERE a.id IS NOT NULL), "
        "'[]') AS attempts_detail "
        "FROM send_recipients r LEFT JOIN attempts a ON a.recipient_id = r.id "
        "WHERE r.send_id = $1 AND r.id > $3 GROUP BY r.id ORDER BY r.id LIMIT $2",
        send_id,
        limit,
        after_id,
    )
    return [dict(r) for r in rows]


async def unfinished(db: Executor, account_id: UUID, *, limit: int = 20) -> list[Send]:
    """The account's scheduled, running and paused sends, newest first (sends_account_unfinished)."""
    rows = await db.fetch(
        f"SELECT {_SEND_COLUMNS} FROM sends WHERE account_id = $1 "  # noqa: S608 - constant columns
        "AND status IN ('scheduled', 'running', 'paused') ORDER BY created_at DESC LIMIT $2",
        account_id,
        limit,
    )
    return [_send(r) for r in rows]


async def counters(db: Executor, account_id: UUID, send_ids: Sequence[UUID]) -> list[SendCounters]:
    """The account's sends among ``send_ids`` (others' are left out): one query whatever their size."""
    rows = await db.fetch(
        "SELECT id, status, recipients_total, credits_held, credits_used FROM sends "
        "WHERE account_id = $1 AND id = ANY($2::uuid[])",
        account_id,
        list(send_ids),
    )
    return [
        SendCounters(
            r["id"], SendStatus(r["status"]), r["recipients_total"], r["credits_held"], r["credits_used"]
        )
        for r in rows
    ]


# --- operator actions ----------------------------------------------------------------------------------
async def change_status(db: Executor, send_id: UUID, action: str, *, account_id: UUID | None = None) -> Send:
    """pause, resume or cancel, checked against the current state under a row lock."""
    async with in_transaction(db) as conn:
        row = await conn.fetchrow(
            "SELECT status, account_id FROM sends WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2) "
            "FOR UPDATE",
            send_id,
            account_id,
        )
        if row is None:
            raise NotFound(f"no send {send_id}", message_fr="Envoi introuvable.")
        target = transition(action, SendStatus(row["status"]))
        await conn.execute(
            "UPDATE sends SET status = $2, pause_reason = NULL, "
            "ended_at = CASE WHEN $2 = 'cancelled' THEN now() ELSE ended_at END "
            "WHERE id = $1",
            send_id,
            target.value,
        )
        if target is SendStatus.cancelled:
            cancelled = await conn.fetchval(
                "WITH c AS (UPDATE send_recipients SET state = 'cancelled' WHERE send_id = $1 AND state = "
                "'pending' "
                "RETURNING 1) SELECT count(*) FROM c",
                send_id,
            )
            if cancelled:
                await _release(conn, row["account_id"], send_id, int(cancelled), "envoi annulé")
        return await get_send(conn, send_id)


async def release_held(
    conn: asyncpg.Connection, account_id: UUID, send_id: UUID, count: int, reason: str
) -> None:
    """Release ``count`` credits the send still holds, if it holds them (a completed send released what it
    held when it completed): recipients it will not call (engine/store/attempts.py requeue)."""
    held = await conn.fetchval("SELECT credits_held FROM sends WHERE id = $1", send_id)
    if held:
        await _release(conn, account_id, send_id, min(count, held), reason)


async def _release(
    conn: asyncpg.Connection, account_id: UUID, send_id: UUID, count: int, reason: str
) -> None:
    held = await conn.fetchval(
        "UPDATE sends SET credits_held = credits_held - $2 WHERE id = $1 AND credits_held >= $2 RETURNING "
        "credits_held",
        send_id,
        count,
    )
    if held is None:
        raise RuntimeError(f"send {send_id} cannot release {count} credits")
    await credits.record_movement(
        conn, account_id, kind="release", amount=count, held=-count, reason=reason, send_id=send_id
    )


async def settle(db: Executor, send_id: UUID | None = None) -> int:
    """Move the credits of final outcomes not yet settled: one consume entry (delivered calls) and one
    release entry (the others) per send and batch. Idempotent; returns how many recipients it settled."""
    consuming = [o.value for o in Outcome if o.consumes_credit]
    settled = 0
    sends = (
        [send_id]
        if send_id is not None
        else [
            r["send_id"]
            for r in await db.fetch(
                "SELECT DISTINCT send_id FROM send_recipients WHERE state = 'done' AND NOT settled"
            )
        ]
    )
    for sid in sends:
        try:
            settled += await _settle_send(db, sid, consuming)
        except SettlementMismatch as exc:
            # Never let one send's inconsistent books stop the others from settling and completing.
            log.error("send.settlement_refused", send_id=str(sid), error=str(exc))
    return settled


class SettlementMismatch(RuntimeError):
    """A send holds fewer credits than the final outcomes it has to settle: nothing of it is settled."""


async def _settle_send(db: Executor, sid: UUID, consuming: list[str]) -> int:
    """Settle one send's unsettled final outcomes in one transaction; how many it settled."""
    async with in_transaction(db) as conn:
        account_id = await conn.fetchval("SELECT account_id FROM sends WHERE id = $1", sid)
        row = await conn.fetchrow(
            "WITH s AS (UPDATE send_recipients SET settled = true WHERE send_id = $1 AND state = 'done' "
            "AND NOT settled RETURNING outcome) SELECT count(*) FILTER (WHERE outcome = ANY($2::text[])) "
            "AS used, count(*) AS n FROM s",
            sid,
            consuming,
        )
        if account_id is None or row is None or not row["n"]:
            return 0
        used, freed = row["used"], row["n"] - row["used"]
        held = await conn.fetchval(
            "UPDATE sends SET credits_held = credits_held - $2, credits_used = credits_used + $3 "
            "WHERE id = $1 AND credits_held >= $2 RETURNING credits_held",
            sid,
            row["n"],
            used,
        )
        if held is None:
            raise SettlementMismatch(f"send {sid} holds fewer credits than its {row['n']} final outcomes")
        if used:
            reason = "appel délivré" if used == 1 else f"{used} appels délivrés"
            await credits.record_movement(
                conn, account_id, kind="consume", amount=0, held=-used, reason=reason, send_id=sid
            )
        if freed:
            reason = "appel non délivré" if freed == 1 else f"{freed} appels non délivrés"
            await credits.record_movement(
                conn, account_id, kind="release", amount=freed, held=-freed, reason=reason, send_id=sid
            )
        return int(row["n"])


# --- the dialer's work ------------------------------------------------------------------------------------
async def start_due(db: Executor, now: datetime) -> list[UUID]:
    """Deferred sends whose time has come (or passed while the engine was down) start now."""
    rows = await db.fetch(
        "UPDATE sends SET status = 'running', started_at = $1 WHERE status = 'scheduled' AND start_at <= $1 "
        "RETURNING id",
        now,
    )
    return [r["id"] for r in rows]


async def next_start(db: Executor) -> datetime | None:
    value: datetime | None = await db.fetchval("SELECT min(start_at) FROM sends WHERE status = 'scheduled'")
    return value


@dataclass(frozen=True, slots=True)
class RunnableSend:
    id: UUID
    in_flight: int
    last_claim_at: datetime | None
    account_id: UUID | None = None
    commercial: bool = False  # its claims go through the law's gate (engine/services/dialing/lawgate.py)
    presented: str | None = None  # the number it presents: only trunks accepting it carry its calls
    daily_cap: int = 0  # its account's daily spending cap (its own, else the setting's; 0: none)


async def runnable_sends(db: Executor, now: datetime, *, default_cap: int = 0) -> list[RunnableSend]:
    """Running sends with a recipient due now, the least served first (fairness between sends), with
    their account's daily cap (``default_cap``: the setting's): read here, an account without one costs
    the dialer no query before each claim."""
    rows = await db.fetch(
        "SELECT s.id, s.last_claim_at, s.account_id, s.purpose = 'commercial' AS commercial, s.sender_e164, "
        "(SELECT count(*) FROM send_recipients c WHERE c.send_id = s.id AND c.state = 'calling') AS "
        "in_flight, coalesce(a.daily_spend_cap, $2) AS daily_cap "
        "FROM sends s LEFT JOIN accounts a ON a.id = s.account_id WHERE s.status = 'running' "
        "AND EXISTS (SELECT 1 FROM send_recipients r "
        "WHERE r.send_id = s.id AND r.state = 'pending' AND r.next_attempt_at <= $1)",
        now,
        default_cap,
    )
    sends = [
        RunnableSend(
            r["id"],
            r["in_flight"],
            r["last_claim_at"],
            r["account_id"],
            r["commercial"],
            r["sender_e164"],
            int(r["daily_cap"] or 0),
        )
        for r in rows
    ]
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(sends, key=lambda s: (s.in_flight, s.last_claim_at or epoch))


async def complete_finished(db: Executor) -> list[UUID]:
    """Running sends with nothing left to call are completed; what they still hold is released."""
    await settle(db)
    rows = await db.fetch(
        # Two NOT EXISTS, each served by its partial index (pending / calling): no scan of a big send.
        "UPDATE sends s SET status = 'completed', ended_at = now() WHERE s.status = 'running' "
        "AND NOT EXISTS (SELECT 1 FROM send_recipients r WHERE r.send_id = s.id AND r.state = 'pending') "
        "AND NOT EXISTS (SELECT 1 FROM send_recipients r WHERE r.send_id = s.id AND r.state = 'calling') "
        "RETURNING s.id, s.account_id",
    )
    for row in rows:
        # Outcomes recorded since the settlement above are settled first: only what no recipient
        # accounts for is given back here (normally nothing).
        await settle(db, row["id"])
        async with in_transaction(db) as conn:
            held = await conn.fetchval("SELECT credits_held FROM sends WHERE id = $1 FOR UPDATE", row["id"])
            if held:
                await _release(conn, row["account_id"], row["id"], held, "fin de l'envoi")
    return [r["id"] for r in rows]


# --- waiting for a trunk ----------------------------------------------------------------------------------
async def mark_waiting(
    db: Executor, routable: str | None, wait_max_s: float, *, presented: str | None = None
) -> tuple[int, int]:
    """Explain, and bound, the waits of due recipients of running sends presenting ``presented`` (None:
    hidden) that no healthy trunk may carry: ``routable`` is the regex of the numbers some healthy trunk
    accepting that presented number carries ('' for every number, None for none). A recipient that no
    trunk may carry waits (wait_reason 'no_route', since when it started); one that waited longer than
    ``wait_max_s`` ends as congestion (no attempt was used); one a trunk may carry again is no longer said
    to wait. Returns (waiting, ended)."""
    async with in_transaction(db) as conn:
        await conn.execute(
            "UPDATE send_recipients r SET wait_reason = NULL, trunk_wait_since = NULL FROM sends s "
            "WHERE s.id = r.send_id AND s.status = 'running' AND r.state = 'pending' "
            "AND s.sender_e164 IS NOT DISTINCT FROM $2 "
            "AND r.wait_reason = 'no_route' AND $1::text IS NOT NULL AND ($1 = '' OR r.e164 ~ $1)",
            routable,
            presented,
        )
        waiting = await conn.fetchval(
            "WITH w AS (UPDATE send_recipients r SET wait_reason = 'no_route', "
            "trunk_wait_since = coalesce(r.trunk_wait_since, now()) FROM sends s "
            "WHERE s.id = r.send_id AND s.status = 'running' AND r.state = 'pending' "
            "AND s.sender_e164 IS NOT DISTINCT FROM $2 "
            "AND r.next_attempt_at <= now() AND ($1::text IS NULL OR ($1 <> '' AND r.e164 !~ $1)) "
            "AND r.wait_reason IS DISTINCT FROM 'no_route' RETURNING 1) SELECT count(*) FROM w",
            routable,
            presented,
        )
        ended = await conn.fetchval(
            "WITH e AS (UPDATE send_recipients r SET state = 'done', outcome = 'congestion', "
            "final_at = now(), settled = false FROM sends s WHERE s.id = r.send_id AND s.status = 'running' "
            "AND s.sender_e164 IS NOT DISTINCT FROM $2 "
            "AND r.state = 'pending' AND r.wait_reason IS NOT NULL "
            "AND r.trunk_wait_since + make_interval(secs => $1) <= now() RETURNING 1) SELECT count(*) FROM e",
            wait_max_s,
            presented,
        )
    return int(waiting), int(ended)


async def presented_numbers(db: Executor) -> list[str | None]:
    """The numbers the running sends present (None: those hiding theirs)."""
    rows = await db.fetch("SELECT DISTINCT sender_e164 FROM sends WHERE status = 'running'")
    return [r["sender_e164"] for r in rows]


async def pause_for_no_trunk(db: Executor) -> list[UUID]:
    """Every running send paused by the engine itself: no trunk is configured at all."""
    rows = await db.fetch(
        "UPDATE sends SET status = 'paused', pause_reason = 'no_trunk' WHERE status = 'running' RETURNING id"
    )
    return [r["id"] for r in rows]


async def resume_after_no_trunk(db: Executor) -> list[UUID]:
    """The sends the engine paused for want of a trunk, running again (a customer's pause stays)."""
    rows = await db.fetch(
        "UPDATE sends SET status = 'running', pause_reason = NULL WHERE status = 'paused' "
        "AND pause_reason = 'no_trunk' RETURNING id"
    )
    return [r["id"] for r in rows]
