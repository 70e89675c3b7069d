"""`python -m bench [NAME ...]`: run the benchmarks, write bench/results/<name>.json."""

from __future__ import annotations

import importlib
import json
import logging
import sys
import time
from pathlib import Path

import structlog

RESULTS = Path(__file__).parent / "results"
# Order matters little; the stack-backed ones share one test instance.
BENCHES = ["audio", "recipients", "ari_originate", "dialer", "amd"]


def main(argv: list[str]) -> int:
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    names = argv or BENCHES
    RESULTS.mkdir(exist_ok=True)
    failed = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        started = time.time()
        try:
            result = module.run()
        except Exception as exc:  # noqa: BLE001 - one failed bench must not hide the others
            print(f"bench {name}: FAILED: {exc!r}", file=sys.stderr)
            failed.append(name)
            continue
        result = {"bench": name, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), **result}
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
