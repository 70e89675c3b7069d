"""Bench: personal data at volume (issue 20) — an account with 100,000 contacts and a 10,000-recipient send
(each recipient called once, with its CDR), seeded with generate_series: its export (zip of CSV + JSON),
one number erased everywhere, the retention purge keying the send's 10,000 numbers, then its deletion.

    VOCALCAST_BENCH_PORT_BASE=6000 .venv/bin/python -m bench.privacy [RUNS]

Targets: the export within 2 minutes ("within minutes" in the issue), the rest within 1 minute, the
counts of the archive exact. Prints JSON (the median of RUNS exports).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import structlog

from bench.support import checks, instance, measure
from engine.services import build
from engine.settings import Settings
from engine.store import Database
from engine.store.accounts import create_account

RUNS = 3
CONTACTS = 100_000
RECIPIENTS = 10_000


async def _seed(db: Database, settings: Settings) -> Any:
    account = (
        await create_account(
            db, f"bench-rgpd-{uuid4().hex[:8]}@example.fr", secret_key=settings.require("secret_key")
        )
    ).account
    message_id, send_id = uuid4(), uuid4()
    await db.execute(
        "INSERT INTO messages (id, account_id, ref, title, origin, duration_s, audio_stem, original_file, "
        "loudness_lufs, true_peak_dbfs) VALUES ($1, $2, 1, 'Bench', 'file', 10, 'x/y', 'x/y.wav', -16, -1)",
        message_id,
        account.id,
    )
    await db.execute(
        "INSERT INTO contacts (account_id, nom, nom_key, e164, number_type, is_mobile) "
        "SELECT $1, 'Nom' || i, 'nom' || i, '+336' || lpad(i::text, 8, '0'), 'mobile', true "
        "FROM generate_series(1, $2) i",
        account.id,
        CONTACTS,
    )
    ended = datetime.now(UTC) - timedelta(days=400)
    await db.execute(
        "INSERT INTO sends (id, account_id, message_id, origin, status, start_at, recipients_total, "
        "ended_at) VALUES ($1, $2, $3, 'api', 'completed', $4, $5, $4)",
        send_id,
        account.id,
        message_id,
        ended,
        RECIPIENTS,
    )
    await db.execute(
        "INSERT INTO send_recipients (send_id, e164, state, outcome, attempts, final_at, settled) "
        "SELECT $1, '+336' || lpad(i::text, 8, '0'), 'done', 'delivered', 1, $3, true "
        "FROM generate_series(1, $2) i",
        send_id,
        RECIPIENTS,
        ended,
    )
    await db.execute(
        "INSERT INTO attempts (id, send_id, recipient_id, attempt_no, node, app, trunk, state, outcome) "
        "SELECT gen_random_uuid(), send_id, id, 1, 'n1', 'a', 't', 'ended', 'delivered' "
        "FROM send_recipients WHERE send_id = $1",
        send_id,
    )
    await db.execute(
        "INSERT INTO asterisk_cdr (start, dst, uniqueid, disposition) SELECT $2, '0' || substr(r.e164, 4), "
        "a.id::text, 'ANSWERED' FROM attempts a JOIN send_recipients r ON r.id = a.recipient_id "
        "WHERE a.send_id = $1",
        send_id,
        ended,
    )
    await db.execute("ANALYZE")
    return account


async def _measure(settings: Settings, runs: int) -> dict[str, Any]:
    async with Database(settings.dsn, min_size=1, max_size=4) as db:
        account = await _seed(db, settings)
        privacy = build(settings, db).privacy
        exports: list[float] = []
        counts: dict[str, int] = {}
        size = 0
        with tempfile.TemporaryDirectory() as tmp:
            for run in range(runs):
                started = time.perf_counter()
                done = await privacy.export_account(account.id, Path(tmp) / f"{run}.zip")
                exports.append(time.perf_counter() - started)
                counts, size = done.counts, done.path.stat().st_size
        started = time.perf_counter()
        await privacy.erase_number(None, "+33600000042")
        erase_s = time.perf_counter() - started
        started = time.perf_counter()
        purged = await privacy.purge()
        purge_s = time.perf_counter() - started
        started = time.perf_counter()
        await privacy.delete_account(account.id)
        delete_s = time.perf_counter() - started
    export_s = statistics.median(exports)
    return {
        "contacts": CONTACTS,
        "recipients": RECIPIENTS,
        "export_median_s": round(export_s, 3),
        "export_runs_s": [round(s, 3) for s in exports],
        "archive_mb": round(size / 1e6, 2),
        "erase_number_everywhere_s": round(erase_s, 3),
        "purge_s": round(purge_s, 3),
        "purged": purged,
        "delete_account_s": round(delete_s, 3),
        "checks": {
            "export_s": checks.at_most(round(export_s, 3), 120.0),
            "contacts_exported": checks.equal(counts.get("contacts.csv"), CONTACTS),
            "contacts_exported_json": checks.equal(counts.get("contacts.json"), CONTACTS),
            "recipients_exported": checks.equal(counts.get("destinataires.csv"), RECIPIENTS),
            "calls_exported": checks.equal(counts.get("appels.csv"), RECIPIENTS),
            "recipients_keyed": checks.equal(purged.get("send_recipients"), RECIPIENTS - 1),
            "purge_s": checks.at_most(round(purge_s, 3), 60.0),
            "delete_account_s": checks.at_most(round(delete_s, 3), 60.0),
        },
    }


def run(runs: int = RUNS) -> dict[str, Any]:
    with instance.bench_stack() as settings:
        measured = asyncio.run(_measure(settings, runs))
    return {"bench": "privacy", "machine": measure.machine(), **measured}


if __name__ == "__main__":
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(30),
    )
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else RUNS), indent=2))
