"""Attempts: the dialer's claims of due recipients, the results of their calls, and what a restarted
engine reconciles. Every attempt row is committed before its originate request."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

import asyncpg

from engine.domain.areas import area_of
from engine.domain.callevents import CallResult
from engine.domain.commercial import History, legal_cap
from engine.domain.outcomes import Outcome
from engine.domain.retries import LegalCap, RetryPolicy, RetryTiming, decide
from engine.store import commercial as commercial_store
from engine.store import consent as consent_store
from engine.store import sends as sends_store
from engine.store import stoplists
from engine.store.db import Database, Executor, in_transaction

# One statement, one round trip (it runs for every few calls): lock the send, take its due recipients
# class by class (a route class: the slots of trunks that carry the same numbers, and the regex of the
# numbers it takes; the classes never share a number), at most $3 in all, best class first; mark them
# calling, and insert their attempt rows, the n-th recipient of a class with the n-th slot of that class
# (its attempt id and trunk). The send's FOR KEY SHARE waits for a pause or cancel in progress (they lock
# the row FOR UPDATE), and its status is checked again after the wait, so no call is claimed from a send
# paused or cancelled a moment ago; it does not wait behind other claims or credit settlements, which
# only take NO KEY UPDATE locks. SKIP LOCKED: several engines share the recipients without waiting.
# The node's epoch ($13, sql/0021_cluster.sql): its row FOR KEY SHARE, still at that epoch and not
# draining, or nothing is claimed (a takeover raised it: the node was declared dead).
_CLAIM: Final = (
    "WITH me AS (SELECT 1 FROM nodes WHERE name = $9 AND epoch = $13 AND NOT draining FOR KEY SHARE), "
    "send AS (SELECT id FROM sends WHERE id = $1 AND status = 'running' "
    "AND ($13::bigint IS NULL OR EXISTS (SELECT 1 FROM me)) FOR KEY SHARE), "
    "classes AS (SELECT * FROM unnest($4::text[], $5::int[]) WITH ORDINALITY AS c(pattern, slots, class)), "
    "picked AS (SELECT d.id, d.next_attempt_at, c.class FROM classes c CROSS JOIN LATERAL ("
    "SELECT r.id, r.next_attempt_at FROM send_recipients r WHERE r.send_id = (SELECT id FROM send) "
    "AND r.state = 'pending' AND r.next_attempt_at <= $2 AND (c.pattern = '' OR r.e164 ~ c.pattern) "
    "AND ($12::bigint[] IS NULL OR r.id = ANY($12::bigint[])) "
    "ORDER BY r.next_attempt_at, r.id LIMIT c.slots FOR UPDATE SKIP LOCKED) d), "
    "due AS (SELECT DISTINCT ON (id) id, next_attempt_at, class FROM picked ORDER BY id, class), "
    "kept AS (SELECT * FROM due ORDER BY class, next_attempt_at, id LIMIT $3), "
    "numbered AS (SELECT id, class, row_number() OVER (PARTITION BY class ORDER BY next_attempt_at, id) AS n "
    "FROM kept), "
    "calling AS (UPDATE send_recipients r SET state = 'calling', attempts = r.attempts + 1, "
    "wait_reason = NULL FROM numbered d WHERE r.id = d.id RETURNING r.id, r.e164, r.attempts, d.class, d.n), "
    "slots AS (SELECT attempt_id, trunk, class, demo, row_number() OVER (PARTITION BY class ORDER BY o) AS n "
    "FROM unnest($6::uuid[], $7::text[], $8::int[], $11::boolean[]) WITH ORDINALITY "
    "AS s(attempt_id, trunk, class, demo, o)), "
    "inserted AS (INSERT INTO attempts "
    "(id, send_id, recipient_id, attempt_no, node, app, trunk, state, demo) "
    "SELECT s.attempt_id, $1, c.id, c.attempts, $9, $10, s.trunk, 'originating', s.demo FROM calling c "
    "JOIN slots s ON s.class = c.class AND s.n = c.n "
    "RETURNING id, recipient_id, attempt_no, trunk) "
    "SELECT i.id, i.recipient_id, c.e164, i.attempt_no, i.trunk FROM inserted i "
    "JOIN calling c ON c.id = i.recipient_id ORDER BY c.class, c.n"
)


@dataclass(frozen=True, slots=True)
class DialContext:
    """What every call of a send needs, read once per send by the dialer."""

    account_id: UUID
    sender_e164: str | None
    transfer_number: str | None
    retry: RetryPolicy
    voicemail_drop: bool
    demo: bool
    audio_stem: str
    greeting_stem: str | None
    message_duration_s: float
    greeting_duration_s: float | None = None
    purpose: str = "information"
    company_name: str | None = None  # what a commercial call's preamble names (issue 18)
    # Read from the account at dial time, not at the send's creation (issue 17): its own longest transfer
    # (None: the setting's), and whether it may still call abroad.
    account_transfer_max_s: float | None = None
    allow_international: bool = True
    account_max_transfers: int | None = None


async def dial_context(db: Executor, send_id: UUID) -> DialContext | None:
    row = await db.fetchrow(
        "SELECT s.account_id, s.sender_e164, s.transfer_number, s.extra_attempts, s.retry_interval_s, "
        "s.voicemail_drop, s.demo, m.audio_stem, g.audio_stem AS greeting_stem, m.duration_s, "
        "g.duration_s AS greeting_duration_s, s.purpose, a.company_name, "
        "a.transfer_max_s AS account_transfer_max_s, a.allow_international, a.max_transfers "
        "FROM sends s JOIN messages m ON m.id = s.message_id JOIN accounts a ON a.id = s.account_id "
        "LEFT JOIN messages g ON g.id = s.greeting_message_id WHERE s.id = $1",
        send_id,
    )
    if row is None:
        return None
    return DialContext(
        account_id=row["account_id"],
        sender_e164=row["sender_e164"],
        transfer_number=row["transfer_number"],
        retry=RetryPolicy(extra_attempts=row["extra_attempts"], interval_s=float(row["retry_interval_s"])),
        voicemail_drop=row["voicemail_drop"],
        demo=row["demo"],
        audio_stem=row["audio_stem"],
        greeting_stem=row["greeting_stem"],
        message_duration_s=float(row["duration_s"]),
        greeting_duration_s=None if row["greeting_duration_s"] is None else float(row["greeting_duration_s"]),
        purpose=row["purpose"],
        company_name=row["company_name"],
        account_transfer_max_s=(
            None if row["account_transfer_max_s"] is None else float(row["account_transfer_max_s"])
        ),
        allow_international=row["allow_international"],
        account_max_transfers=row["max_transfers"],
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


@dataclass(frozen=True, slots=True)
class Slot:
    """One call the dialer may place now: its trunk, and the route class it belongs to (1-based)."""

    trunk: str
    route_class: int
    demo: bool  # the trunk is the demo trunk: nobody is really called


async def claim(
    db: Executor,
    send_id: UUID,
    classes: Sequence[tuple[str, int]],
    slots: Sequence[Slot],
    *,
    limit: int,
    node: str,
    app: str,
    now: datetime,
    only: Sequence[int] | None = None,
    epoch: int | None = None,
    touch: bool = True,
) -> list[Claim]:
    """Take up to ``limit`` due recipients of a send, each matched to a slot of the first route class whose
    pattern its number matches (``classes``: (regex, slot count), best first), and commit one attempt row
    per recipient BEFORE any originate: a crash after this point can only lead to reconciling that attempt,
    never to calling the number again blindly. (Row locks, SKIP LOCKED: several engines share the work.)
    ``only``: claim none but these recipients (those the law's gate allowed: commercial sends).
    ``epoch``: the node's (engine/store/nodes.py): nothing is claimed once it was raised, or while the
    node drains (None: no node check, for callers outside the dialer). ``touch``: note the claim's time
    on the send (False: the caller does, with ``touch_send``, once its calls are on their way)."""
    if not slots or limit <= 0:
        return []
    rows = await db.fetch(
        _CLAIM,
        send_id,
        now,
        limit,
        [pattern for pattern, _ in classes],
        [count for _, count in classes],
        [uuid.uuid4() for _ in slots],
        [s.trunk for s in slots],
        [s.route_class for s in slots],
        node,
        app,
        [s.demo for s in slots],
        None if only is None else list(only),
        epoch,
    )
    if not rows:
        return []
    claims = [
        Claim(r["id"], send_id, r["recipient_id"], r["e164"], r["attempt_no"], r["trunk"]) for r in rows
    ]
    if touch:
        await touch_send(db, send_id, now)
    return claims


async def touch_send(db: Executor, send_id: UUID, now: datetime) -> None:
    """When the send's recipients were last claimed (fairness between sends)."""
    # Outside the claim's statement: fairness only needs it roughly right, and no claim should wait for it.
    await db.execute("UPDATE sends SET last_claim_at = $2 WHERE id = $1", send_id, now)


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
# recipient alone. An attempt the trunk failed (trunk_failure) gives its recipient back its attempt: it
# waits for a trunk, and ends as congestion only once it has waited longer than wait_max seconds. So does
# an attempt we cut (our_cut: Asterisk or our host failed, see engine/domain/unobserved.py), called again
# at once.
# FOR UPDATE OF r, in id order: a concurrent change of a recipient is waited for and its new state checked.
# FOR KEY SHARE OF s: a cancel in progress (its send FOR UPDATE) is waited for and its status seen, else
# a recipient retried by a result written meanwhile would stay pending in a send nobody calls any more,
# its credit held (the cancel only ends the recipients pending when it runs).
# The writing node ($21, its epoch $22; NULL: no check): it writes only while it holds that epoch (its row
# FOR KEY SHARE, as a claim: a takeover in progress is waited for, and a raised epoch seen) and only the
# attempts that are still its own (a takeover moved them: a row it moved meanwhile is re-checked after the
# wait and left alone). A node fenced after its last in-memory check writes nothing (issue 19).
_RECORD: Final = (
    "WITH me AS (SELECT 1 FROM nodes WHERE name = $21 AND epoch = $22 FOR KEY SHARE), "
    "v AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::int[], $6::text[], "
    "$7::timestamptz[], $8::timestamptz[], $9::float8[], $10::float8[], $11::text[], $12::float8[], "
    "$13::text[], $14::bigint[], $15::boolean[], $16::timestamptz[], $17::boolean[], $18::float8[], "
    "$19::boolean[], $20::text[]) "
    "AS v(attempt_id, outcome, end_reason, cause, sip_code, dialstatus, answered_at, ended_at, ring_s, "
    "talk_s, transfer_outcome, transfer_s, reconciled, recipient_id, move, next_at, trunk_failure, "
    "wait_max, our_cut, cut)), "
    "ended AS (UPDATE attempts a SET state = 'ended', outcome = v.outcome, end_reason = v.end_reason, "
    "cause = v.cause, sip_code = v.sip_code, dialstatus = v.dialstatus, answered_at = v.answered_at, "
    "ended_at = v.ended_at, ring_s = v.ring_s, talk_s = v.talk_s, transfer_outcome = v.transfer_outcome, "
    "transfer_s = v.transfer_s, reconciled = v.reconciled, trunk_failure = v.trunk_failure, cut = v.cut "
    "FROM v WHERE a.id = v.attempt_id AND a.state <> 'ended' "
    "AND ($21::text IS NULL OR (a.node = $21 AND EXISTS (SELECT 1 FROM me))) "
    "RETURNING a.id, v.recipient_id, v.move, v.outcome, v.next_at, v.trunk_failure, v.wait_max, v.our_cut), "
    "recipient AS (SELECT r.id, e.outcome, e.next_at, e.trunk_failure, e.our_cut, "
    "e.next_at IS NULL OR s.status = 'cancelled' OR (e.trunk_failure AND "
    "coalesce(r.trunk_wait_since, now()) + make_interval(secs => e.wait_max) <= now()) AS final "
    "FROM send_recipients r JOIN ended e ON e.recipient_id = r.id AND e.move "
    "JOIN sends s ON s.id = r.send_id "
    "WHERE r.state = 'calling' ORDER BY r.id FOR UPDATE OF r FOR KEY SHARE OF s), "
    "moved AS (UPDATE send_recipients r SET "
    "state = CASE WHEN n.final THEN 'done' ELSE 'pending' END, "
    "outcome = CASE WHEN NOT n.final THEN NULL WHEN n.trunk_failure THEN 'congestion' ELSE n.outcome END, "
    "final_at = CASE WHEN n.final THEN now() END, "
    "settled = CASE WHEN n.final THEN false ELSE r.settled END, "
    "attempts = CASE WHEN n.trunk_failure OR n.our_cut THEN r.attempts - 1 ELSE r.attempts END, "
    "wait_reason = CASE WHEN n.trunk_failure THEN 'trunk_failure' WHEN n.our_cut AND NOT n.final "
    "THEN 'our_cut' END, "
    "trunk_wait_since = CASE WHEN n.trunk_failure THEN coalesce(r.trunk_wait_since, now()) END, "
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
    # The trunk failed the call (not the callee): the recipient gets its attempt back and waits for a
    # trunk until `retry_at` (epoch); after `wait_max_s` of waiting in all, it ends as congestion.
    trunk_failure: bool = False
    retry_at: float | None = None
    wait_max_s: float = 86400.0


@dataclass(frozen=True, slots=True)
class Recorded:
    final: bool
    outcome: Outcome


def _ts(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


async def _stop_opted_out(db: Executor, results: Sequence[Result]) -> None:
    """The numbers whose callee pressed the opt-out key go on their account's stop list (issue 18), before
    their result is recorded: the retry table then sees them stopped, and a result written twice (a
    reconciliation racing the live one) adds nothing twice."""
    opted = [r for r in results if r.result.opted_out]
    if not opted:
        return
    rows = await db.fetch(
        "SELECT id, account_id FROM sends WHERE id = ANY($1::uuid[])", list({r.claim.send_id for r in opted})
    )
    accounts = {r["id"]: r["account_id"] for r in rows}
    for account_id in set(accounts.values()):
        numbers = sorted({r.claim.e164 for r in opted if accounts.get(r.claim.send_id) == account_id})
        await stoplists.add(db, account_id, [stoplists.Entry.of(n) for n in numbers], source="dtmf")


async def _not_confirmed_before(db: Executor, results: Sequence[Result]) -> dict[int, int]:
    """For each recipient whose attempt ended ``not_confirmed``, its earlier attempts that ended so (the
    retry table's abuse row, issue 17: a greeting nobody confirms is not a free broadcast). An attempt we
    cut or a trunk failed was given back: it does not count."""
    mine = [r for r in results if r.result.outcome is Outcome.not_confirmed and not r.trunk_failure]
    if not mine:
        return {}
    rows = await db.fetch(
        "SELECT recipient_id, count(*) AS n FROM attempts "
        "WHERE recipient_id = ANY($1::bigint[]) AND id <> ALL($2::uuid[]) AND outcome = 'not_confirmed' "
        "AND NOT trunk_failure AND cut IS DISTINCT FROM 'ours' GROUP BY recipient_id",
        [r.claim.recipient_id for r in mine],
        [r.claim.attempt_id for r in mine],
    )
    return {row["recipient_id"]: row["n"] for row in rows}


async def _legal_caps(
    db: Executor, results: Sequence[Result], now: float, stop_key: str | None
) -> dict[UUID, LegalCap]:
    """The retry table's legal row for each result of a commercial send (attempt id → its cap): the
    law reads the number's history across the account's commercial sends, this attempt included (and
    its refusal, a 603)."""
    rows = await db.fetch(
        "SELECT id, account_id FROM sends WHERE id = ANY($1::uuid[]) AND purpose = 'commercial'",
        list({r.claim.send_id for r in results}),
    )
    if not rows:
        return {}
    accounts = {r["id"]: r["account_id"] for r in rows}
    at = datetime.fromtimestamp(now, UTC)
    caps: dict[UUID, LegalCap] = {}
    for account_id in set(accounts.values()):
        mine = [r for r in results if accounts.get(r.claim.send_id) == account_id]
        numbers = sorted({r.claim.e164 for r in mine})
        stopped = await stoplists.stopped(db, account_id, numbers, key=stop_key)
        consents = await consent_store.consents(db, account_id, numbers)
        histories = await commercial_store.histories(db, account_id, numbers, at)
        for item in mine:
            e164 = item.claim.e164
            history = histories.get(e164, History())
            if item.result.sip_code == commercial_store.REFUSAL_SIP_CODE:
                ended = _ts(item.result.ended_at) or at
                history = History(history.attempts, (*history.refusals, ended))
            caps[item.claim.attempt_id] = legal_cap(
                area_of(e164), stop_listed=e164 in stopped, consent=consents.get(e164), history=history
            )
    return caps


async def record_results(
    db: Executor,
    results: Sequence[Result],
    *,
    timing: RetryTiming | None = None,
    now: float | None = None,
    stop_key: str | None = None,
    holder: tuple[str, int] | None = None,
) -> list[Recorded]:
    """One statement: each attempt's result and its recipient's next state (retry or final, by the retry
    table of engine.domain.retries, its legal row for commercial sends); the credits are consumed or
    released by the next settlement (settle()), in a batch. One result per attempt. ``now``: the
    dialer's clock (epoch seconds; engine/services/dialing/clock.py). ``holder``: the writing node and
    its epoch: nothing is written once the epoch was raised, nor for an attempt no longer its own (issue
    19; None: no check)."""
    attempt_ids = [r.claim.attempt_id for r in results]
    if len(set(attempt_ids)) != len(attempt_ids):
        raise ValueError("one result per attempt in a batch")
    now = time.time() if now is None else now
    await _stop_opted_out(db, results)
    caps = await _legal_caps(db, results, now, stop_key)
    not_confirmed = await _not_confirmed_before(db, results)
    columns: list[list[Any]] = [[] for _ in range(20)]
    for item in results:
        result = item.result
        our_cut = False
        if item.trunk_failure:
            next_at: float | None = item.retry_at if item.retry_at is not None else now
        else:
            # The attempt being recorded is its recipient's current one (one open attempt per recipient).
            decision = decide(
                result.outcome,
                item.claim.attempt_no,
                item.policy,
                now,
                timing=timing,
                cut_on_our_side=result.free_retry,
                legal=caps.get(item.claim.attempt_id),
                not_confirmed_before=not_confirmed.get(item.claim.recipient_id, 0),
            )
            next_at, our_cut = decision.at, decision.rule == "our_cut"
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
            item.trunk_failure,
            item.wait_max_s,
            our_cut,
            result.cut,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    node, epoch = holder if holder is not None else (None, None)
    rows = {r["attempt_id"]: r for r in await db.fetch(_RECORD, *columns, node, epoch)}
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
    """Give a claimed recipient back untouched (the call was never placed: lease expired, no trunk, engine
    stopping). The send is locked FOR KEY SHARE first, as a claim does: a cancel in progress (FOR UPDATE)
    is waited for and its outcome seen. A send no longer running nor paused (cancelled while the call was
    claimed) gets no recipient back to pending, where nothing would ever call it nor release its credit:
    it ends cancelled, as the cancel would have ended it, and the credit it held is released."""
    async with in_transaction(db) as conn:
        send = await conn.fetchrow(
            "SELECT status, account_id FROM sends WHERE id = $1 FOR KEY SHARE", claim_.send_id
        )
        over = send is not None and send["status"] not in ("running", "paused")
        await conn.execute("DELETE FROM attempts WHERE id = $1 AND state = 'originating'", claim_.attempt_id)
        given = await conn.fetchval(
            "WITH g AS (UPDATE send_recipients SET state = $2, attempts = attempts - 1 WHERE id = $1 "
            "AND state = 'calling' RETURNING 1) SELECT count(*) FROM g",
            claim_.recipient_id,
            "cancelled" if over else "pending",
        )
        if over and given and send is not None:
            await sends_store.release_held(conn, send["account_id"], claim_.send_id, 1, "envoi annulé")


# --- reconciliation -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OpenAttempt:
    claim: Claim
    state: str
    created_at: datetime
    policy: RetryPolicy
    message_duration_s: float
    snapshot: str | None = None  # the last stage snapshot written (sql/0014_call_stages.sql)
    app: str = ""  # the Stasis application its channel is in


async def open_attempts(db: Executor, node: str, app: str | None = None) -> list[OpenAttempt]:
    """This node's attempts that have no outcome yet (after a crash, or a websocket gap); ``app``: only
    those whose channel is in that Stasis application (a node taken over: sql/0021_cluster.sql)."""
    rows = await db.fetch(
        "SELECT a.id, a.send_id, a.recipient_id, a.attempt_no, a.trunk, a.state, a.created_at, r.e164, "
        "s.extra_attempts, s.retry_interval_s, m.duration_s, a.snapshot, a.app FROM attempts a "
        "JOIN send_recipients r ON r.id = a.recipient_id JOIN sends s ON s.id = a.send_id "
        "JOIN messages m ON m.id = s.message_id WHERE a.node = $1 AND a.state <> 'ended' "
        "AND ($2::text IS NULL OR a.app = $2) ORDER BY a.created_at",
        node,
        app,
    )
    return [
        OpenAttempt(
            Claim(r["id"], r["send_id"], r["recipient_id"], r["e164"], r["attempt_no"], r["trunk"]),
            r["state"],
            r["created_at"],
            RetryPolicy(extra_attempts=r["extra_attempts"], interval_s=float(r["retry_interval_s"])),
            r["duration_s"],
            r["snapshot"],
            r["app"],
        )
        for r in rows
    ]


async def cdrs_for(db: Executor, attempt_id: UUID) -> list[asyncpg.Record]:
    """Asterisk's records of the attempt's channel (uniqueid = the channel id we chose), oldest first: a
    channel that enters a bridge gets a record per part of its life. ``inserted_at``: PostgreSQL's clock."""
    return await db.fetch(
        'SELECT disposition, duration, billsec, start, answer, "end", inserted_at FROM asterisk_cdr '
        "WHERE uniqueid = $1 ORDER BY id",
        str(attempt_id),
    )


# --- where each call is (engine/domain/callstage.py; sql/0014_call_stages.sql) ---------------------------


@dataclass(frozen=True, slots=True)
class StageRow:
    attempt_id: UUID
    stage: str
    entered_at: float
    snapshot: str


async def record_stages(
    db: Executor, rows: Sequence[StageRow], *, holder: tuple[str, int] | None = None
) -> None:
    """The last stage of each call, in one statement (an attempt already ended keeps its last one).
    ``holder``: the writing node and its epoch, as for record_results: stages queued before a freeze and
    flushed after a takeover are not written (issue 19; None: no check)."""
    if not rows:
        return
    node, epoch = holder if holder is not None else (None, None)
    await db.execute(
        "WITH me AS (SELECT 1 FROM nodes WHERE name = $5 AND epoch = $6 FOR KEY SHARE) "
        "UPDATE attempts a SET stage = v.stage, stage_at = v.stage_at, snapshot = v.snapshot "
        "FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[]) "
        "AS v(id, stage, stage_at, snapshot) "
        "WHERE a.id = v.id AND a.state <> 'ended' "
        "AND ($5::text IS NULL OR (a.node = $5 AND EXISTS (SELECT 1 FROM me)))",
        [r.attempt_id for r in rows],
        [r.stage for r in rows],
        [_ts(r.entered_at) for r in rows],
        [r.snapshot for r in rows],
        node,
        epoch,
    )
