"""The recording IVR's lockout state: wrong personal codes per caller number, blocked callers, the
caller numbers that typed a right code (they keep their pace when the line is under attack), and the
places of unknown callers' calls checking codes while the guess budget is spent.

Everything is timed by the database clock, so that every engine process applies the same windows,
and one caller's failures are counted under a transaction-scoped advisory lock, so that two calls
failing at the same moment cannot both see "4" and let the 5th failure through.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from engine.store.db import Executor, in_transaction, rows_affected

# First key of the two-key advisory locks taken here (the second is the caller's hash); the two-key
# space never meets the one-key lock that serialises migrations.
_LOCK_SPACE: Final = 0x495652  # "IVR"
# The one lock that serialises claims of the places for unknown callers (issue 17): its own first key.
_PLACES_LOCK: Final = (0x495650, 0)  # "IVP"


@dataclass(frozen=True, slots=True)
class FailureCount:
    """After one more wrong code: the caller's wrong codes within the window, and its block if any."""

    failures: int
    blocked_until: datetime | None

    @property
    def blocked(self) -> bool:
        return self.blocked_until is not None


async def blocked_until(db: Executor, caller: str) -> datetime | None:
    """When the caller's block ends, or None when it is not blocked now."""
    value: datetime | None = await db.fetchval(
        "SELECT blocked_until FROM ivr_blocked_callers WHERE caller = $1 AND blocked_until > now()", caller
    )
    return value


async def record_failure(
    db: Executor, caller: str, *, window_s: float, max_failures: int | None, lockout_s: float
) -> FailureCount:
    """Count one wrong code; the ``max_failures``-th within ``window_s`` blocks the caller for ``lockout_s``
    (``None``: counted, never blocked).

    A block already running is never shortened.
    """
    async with in_transaction(db) as conn:
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _LOCK_SPACE, caller)
        await conn.execute("INSERT INTO ivr_code_failures (caller) VALUES ($1)", caller)
        failures: int = await conn.fetchval(
            "SELECT count(*) FROM ivr_code_failures "
            "WHERE caller = $1 AND at > now() - make_interval(secs => $2)",
            caller,
            window_s,
        )
        if max_failures is None or failures < max_failures:
            return FailureCount(failures, None)
        until: datetime = await conn.fetchval(
            "INSERT INTO ivr_blocked_callers (caller, blocked_until, failures) "
            "VALUES ($1, now() + make_interval(secs => $2), $3) "
            "ON CONFLICT (caller) DO UPDATE SET "
            "  blocked_at = CASE WHEN ivr_blocked_callers.blocked_until > now() "
            "                    THEN ivr_blocked_callers.blocked_at ELSE now() END, "
            "  blocked_until = greatest(ivr_blocked_callers.blocked_until, excluded.blocked_until), "
            "  failures = excluded.failures "
            "RETURNING blocked_until",
            caller,
            lockout_s,
            failures,
        )
        return FailureCount(failures, until)


async def recent_failures(db: Executor, *, window_s: float = 60.0) -> int:
    """Wrong codes of every caller together within the last ``window_s``."""
    count: int = await db.fetchval(
        "SELECT count(*) FROM ivr_code_failures WHERE at > now() - make_interval(secs => $1)", window_s
    )
    return count


async def remember_caller(db: Executor, caller: str) -> None:
    """The caller number typed a right code now: it keeps its pace while the guess budget is spent."""
    await db.execute(
        "INSERT INTO ivr_known_callers (caller) VALUES ($1) "
        "ON CONFLICT (caller) DO UPDATE SET last_login_at = now()",
        caller,
    )


async def is_known_caller(db: Executor, caller: str, *, within_s: float) -> bool:
    """Whether the caller number typed a right code within the last ``within_s``."""
    known: bool = await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM ivr_known_callers "
        "WHERE caller = $1 AND last_login_at > now() - make_interval(secs => $2))",
        caller,
        within_s,
    )
    return known


async def claim_place(db: Executor, call: str, *, places: int, lease_s: float) -> bool:
    """Hold (or renew) one of the ``places`` for calls of unknown callers checking codes while the guess
    budget is spent, counted across every engine, for ``lease_s`` from now; False when every place is
    held by another call whose lease runs. A crashed engine's places come back when their leases end."""
    async with in_transaction(db) as conn:
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *_PLACES_LOCK)
        renewed = await conn.execute(
            "UPDATE ivr_checking_calls SET expires_at = now() + make_interval(secs => $2) "
            "WHERE call = $1 AND expires_at > now()",
            call,
            lease_s,
        )
        if rows_affected(renewed):
            return True
        await conn.execute("DELETE FROM ivr_checking_calls WHERE expires_at <= now()")
        held: int = await conn.fetchval("SELECT count(*) FROM ivr_checking_calls")
        if held >= places:
            return False
        await conn.execute(
            "INSERT INTO ivr_checking_calls (call, expires_at) "
            "VALUES ($1, now() + make_interval(secs => $2))",
            call,
            lease_s,
        )
        return True


async def release_place(db: Executor, call: str) -> None:
    """The call stops checking codes: its place (if it held one) is free at once."""
    await db.execute("DELETE FROM ivr_checking_calls WHERE call = $1", call)


async def purge(db: Executor, *, keep_s: float, known_keep_s: float | None = None) -> int:
    """Forget failures older than ``keep_s``, blocks that have ended and (when ``known_keep_s`` is given)
    known callers not seen for that long; returns the rows removed."""
    async with in_transaction(db) as conn:
        failures = await conn.execute(
            "DELETE FROM ivr_code_failures WHERE at < now() - make_interval(secs => $1)", keep_s
        )
        blocks = await conn.execute("DELETE FROM ivr_blocked_callers WHERE blocked_until <= now()")
        places = await conn.execute("DELETE FROM ivr_checking_calls WHERE expires_at <= now()")
        known = "DELETE 0"
        if known_keep_s is not None:
            known = await conn.execute(
                "DELETE FROM ivr_known_callers WHERE last_login_at < now() - make_interval(secs => $1)",
                known_keep_s,
            )
    return rows_affected(failures) + rows_affected(blocks) + rows_affected(places) + rows_affected(known)


async def unblock(db: Executor, caller: str) -> bool:
    """Lift a caller's block and forget its failures (an operator's decision); True if it was blocked."""
    async with in_transaction(db) as conn:
        await conn.execute("DELETE FROM ivr_code_failures WHERE caller = $1", caller)
        removed: str = await conn.execute(
            "DELETE FROM ivr_blocked_callers WHERE caller = $1 AND blocked_until > now()", caller
        )
    return removed != "DELETE 0"
