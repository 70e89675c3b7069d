"""Nodes in the real PostgreSQL (issue 19): a takeover raises the dead node's epoch and moves its open
attempts; after it the old epoch can neither claim nor originate; a claim in progress is waited for; a
drained node claims nothing; the trunks' shared counters never grant two nodes more than a trunk's
channels and pace."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from engine.domain.outcomes import Outcome
from engine.domain.retries import RetryPolicy
from engine.errors import DatabaseUnavailable
from engine.services.dialing.membership import Membership, Verdict
from engine.services.sends import create_send
from engine.settings import Settings
from engine.store import Database, trunkshare
from engine.store import attempts as attempts_store
from engine.store import nodes as nodes_store
from tests.integration.dialing import customer, targets
from tests.store.test_sends import _result


async def _send(db: Database, settings: Settings, tmp_path: Path, count: int):  # type: ignore[no-untyped-def]
    who = await customer(db, settings, tmp_path, credits=1000)
    return await create_send(
        db,
        settings,
        who.account,
        message_ref=who.message.ref,
        targets=targets([f"06{i:08d}" for i in range(12000000, 12000000 + count)]),
        origin="api",
    )


async def _claim(db: Database, send_id, node: str, epoch: int | None, n: int = 2):  # type: ignore[no-untyped-def]
    return await attempts_store.claim(
        db,
        send_id,
        [("", n)],
        [attempts_store.Slot("t", 1, demo=False)] * n,
        limit=n,
        node=node,
        app=f"vocalcast-{node}",
        now=datetime.now(UTC),
        epoch=epoch,
    )


async def test_a_takeover_fences_the_dead_node_and_moves_its_open_attempts(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    send = await _send(db, stack_settings, tmp_path, 10)
    alpha = await nodes_store.join(db, "alpha", "vocalcast-alpha")
    beta = await nodes_store.join(db, "beta", "vocalcast-beta")
    mine = await _claim(db, send.id, "alpha", alpha)
    assert len(mine) == 2
    # Not silent long enough: nobody may take it over.
    assert await nodes_store.take_over(db, "beta", "alpha", alpha, 60.0) is None
    await db.execute("UPDATE nodes SET last_seen = now() - interval '30 seconds' WHERE name = 'alpha'")
    assert await nodes_store.dead(db, "beta", 20.0) == [("alpha", alpha)]
    taken = await nodes_store.take_over(db, "beta", "alpha", alpha, 20.0)
    assert taken is not None and taken.attempts == 2 and taken.apps == ("vocalcast-alpha",)
    assert taken.epoch == alpha + 1
    assert await nodes_store.take_over(db, "beta", "alpha", alpha, 20.0) is None  # once
    # The old epoch: no heartbeat, no claim, no originate.
    assert await nodes_store.beat(db, "alpha", alpha) is None
    assert await _claim(db, send.id, "alpha", alpha) == []
    async with db.transaction() as conn:
        assert await nodes_store.fence(conn, "alpha", alpha, mine[0].attempt_id) is None
    # The attempts are beta's now, in alpha's application (a foster serves it).
    open_ = await attempts_store.open_attempts(db, "beta", "vocalcast-alpha")
    assert {o.claim.attempt_id for o in open_} == {c.attempt_id for c in mine}
    async with db.transaction() as conn:
        assert await nodes_store.fence(conn, "beta", beta, mine[0].attempt_id) is True
    # Without the epoch check (the old code), the fenced node would still have claimed.
    assert len(await _claim(db, send.id, "alpha", None)) == 2


async def test_a_takeover_waits_for_an_originate_in_progress_then_sees_its_attempt(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    send = await _send(db, stack_settings, tmp_path, 4)
    alpha = await nodes_store.join(db, "alpha", "vocalcast-alpha")
    await nodes_store.join(db, "beta", "vocalcast-beta")
    (claim,) = await _claim(db, send.id, "alpha", alpha, n=1)
    await db.execute("UPDATE nodes SET last_seen = now() - interval '30 seconds' WHERE name = 'alpha'")
    async with nodes_store.fenced_transaction(db, 10.0) as conn:
        assert await nodes_store.fence(conn, "alpha", alpha, claim.attempt_id) is True
        takeover = asyncio.create_task(nodes_store.take_over(db, "beta", "alpha", alpha, 20.0))
        await asyncio.sleep(0.5)
        assert not takeover.done()  # waits for the originate's transaction
    taken = await takeover
    assert taken is not None and taken.attempts == 1


async def test_a_draining_node_claims_nothing(stack_settings: Settings, db: Database, tmp_path: Path) -> None:
    send = await _send(db, stack_settings, tmp_path, 4)
    alpha = await nodes_store.join(db, "alpha", "vocalcast-alpha")
    assert await nodes_store.set_draining(db, "alpha", True)
    assert await _claim(db, send.id, "alpha", alpha) == []
    beat = await nodes_store.beat(db, "alpha", alpha)
    assert beat is not None and beat.draining
    assert await nodes_store.set_draining(db, "alpha", False)
    assert len(await _claim(db, send.id, "alpha", alpha)) == 2
    assert not await nodes_store.set_draining(db, "nobody", True)


async def test_shared_counters_never_grant_more_than_the_trunks_channels_or_pace(
    stack_settings: Settings, db: Database
) -> None:
    limits = {"t": trunkshare.Limits(max_channels=5, max_cps=10.0)}
    grants = await asyncio.gather(
        *(trunkshare.reserve(db, f"n{i}", legs={"t": 0}, wanted={"t": 3}, limits=limits) for i in range(4))
    )
    # The bucket holds max(2, 10 x 0.1) = 2 calls at first: the pace, not the channels, binds.
    assert sum(g["t"] for g in grants) == 2
    # Channels: the legs every node holds count against the trunk.
    await db.execute("UPDATE trunk_pace SET tokens = 100")
    await db.execute("UPDATE trunk_legs SET wanted_at = NULL")
    held_elsewhere = await db.fetchval("SELECT coalesce(sum(legs), 0) FROM trunk_legs WHERE node <> 'n0'")
    first = await trunkshare.reserve(db, "n0", legs={"t": 3}, wanted={"t": 3}, limits=limits)
    assert first["t"] == 5 - 3 - held_elsewhere  # the trunk's channels less every node's legs
    assert (await trunkshare.usage(db))["t"] == 5
    # Fair shares: while another node wants channels, none holds more than ceil(5 / 2) = 3.
    await db.execute("DELETE FROM trunk_legs")
    await db.execute("UPDATE trunk_pace SET tokens = 100")
    hungry = await trunkshare.reserve(db, "n1", legs={"t": 0}, wanted={"t": 0}, limits=limits)
    assert hungry["t"] == 0
    await db.execute("UPDATE trunk_legs SET wanted_at = now() WHERE node = 'n1'")
    greedy = await trunkshare.reserve(db, "n0", legs={"t": 1}, wanted={"t": 4}, limits=limits)
    assert greedy["t"] == 2
    # A pause one node writes stops every node.
    await trunkshare.reserve(
        db, "n1", legs={}, wanted={}, limits=limits, pauses={"t": (datetime(2999, 1, 1, tzinfo=UTC), "503")}
    )
    await db.execute("UPDATE trunk_pace SET tokens = 100")
    paused = await trunkshare.reserve(db, "n2", legs={"t": 0}, wanted={"t": 1}, limits=limits)
    assert paused["t"] == 0


async def test_an_originate_is_sent_only_under_a_current_epoch_and_lease(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Membership.originating: SEND while the node holds its epoch and lease; REQUEUE once only its lease
    ran out (a freeze: the attempt is still its own); DROP once another node took it over."""
    settings = dataclasses.replace(stack_settings, node_dead_after_s=4.0)
    send = await _send(db, stack_settings, tmp_path, 4)
    alpha = Membership(settings, db, node="alpha", app="vocalcast-alpha")
    await alpha.join()
    assert alpha.epoch is not None
    first, second = await _claim(db, send.id, "alpha", alpha.epoch)
    async with alpha.originating(first.attempt_id) as verdict:
        assert verdict is Verdict.send
    alpha.lease_until = time.monotonic() - 0.1  # frozen past its lease
    async with alpha.originating(first.attempt_id) as verdict:
        assert verdict is Verdict.requeue
    await db.execute("UPDATE nodes SET last_seen = now() - interval '10 seconds' WHERE name = 'alpha'")
    await nodes_store.join(db, "beta", "vocalcast-beta")
    assert await nodes_store.take_over(db, "beta", "alpha", alpha.epoch, 4.0) is not None
    await alpha.beat_once()  # it wakes: its heartbeat finds its epoch raised
    assert alpha.fenced and alpha.state == "fenced" and not alpha.may_call()
    async with alpha.originating(second.attempt_id) as verdict:
        assert verdict is Verdict.drop


async def test_a_fenced_nodes_late_result_and_stage_writes_are_refused_the_takers_are_kept(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Two claimers of one attempt (issue 19): alpha claimed it, was frozen and taken over by beta; its
    result and its stages queued before the freeze reach PostgreSQL after the takeover. Neither is
    written: beta's result is the attempt's. On the old code (no holder: the write unconditional) alpha's
    late result ended the attempt first and beta's was dropped."""
    send = await _send(db, stack_settings, tmp_path, 4)
    alpha = await nodes_store.join(db, "alpha", "vocalcast-alpha")
    beta = await nodes_store.join(db, "beta", "vocalcast-beta")
    first, second = await _claim(db, send.id, "alpha", alpha)
    policy = RetryPolicy(extra_attempts=0, interval_s=60)
    stage = attempts_store.StageRow(first.attempt_id, "message", time.time(), "frozen-stage")
    # Before any takeover, alpha writes as it always did.
    await attempts_store.record_stages(db, [stage], holder=("alpha", alpha))
    assert (
        await db.fetchval("SELECT snapshot FROM attempts WHERE id = $1", first.attempt_id) == "frozen-stage"
    )
    await db.execute("UPDATE nodes SET last_seen = now() - interval '30 seconds' WHERE name = 'alpha'")
    assert await nodes_store.take_over(db, "beta", "alpha", alpha, 20.0) is not None

    late = dataclasses.replace(stage, snapshot="late-stage")
    await attempts_store.record_stages(db, [late], holder=("alpha", alpha))
    (stale,) = await attempts_store.record_results(
        db, [attempts_store.Result(first, _result(Outcome.busy), policy)], holder=("alpha", alpha)
    )
    row = await db.fetchrow(
        "SELECT state, outcome, snapshot, node FROM attempts WHERE id = $1", first.attempt_id
    )
    assert (row["state"], row["outcome"], row["snapshot"], row["node"]) == (
        "originating",
        None,
        "frozen-stage",
        "beta",
    )
    assert stale.final  # "recorded already" for its writer: it does nothing more with it
    # The taker's own writes go through: its stage, then its result (reconciled from the CDR).
    await attempts_store.record_stages(
        db, [dataclasses.replace(stage, snapshot="beta-stage")], holder=("beta", beta)
    )
    (kept,) = await attempts_store.record_results(
        db,
        [attempts_store.Result(first, _result(Outcome.listened), policy, reconciled="cdr")],
        holder=("beta", beta),
    )
    assert kept.final and kept.outcome is Outcome.listened
    row = await db.fetchrow(
        "SELECT outcome, reconciled, snapshot FROM attempts WHERE id = $1", first.attempt_id
    )
    assert (row["outcome"], row["reconciled"], row["snapshot"]) == ("listened", "cdr", "beta-stage")
    recipient = await db.fetchrow(
        "SELECT state, outcome FROM send_recipients WHERE id = $1", first.recipient_id
    )
    assert (recipient["state"], recipient["outcome"]) == ("done", "listened")
    # The old code: the same late write without the condition ends the other attempt as alpha saw it.
    await attempts_store.record_results(db, [attempts_store.Result(second, _result(Outcome.busy), policy)])
    assert await db.fetchval("SELECT outcome FROM attempts WHERE id = $1", second.attempt_id) == "busy"


async def test_a_connection_lost_at_the_originates_commit_is_an_unknown_outcome_not_an_error(
    stack_settings: Settings, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Membership.originating: the request was sent inside the fenced transaction, then its COMMIT fails
    (PostgreSQL ended the session, or asyncpg's InternalClientError): the outcome is unknown, handled like
    a crash at that stage — no exception into the attempt's task (the old code let both escape), the
    attempt left open for reconciliation, never a second originate. The caller's own errors still
    propagate."""
    send = await _send(db, stack_settings, tmp_path, 4)
    alpha = Membership(stack_settings, db, node="alpha", app="vocalcast-alpha")
    await alpha.join()
    assert alpha.epoch is not None
    first, second = await _claim(db, send.id, "alpha", alpha.epoch)
    sent = 0
    async with alpha.originating(first.attempt_id) as verdict:
        assert verdict is Verdict.send
        sent += 1  # the request went out; PostgreSQL then ends the session before its COMMIT
        assert await db.fetchval(
            "SELECT bool_or(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE state = 'idle in transaction' AND query LIKE '%FOR KEY SHARE OF n%'"
        )
    real = nodes_store.fenced_transaction

    @contextlib.asynccontextmanager
    async def commit_fails(db_: Database, idle_timeout_s: float) -> AsyncIterator[asyncpg.Connection]:
        async with real(db_, idle_timeout_s) as conn:
            yield conn
            raise asyncpg.InternalClientError("cannot switch to state 15; another operation is in progress")

    monkeypatch.setattr(nodes_store, "fenced_transaction", commit_fails)
    async with alpha.originating(second.attempt_id) as verdict:
        assert verdict is Verdict.send
        sent += 1
    assert sent == 2 and not alpha.fenced
    states = await db.fetch(
        "SELECT state FROM attempts WHERE id = ANY($1::uuid[])", [first.attempt_id, second.attempt_id]
    )
    assert [r["state"] for r in states] == ["originating", "originating"]  # reconciliation's to end
    monkeypatch.setattr(nodes_store, "fenced_transaction", real)
    with pytest.raises(DatabaseUnavailable):  # the caller's own error (a requeue failing): its to handle
        async with alpha.originating(second.attempt_id):
            raise DatabaseUnavailable("the caller's own write failed")
