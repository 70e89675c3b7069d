"""`python -m bench [NAME[:PART,...] ...]`: run the benchmarks, write bench/results/<name>.json, and exit
non-zero when a bench fails or misses any of its targets (each listed on stderr).

`python -m bench dialer:a,c` runs parts (a) and (c) of the dialer bench only.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import structlog

from bench.support import checks

RESULTS = Path(__file__).parent / "results"
# Order matters little; the stack-backed ones share one test instance.
BENCHES = ["audio", "recipients", "ari_originate", "dialer", "carrier", "amd", "privacy", "cluster"]


def _run(name: str, parts: list[str]) -> dict[str, Any]:
    module = importlib.import_module(f"bench.{name}")
    result: dict[str, Any] = module.run(parts) if parts else module.run()
    return result


def main(argv: list[str]) -> int:
    RESULTS.mkdir(exist_ok=True)
    outcomes: dict[str, dict[str, Any] | BaseException] = {}
    for arg in argv or BENCHES:
        name, _, part_list = arg.partition(":")
        started = time.time()
        try:
            result = _run(name, [p for p in part_list.split(",") if p])
        except Exception as exc:  # noqa: BLE001 - one failed bench must not hide the others
            print(f"bench {name}: FAILED: {exc!r}", file=sys.stderr)
            outcomes[arg] = exc
            continue
        failed = checks.failed_checks(result)
        result = {
            "bench": name,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "all_pass": not failed,
            "failed_checks": failed,
            **{k: v for k, v in result.items() if k != "bench"},
        }
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(json.dumps(result, indent=2, ensure_ascii=False))
        outcomes[arg] = result
    status, lines = checks.verdict(outcomes)
    for line in lines:
        print(line, file=sys.stderr)
    return status


if __name__ == "__main__":
    # stdout keeps the JSON alone; the engine code the benches run logs warnings only.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    sys.exit(main(sys.argv[1:]))
