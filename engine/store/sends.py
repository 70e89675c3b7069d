"""Sends, recipients and attempts: every query of the dialer, and the progress the API and UI show."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

import asyncpg

from engine.domain.callflow import CallResult
from engine.domain.outcomes import Outcome
from engine.domain.retries import RetryPolicy, next_attempt
from engine.domain.sends import Progress, SendSpec, SendStatus, transition
from engine.errors import NotFound
from engine.store import accounts as accounts_store
from engine.store.accounts import Executor, in_transaction
from engine.store.db import Database


@dataclass(frozen=True, slots=True)
class Send:
    id: UUID
    account_id: UUID
    message_id: UUID
    greeting_message_id: UUID | None
    transfer_number: str | None
    sender_e164: str | None
    comment: str
    origin: str
    status: SendStatus
    start_at: datetime
    deferred: bool
    retry: RetryPolicy
    voicemail_drop: bool
    demo: bool
    recipients_total: int
    credits_held: int
    credits_used: int
    code: str | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


_SEND_COLUMNS = (
    "id, account_id, message_id, greeting_message_id, transfer_number, sender_e164, comment, origin, status, "
    "start_at, deferred, extra_attempts, retry_interval_s, voicemail_drop, demo, recipients_total, "
    "credits_held, credits_used, code, created_at, started_at, ended_at"
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
            "recipients_total, credits_held, idempotency_key, code, started_at) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$16,$17,$18,$19) "
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
        )
        if row is None:
            existing = await send_by_key(conn, spec.account_id, str(spec.idempotency_key))
            if existing is None:
                raise RuntimeError("idempotency conflict without an existing send")
            return existing
        await accounts_store.reserve(
            conn, spec.account_id, send_id, len(spec.targets), reason=f"envoi {str(send_id)[:8]}"
        )
        await conn.copy_records_to_table(
            "send_recipients",
            records=[(send_id, t.number.e164, t.number.is_mobile, t.contact_id) for t in spec.targets],
            columns=["send_id", "e164", "is_mobile", "contact_id"],
        )
        return _send(row)


# Idempotency keys are per account (UNIQUE (account_id, idempotency_key) in sql/0005).
IDEMPOTENCY_KEY_MAX_LENGTH: Final = 200


async def send_by_key(db: Executor, account_id: UUID, key: str) -> Send | None:
    """The account's send created with idempotency key ``key``, else None."""
    row = await db.fetchrow(
        f"SELECT {_SEND_COLUMNS} FROM sends WHERE account_id = $1 AND idempotency_key = $2",  # noqa: S608
        account_id,
        key,
    )
    return None if row is None else _send(row)


# --- reading -----------------------------------------------------------------------------------------------
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
        "SELECT r.id, r.e164, r.state, r.outcome, r.attempts, r.final_at, "
        "coalesce(json_agg(json_build_object('id', a.id, 'attempt_no', a.attempt_no, 'trunk', a.trunk, "
        "'outcome', a.outcome, 'cause', a.cause, 'sip_code', a.sip_code, 'created_at', a.created_at, "
        "'ended_at', a.ended_at, 'ring_s', a.ring_s, 'talk_s', a.talk_s, 'transfer_outcome', "
        "a.transfer_outcome, "
        "'transfer_s', a.transfer_s, 'demo', a.demo) ORDER BY a.created_at) FILTER (WHERE a.id IS NOT NULL), "
        "'[]') AS attempts_detail "
        "FROM send_recipients r LEFT JOIN attempts a ON a.recipient_id = r.id "
        "WHERE r.send_id = $1 AND r.id > $3 GROUP BY r.id ORDER BY r.id LIMIT $2",
        send_id,
        limit,
        after_id,
    )
    return [dict(r) for r in rows]


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
            "UPDATE sends SET status = $2, ended_at = CASE WHEN $2 = 'cancelled' THEN now() ELSE ended_at "
            "END "
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
    await accounts_store.record_movement(
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
                continue
            used, freed = row["used"], row["n"] - row["used"]
            held = await conn.fetchval(
                "UPDATE sends SET credits_held = credits_held - $2, credits_used = credits_used + $3 "
                "WHERE id = $1 AND credits_held >= $2 RETURNING credits_held",
                sid,
                row["n"],
                used,
            )
            if held is None:
                raise RuntimeError(f"send {sid} holds fewer credits than its {row['n']} settled recipients")
            if used:
                reason = "appel délivré" if used == 1 else f"{used} appels délivrés"
                await accounts_store.record_movement(
                    conn, account_id, kind="consume", amount=0, held=-used, reason=reason, send_id=sid
                )
            if freed:
                reason = "appel non délivré" if freed == 1 else f"{freed} appels non délivrés"
                await accounts_store.record_movement(
                    conn, account_id, kind="release", amount=freed, held=-freed, reason=reason, send_id=sid
                )
            settled += row["n"]
    return settled


# --- the dialer's work -------------------------------------------------------------------------------------
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


async def runnable_sends(db: Executor, now: datetime) -> list[RunnableSend]:
    """Running sends with a recipient due now, the least served first (fairness between sends)."""
    rows = await db.fetch(
        "SELECT s.id, s.last_claim_at, "
        "(SELECT count(*) FROM send_recipients c WHERE c.send_id = s.id AND c.state = 'calling') AS "
        "in_flight "
        "FROM sends s WHERE s.status = 'running' AND EXISTS (SELECT 1 FROM send_recipients r "
        "WHERE r.send_id = s.id AND r.state = 'pending' AND r.next_attempt_at <= $1)",
        now,
    )
    sends = [RunnableSend(r["id"], r["in_flight"], r["last_claim_at"]) for r in rows]
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(sends, key=lambda s: (s.in_flight, s.last_claim_at or epoch))


# One statement, one round trip (it runs for every few calls): lock the send, take its due recipients,
# mark them calling and insert their attempt rows, the n-th recipient with the n-th attempt id and
# trunk. The send's FOR KEY SHARE waits for a pause or cancel in progress (they lock the row FOR
# UPDATE), and its status is checked again after the wait, so no call is claimed from a send paused or
# cancelled a moment ago; it does not wait behind other claims or credit settlements, which only take
# NO KEY UPDATE locks. SKIP LOCKED: several engines share the recipients without waiting.
_CLAIM: Final = (
    "WITH send AS (SELECT id FROM sends WHERE id = $1 AND status = 'running' FOR KEY SHARE), "
    "due AS (SELECT r.id, r.next_attempt_at FROM send_recipients r WHERE r.send_id = (SELECT id FROM send) "
    "AND r.state = 'pending' AND r.next_attempt_at <= $2 ORDER BY r.next_attempt_at, r.id LIMIT $3 "
    "FOR UPDATE SKIP LOCKED), "
    "numbered AS (SELECT id, row_number() OVER (ORDER BY next_attempt_at, id) AS n FROM due), "
    "calling AS (UPDATE send_recipients r SET state = 'calling', attempts = r.attempts + 1 "
    "FROM numbered d WHERE r.id = d.id RETURNING r.id, r.e164, r.attempts, d.n), "
    "inserted AS (INSERT INTO attempts "
    "(id, send_id, recipient_id, attempt_no, node, app, trunk, state, demo) "
    "SELECT t.attempt_id, $1, c.id, c.attempts, $6, $7, t.trunk, 'originating', $8 FROM calling c "
    "JOIN unnest($4::uuid[], $5::text[]) WITH ORDINALITY AS t(attempt_id, trunk, n) ON t.n = c.n "
    "RETURNING id, recipient_id, attempt_no, trunk) "
    "SELECT i.id, i.recipient_id, c.e164, i.attempt_no, i.trunk FROM inserted i "
    "JOIN calling c ON c.id = i.recipient_id ORDER BY c.n"
)


@dataclass(frozen=True, slots=True)
class Claim:
    """A recipient taken for one attempt; its attempt row is already committed."""

    attempt_id: UUID
    send_id: UUID
    recipient_id: int
    e164: str
    attempt_no: int
    trunk: str


async def claim(
    db: Database, send_id: UUID, trunks: list[str], *, node: str, app: str, demo: bool, now: datetime
) -> list[Claim]:
    """Take up to len(trunks) due recipients of a send (row locks, SKIP LOCKED: several engines share the
    work), and commit one attempt row per recipient BEFORE any originate: a crash after this point
    can only lead to reconciling that attempt, never to calling the number again blindly."""
    if not trunks:
        return []
    attempt_ids = [uuid.uuid4() for _ in trunks]
    rows = await db.fetch(_CLAIM, send_id, now, len(trunks), attempt_ids, trunks, node, app, demo)
    if not rows:
        return []
    claims = [
        Claim(r["id"], send_id, r["recipient_id"], r["e164"], r["attempt_no"], r["trunk"]) for r in rows
    ]
    # Outside the claim's statement: fairness only needs it roughly right, and no claim should wait for it.
    await db.execute("UPDATE sends SET last_claim_at = $2 WHERE id = $1", send_id, now)
    return claims


async def failover_attempt(
    db: Database, previous: Claim, trunk: str, *, node: str, app: str, demo: bool
) -> Claim:
    """The same attempt moved to another trunk (the first refused it before any ringing)."""
    claim_ = Claim(
        uuid.uuid4(), previous.send_id, previous.recipient_id, previous.e164, previous.attempt_no, trunk
    )
    await db.execute(
        "INSERT INTO attempts (id, send_id, recipient_id, attempt_no, failover_of, node, app, trunk, "
        "state, demo) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'originating', $9)",
        claim_.attempt_id,
        claim_.send_id,
        claim_.recipient_id,
        claim_.attempt_no,
        previous.attempt_id,
        node,
        app,
        trunk,
        demo,
    )
    return claim_


# One statement for a batch of results (the calls that ended while the previous batch was written): end
# each attempt (unless a reconciliation did already), then move its recipient, still calling, to its next
# state: 'done' with this outcome when no attempt follows (next_at NULL) or the send was cancelled
# meanwhile, else back to 'pending' at next_at. A failover's previous attempt (move false) leaves its
# recipient alone. FOR UPDATE OF r, in id order: a concurrent change of a recipient is waited for and
# its new state checked.
_RECORD: Final = (
    "WITH v AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::int[], $6::text[], "
    "$7::timestamptz[], $8::timestamptz[], $9::float8[], $10::float8[], $11::text[], $12::float8[], "
    "$13::text[], $14::bigint[], $15::boolean[], $16::timestamptz[]) AS v(attempt_id, outcome, end_reason, "
    "cause, sip_code, dialstatus, answered_at, ended_at, ring_s, talk_s, transfer_outcome, transfer_s, "
    "reconciled, recipient_id, move, next_at)), "
    "ended AS (UPDATE attempts a SET state = 'ended', outcome = v.outcome, end_reason = v.end_reason, "
    "cause = v.cause, sip_code = v.sip_code, dialstatus = v.dialstatus, answered_at = v.answered_at, "
    "ended_at = v.ended_at, ring_s = v.ring_s, talk_s = v.talk_s, transfer_outcome = v.transfer_outcome, "
    "transfer_s = v.transfer_s, reconciled = v.reconciled FROM v WHERE a.id = v.attempt_id "
    "AND a.state <> 'ended' RETURNING a.id, v.recipient_id, v.move, v.outcome, v.next_at), "
    "recipient AS (SELECT r.id, e.outcome, e.next_at, e.next_at IS NULL OR s.status = 'cancelled' AS final "
    "FROM send_recipients r JOIN ended e ON e.recipient_id = r.id AND e.move "
    "JOIN sends s ON s.id = r.send_id "
    "WHERE r.state = 'calling' ORDER BY r.id FOR UPDATE OF r), "
    "moved AS (UPDATE send_recipients r SET "
    "state = CASE WHEN n.final THEN 'done' ELSE 'pending' END, "
    "outcome = CASE WHEN n.final THEN n.outcome END, "
    "final_at = CASE WHEN n.final THEN now() END, "
    "settled = CASE WHEN n.final THEN false ELSE r.settled END, "
    "next_attempt_at = CASE WHEN n.final THEN r.next_attempt_at ELSE n.next_at END "
    "FROM recipient n WHERE r.id = n.id RETURNING r.id, r.state) "
    "SELECT v.attempt_id, e.id IS NOT NULL AS ended, m.state AS recipient_state FROM v "
    "LEFT JOIN ended e ON e.id = v.attempt_id LEFT JOIN moved m ON m.id = v.recipient_id AND v.move"
)


@dataclass(frozen=True, slots=True)
class Result:
    """An ended attempt's result, to record."""

    claim: Claim
    result: CallResult
    policy: RetryPolicy
    failed_over: bool = False  # moved to another trunk: the recipient stays calling
    reconciled: str | None = None  # how it was learnt while nobody listened: cdr, lost


@dataclass(frozen=True, slots=True)
class Recorded:
    final: bool
    outcome: Outcome


def _ts(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


async def record_results(db: Executor, results: Sequence[Result]) -> list[Recorded]:
    """One statement: each attempt's result and its recipient's next state (retry or final); the credits
    are consumed or released by the next settlement (settle()), in a batch. One result per attempt."""
    attempt_ids = [r.claim.attempt_id for r in results]
    if len(set(attempt_ids)) != len(attempt_ids):
        raise ValueError("one result per attempt in a batch")
    now = time.time()
    columns: list[list[Any]] = [[] for _ in range(16)]
    for item in results:
        result = item.result
        # The attempt being recorded is its recipient's current one (one open attempt per recipient).
        next_at = next_attempt(result.outcome, item.claim.attempt_no, item.policy, now)
        row = (
            item.claim.attempt_id,
            result.outcome.value,
            result.end_reason.value,
            result.cause,
            result.sip_code,
            result.dialstatus,
            _ts(result.answered_at),
            _ts(result.ended_at),
            result.ring_s,
            result.talk_s,
            result.transfer_outcome.value if result.transfer_outcome else None,
            result.transfer_s,
            item.reconciled,
            item.claim.recipient_id,
            not item.failed_over,
            _ts(next_at),
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    rows = {r["attempt_id"]: r for r in await db.fetch(_RECORD, *columns)}
    recorded = []
    for item in results:
        row = rows[item.claim.attempt_id]
        if not row["ended"]:
            final = True  # recorded already (a reconciliation raced the live result)
        elif item.failed_over:
            final = False
        else:
            # None: the recipient was no longer calling (already settled by a reconciliation).
            final = row["recipient_state"] != "pending"
        recorded.append(Recorded(final, item.result.outcome))
    return recorded


async def requeue(db: Executor, claim_: Claim) -> None:
    """Give a claimed recipient back untouched (the call was never placed: no trunk, engine stopping)."""
    async with in_transaction(db) as conn:
        await conn.execute("DELETE FROM attempts WHERE id = $1 AND state = 'originating'", claim_.attempt_id)
        await conn.execute(
            "UPDATE send_recipients SET state = 'pending', attempts = attempts - 1 WHERE id = $1 AND state "
            "= 'calling'",
            claim_.recipient_id,
        )


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


# --- reconciliation -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OpenAttempt:
    claim: Claim
    state: str
    created_at: datetime
    policy: RetryPolicy
    message_duration_s: float


async def open_attempts(db: Executor, node: str) -> list[OpenAttempt]:
    """This node's attempts that have no outcome yet (after a crash, or a websocket gap)."""
    rows = await db.fetch(
        "SELECT a.id, a.send_id, a.recipient_id, a.attempt_no, a.trunk, a.state, a.created_at, r.e164, "
        "s.extra_attempts, s.retry_interval_s, m.duration_s FROM attempts a "
        "JOIN send_recipients r ON r.id = a.recipient_id JOIN sends s ON s.id = a.send_id "
        "JOIN messages m ON m.id = s.message_id WHERE a.node = $1 AND a.state <> 'ended' ORDER BY "
        "a.created_at",
        node,
    )
    return [
        OpenAttempt(
            Claim(r["id"], r["send_id"], r["recipient_id"], r["e164"], r["attempt_no"], r["trunk"]),
            r["state"],
            r["created_at"],
            RetryPolicy(extra_attempts=r["extra_attempts"], interval_s=float(r["retry_interval_s"])),
            r["duration_s"],
        )
        for r in rows
    ]


async def cdr_for(db: Executor, attempt_id: UUID) -> asyncpg.Record | None:
    """Asterisk's record of the attempt's channel (uniqueid = the channel id we chose)."""
    return await db.fetchrow(
        'SELECT disposition, duration, billsec, start, answer, "end" FROM asterisk_cdr WHERE uniqueid = $1 '
        "ORDER BY id LIMIT 1",
        str(attempt_id),
    )
