"""Bench: the 100,000-row contacts CSV import as a ratio to a bare ``phonenumbers.parse`` of the file's
numbers, both measured in one run, interleaved (same machine, same moment: a busy machine slows both).

    VOCALCAST_BENCH_PORT_BASE=6000 .venv/bin/python -m bench.import_ratio [RUNS]

The file is bench/recipients.py's (same seed, same shapes). Each import goes into a fresh account with
empty contact tables (a first import); a first, unreported run warms the caches. Prints JSON: the median
of each, their ratio (target ≤ 2.0, issue 14), per-run pairs, the CPU seconds of the import (this
process, its worker process, the PostgreSQL backend) and a re-import of the same file into the same
account. VOCALCAST_BENCH_KEEP_STACK=1 keeps the instance up between runs.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import statistics
import sys
import time
import uuid
from typing import Any

import structlog

from bench.recipients import CSV_SEED, bare_parse_s, contacts_csv
from bench.support import instance, measure
from engine.services.contacts_import import import_contacts_csv
from engine.settings import Settings
from engine.store import Database
from engine.store.accounts import create_account

RUNS = 5


def bench_file() -> tuple[bytes, list[str]]:
    """bench/recipients.py's 100,000-row file and its phone cells."""
    return contacts_csv(random.Random(CSV_SEED))


def _children_cpu_s() -> float:
    """CPU seconds of this process's finished children (the import's worker processes)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _measure(settings: Settings, data: bytes, phones: list[str], runs: int) -> dict[str, Any]:
    secret_key = settings.require("secret_key")
    imports: list[float] = []
    bares: list[float] = []
    python_cpu: list[float] = []
    worker_cpu: list[float] = []
    postgres_cpu: list[float] = []
    reimports: list[float] = []
    report = None
    async with Database(settings.dsn, min_size=1, max_size=1) as db:
        backend = await db.fetchval("SELECT pg_backend_pid()")
        for run in range(runs + 1):  # run 0 warms the caches (imports, phonenumbers metadata): not counted
            await db.execute("TRUNCATE contacts, contact_groups, group_members CASCADE")
            email = f"bench-ratio-{uuid.uuid4().hex[:8]}@example.fr"
            account = (await create_account(db, email, secret_key=secret_key)).account
            bare = bare_parse_s(phones)
            cpu_before = (time.process_time(), _children_cpu_s(), measure.cpu_s(backend))
            started = time.perf_counter()
            report = await import_contacts_csv(db, account.id, data, allow_international=False)
            elapsed = time.perf_counter() - started
            cpu = (
                time.process_time() - cpu_before[0],
                _children_cpu_s() - cpu_before[1],
                measure.cpu_s(backend) - cpu_before[2],
            )
            started = time.perf_counter()
            again = await import_contacts_csv(db, account.id, data, allow_international=False)
            reimport = time.perf_counter() - started
            assert again.imported == 0 and again.updated == report.imported, again
            if run == 0:
                continue
            bares.append(bare)
            imports.append(elapsed)
            python_cpu.append(cpu[0])
            worker_cpu.append(cpu[1])
            postgres_cpu.append(cpu[2])
            reimports.append(reimport)
    assert report is not None
    import_s, bare_s = statistics.median(imports), statistics.median(bares)
    return {
        "rows": len(phones),
        "import_median_s": round(import_s, 4),
        "bare_phonenumbers_parse_median_s": round(bare_s, 4),
        "ratio": round(import_s / bare_s, 3),
        "target_ratio_max": 2.0,
        "ratio_per_run": [round(i / b, 3) for i, b in zip(imports, bares, strict=True)],
        "import_runs_s": [round(s, 4) for s in imports],
        "bare_runs_s": [round(s, 4) for s in bares],
        "cpu_median_s": {
            "python": round(statistics.median(python_cpu), 4),
            "worker_process": round(statistics.median(worker_cpu), 4),
            "postgres": round(statistics.median(postgres_cpu), 4),
        },
        "reimport_median_s": round(statistics.median(reimports), 4),
        "report": {
            "imported": report.imported,
            "refused": len(report.refused),
            "groups_created": report.groups_created,
            "memberships_added": report.memberships_added,
        },
    }


def run(runs: int = RUNS) -> dict[str, Any]:
    data, phones = bench_file()
    with instance.bench_stack() as settings:
        measured = asyncio.run(_measure(settings, data, phones, runs))
    return {"bench": "import_ratio", "machine": measure.machine(), **measured}


if __name__ == "__main__":
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(30),
    )
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else RUNS), indent=2))
