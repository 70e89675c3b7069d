"""What strangers leave in the database is purged (issue 17): the CDRs of their calls to the recording
line (busy refusals too), which no attempt names, after VOCALCAST_RETENTION_INBOUND_CDR_DAYS by the
retention purge; expired password reset links and web sessions by the logins' periodic purge, without
waiting for somebody to log in. On the real PostgreSQL."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

from engine.services import build
from engine.settings import Settings
from engine.store import Database
from tests.integration.dialing import customer
from tests.store.test_privacy import _send


async def _cdr(
    db: Database, *, start: datetime, dcontext: str | None, dst: str, uniqueid: str, **more: str
) -> int:
    """One row as Asterisk's cdr_pgsql writes it; its id."""
    return int(
        await db.fetchval(
            "INSERT INTO asterisk_cdr (start, dcontext, dst, src, clid, channel, uniqueid, disposition, "
            "lastapp) VALUES ($1, $2, $3, $4, $4, 'PJSIP/trunk1-0000002a', $5, $6, $7) RETURNING id",
            start,
            dcontext,
            dst,
            more.get("src", "0611223344"),
            uniqueid,
            more.get("disposition", "ANSWERED"),
            more.get("lastapp", "AGI"),
        )
    )


async def test_the_retention_purge_deletes_strangers_inbound_cdrs_after_their_retention(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    now = datetime(2027, 6, 1, 3, tzinfo=UTC)
    days = stack_settings.retention_inbound_cdr_days
    old, recent = now - timedelta(days=days + 1), now - timedelta(days=days - 1)
    who = await customer(db, stack_settings, tmp_path)
    # Outbound calls: an attempt names each one's CDR (uniqueid = the attempt id); kept whatever their age.
    await _send(db, who.account.id, who.message.id, ["+33611000001"], ended_at=old)
    outbound = {r["id"] for r in await db.fetch("SELECT id FROM asterisk_cdr")}
    assert len(outbound) == 1
    kept = outbound | {
        await _cdr(db, start=old, dcontext="vocalcast-transfer", dst="s", uniqueid=str(uuid4())),
        await _cdr(db, start=old, dcontext="vocalcast-stasis", dst="s", uniqueid=str(uuid4())),
        await _cdr(db, start=recent, dcontext="vocalcast-inbound-route", dst="record", uniqueid="1780.7"),
    }
    gone = {
        await _cdr(db, start=old, dcontext="vocalcast-inbound-route", dst="record", uniqueid="1780.1"),
        await _cdr(
            db,
            start=old,
            dcontext="vocalcast-inbound-route",
            dst="record",
            uniqueid="1780.2",
            disposition="BUSY",
            lastapp="Hangup",
        ),  # refused busy: the recording line was full
        await _cdr(db, start=old, dcontext="vocalcast-inbound-route", dst="unallocated", uniqueid="1780.3"),
        await _cdr(db, start=old, dcontext="vocalcast-inbound", dst="0172360170", uniqueid="1780.4"),
        await _cdr(db, start=old, dcontext="vocalcast-inbound-legs", dst="s", uniqueid="1780.5"),
    }

    purged = await build(stack_settings, db).privacy.purge(now)

    assert purged["inbound_cdr"] == len(gone)
    assert {r["id"] for r in await db.fetch("SELECT id FROM asterisk_cdr")} == kept
    assert (await build(stack_settings, db).privacy.purge(now))["inbound_cdr"] == 0


async def test_the_logins_purge_removes_expired_reset_links_and_sessions_without_a_login(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path)

    async def rows(table: str, expires: str) -> set[str]:
        tokens = {secrets.token_hex(32) for _ in range(2)}
        for token in tokens:
            await db.execute(
                f"INSERT INTO {table} (token_sha256, account_id, expires_at) "  # noqa: S608 - test tables
                f"VALUES ($1, $2, now() + interval '{expires}')",
                token,
                who.account.id,
            )
        return tokens

    old_resets = await rows("password_resets", "-2 days")  # expired beyond the day they are kept
    live_resets = await rows("password_resets", "1 hour") | await rows("password_resets", "-1 hour")
    old_sessions = await rows("web_sessions", "-1 minute")
    live_sessions = await rows("web_sessions", "1 hour")

    purged = await build(stack_settings, db).logins.purge()

    assert (purged["password_resets"], purged["web_sessions"]) == (len(old_resets), len(old_sessions))
    assert {r[0] for r in await db.fetch("SELECT token_sha256 FROM password_resets")} == live_resets
    assert {r[0] for r in await db.fetch("SELECT token_sha256 FROM web_sessions")} == live_sessions
