"""This engine as a node of the cluster (issue 19; engine/store/nodes.py): its heartbeat, its epoch, its
drain, the fencing of its originates, and the takeover of nodes that went silent.

Fencing, three times over: every claim and every originate checks the node's epoch in PostgreSQL in the
same transaction (a takeover raises it), and the node places no call once half of
VOCALCAST_NODE_DEAD_AFTER_S has passed since its last heartbeat was written (its lease: a process frozen
between that check and its request wakes with an expired lease). What no check inside the process can
cover — a freeze after the last of them, just before the request is written — the edge does: in a cluster
every INVITE carries the node's name and epoch, which Kamailio checks in PostgreSQL before it relays it
(edge_headers; docker/kamailio/kamailio.cfg, route[FENCE]). Its results and stages are written only while
it holds its epoch (holder; engine/store/attempts.py). A node that finds itself fenced never places a call
again; it says so in /healthz until it is restarted (a restart joins again with a new epoch).

A node that wakes fenced still holds its calls in memory (call objects, timers, ARI handles) while the
node that took it over drives their channels: before any ARI request (engine/telephony/ari.py gate), a node
whose lease ran out beats first, and learns so before it acts. Once fenced it drops those calls without
touching Asterisk, records nothing for them and closes its events websocket (on_fenced, the dialer's); it
stays up, fenced, saying so in its log and /healthz, rather than exiting: an exit would lose that report and,
under a supervisor restarting it at once, rejoin with a new epoch while its calls are still the taker's — the
operator restarts it (`vocalcast stack restart`, systemd) once the cause of the freeze is understood.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg
import structlog

from engine.errors import DatabaseUnavailable
from engine.settings import Settings
from engine.store import Database
from engine.store import nodes as nodes_store
from engine.store.nodes import TakenOver
from engine.telephony.ari import AriFenced

log = structlog.get_logger(__name__)

# What Kamailio checks before it relays a node's INVITE to a carrier (docker/kamailio/kamailio.cfg,
# route[FENCE]): the epoch must still be the node's in PostgreSQL. A node frozen between its own fence
# check below and its request to Asterisk wakes with a stale epoch: its call never leaves the edge.
NODE_HEADER = "X-VC-Node"
EPOCH_HEADER = "X-VC-Epoch"
# How an originate's transaction can end under it (engine/store/db.py turns most into DatabaseUnavailable).
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


class Verdict(enum.Enum):
    """What becomes of one originate (Membership.originating)."""

    send = "send"
    requeue = "requeue"  # the node's lease ran out: the call is not placed, its recipient goes back
    drop = "drop"  # the attempt is not this node's any more: whoever holds it reconciles it


class Membership:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        node: str,
        app: str,
        on_takeover: Callable[[TakenOver], Awaitable[None]] | None = None,
        on_change: Callable[[], None] | None = None,
        on_fenced: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.node = node
        self.app = app
        self.on_takeover = on_takeover
        self.on_change = on_change
        self.on_fenced = on_fenced
        self.epoch: int | None = None
        self.draining = False
        self.fenced = False
        self.lease_until = float("-inf")  # monotonic: no call may be placed after it
        self.took_over: list[str] = []
        self._joining = asyncio.Lock()
        self._confirming = asyncio.Lock()
        self._dropping: asyncio.Task[None] | None = None

    @property
    def lease_s(self) -> float:
        return self.settings.node_dead_after_s / 2

    @property
    def state(self) -> str:
        if self.fenced:
            return "fenced"
        if self.epoch is None:
            return "joining"
        return "draining" if self.draining else "active"

    def report(self) -> dict[str, object]:
        return {
            "name": self.node,
            "epoch": self.epoch,
            "state": self.state,
            "took_over": self.took_over[-10:],
        }

    async def ensure_joined(self) -> None:
        async with self._joining:
            if self.epoch is None:
                await self.join()

    async def join(self) -> None:
        started = time.monotonic()
        self.epoch = await nodes_store.join(self.db, self.node, self.app)
        self.lease_until = started + self.lease_s
        beat = await nodes_store.beat(self.db, self.node, self.epoch)
        self.draining = bool(beat and beat.draining)
        log.info("node.joined", node=self.node, epoch=self.epoch, draining=self.draining)

    def holder(self) -> tuple[str, int] | None:
        """This node and its epoch, for the writes PostgreSQL makes conditional on it (results, stages);
        None before it joined."""
        return None if self.epoch is None else (self.node, self.epoch)

    def edge_headers(self) -> dict[str, str]:
        """The SIP headers of each channel this node creates (its ARI client adds them, VOCALCAST_CLUSTER):
        none before it joined (Kamailio then refuses the call)."""
        if self.epoch is None:
            return {}
        return {NODE_HEADER: self.node, EPOCH_HEADER: str(self.epoch)}

    def may_call(self) -> bool:
        """This node may still place calls: joined, not fenced, its lease current."""
        return self.epoch is not None and not self.fenced and time.monotonic() < self.lease_until

    async def holds(self) -> bool:
        """Before this node acts on its calls (an ARI request, a result written): False once it is fenced.
        While its lease is current it answers at once; when the lease ran out (the process was frozen, or
        PostgreSQL is slow) a heartbeat first says whether the node still holds its epoch."""
        if not self.fenced and (self.epoch is None or time.monotonic() < self.lease_until):
            return True
        async with self._confirming:
            if not self.fenced and time.monotonic() >= self.lease_until:
                # PostgreSQL away: the node cannot tell, it acts as before (a takeover needs PostgreSQL too).
                with contextlib.suppress(DatabaseUnavailable):
                    await self._renew()
        if self.fenced and self._dropping is not None:
            await asyncio.shield(self._dropping)  # its calls dropped before it answers
        return not self.fenced

    async def confirm(self) -> None:
        """The gate of this node's ARI client (engine/telephony/ari.py): AriFenced once it is fenced."""
        if not await self.holds():
            raise AriFenced(f"node {self.node} was fenced (epoch {self.epoch} taken over)")

    async def run(self) -> None:
        """Forever: the heartbeat, then the takeover of nodes silent for too long."""
        while True:
            try:
                await self.beat_once()
            except DatabaseUnavailable as exc:
                log.warning("node.heartbeat_failed", error=str(exc))
            await asyncio.sleep(self.settings.node_heartbeat_s)

    async def beat_once(self) -> None:
        if self.fenced:
            return
        if self.epoch is None:
            await self.ensure_joined()
            return
        if not await self._renew() or self.on_takeover is None:
            return
        for name, epoch in await nodes_store.dead(self.db, self.node, self.settings.node_dead_after_s):
            taken = await nodes_store.take_over(
                self.db, self.node, name, epoch, self.settings.node_dead_after_s
            )
            if taken is None:
                continue
            log.warning(
                "node.taken_over", node=name, by=self.node, attempts=taken.attempts, apps=list(taken.apps)
            )
            self.took_over.append(name)
            await self.on_takeover(taken)

    async def _renew(self) -> bool:
        """One heartbeat: the lease renewed and the drain read; False when the node was fenced."""
        if self.epoch is None:
            return True
        started = time.monotonic()
        beat = await nodes_store.beat(self.db, self.node, self.epoch)
        if beat is None:
            self._fenced()
            return False
        self.lease_until = started + self.lease_s
        if beat.draining != self.draining:
            self.draining = beat.draining
            log.warning("node.draining" if beat.draining else "node.drain_ended", node=self.node)
            if self.on_change is not None:
                self.on_change()
        return True

    def _fenced(self) -> None:
        if self.fenced:
            return
        self.fenced = True
        self.lease_until = float("-inf")
        log.error(
            "node.fenced", node=self.node, epoch=self.epoch, hint="another node took it over; restart it"
        )
        if self.on_fenced is not None:
            self._dropping = asyncio.create_task(self.on_fenced(), name=f"fenced-{self.node}")
        if self.on_change is not None:
            self.on_change()

    @asynccontextmanager
    async def originating(self, attempt_id: UUID) -> AsyncIterator[Verdict]:
        """Around one originate request: yields SEND when it may be sent — the node still holds its epoch
        and the attempt (checked in PostgreSQL, its row locked FOR KEY SHARE until the request is sent: a
        takeover waits for it) and its lease is current; REQUEUE when only the lease ran out (the attempt
        is still ours: give its recipient back); DROP when it is not ours any more."""
        if self.epoch is None or self.fenced:
            yield Verdict.drop
            return
        yielded = body_failed = False
        try:
            async with nodes_store.fenced_transaction(self.db, self.lease_s) as conn:
                mine = await nodes_store.fence(conn, self.node, self.epoch, attempt_id)
                if mine is None:
                    self._fenced()
                # The lease, as late as possible: a freeze since the check above shows here.
                verdict = Verdict.drop
                if mine:
                    verdict = Verdict.send if self.may_call() else Verdict.requeue
                yielded = True
                try:
                    yield verdict
                except BaseException:
                    body_failed = True  # the caller's own error: its to handle
                    raise
        except (*_CONNECTION_LOST, DatabaseUnavailable) as exc:
            if body_failed or (not yielded and isinstance(exc, DatabaseUnavailable)):
                raise
            # PostgreSQL ended the transaction (we were frozen inside it), or the connection broke at its
            # COMMIT (asyncpg's InternalClientError, a connection lost): the request was sent or not, the
            # outcome is unknown. Like a crash at that stage: a call sent is followed as it is, an attempt
            # whose request was not sent stays open for reconciliation; never a second originate.
            log.warning("node.originate_fence_lost", attempt_id=str(attempt_id), error=str(exc))
            if not yielded:
                yield Verdict.drop
