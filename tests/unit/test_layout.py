"""Architecture rules that code review alone would let slip."""

from __future__ import annotations

import re
from pathlib import Path

from engine.settings import PROJECT_ROOT

# A regex, not ast.parse: Debian's Python 3.11.2 trips "AST constructor recursion depth mismatch"
# inside pytest's assertion rewriting after ast.parse in a test.
_IMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", re.MULTILINE)

FORBIDDEN_IN_DOMAIN = {
    "asyncio",
    "asyncpg",
    "aiohttp",
    "aiosmtpd",
    "subprocess",
    "socket",
    "engine.store",
    "engine.telephony",
    "engine.web",
    "engine.stack",
}


def _imports(path: Path) -> set[str]:
    return {a or b for a, b in _IMPORT.findall(path.read_text())}


def test_domain_core_does_no_io() -> None:
    offenders = {}
    for path in (PROJECT_ROOT / "engine" / "domain").glob("*.py"):
        bad = {n for n in _imports(path) if any(n == f or n.startswith(f + ".") for f in FORBIDDEN_IN_DOMAIN)}
        if bad:
            offenders[path.name] = sorted(bad)
    assert offenders == {}


def test_only_settings_reads_the_environment() -> None:
    offenders = []
    for path in (PROJECT_ROOT / "engine").rglob("*.py"):
        if path.name == "settings.py":
            continue
        text = path.read_text()
        if "os.environ" in text or "os.getenv" in text:
            offenders.append(str(path.relative_to(PROJECT_ROOT)))
    # The stack passes the environment on to the processes it starts, without reading settings from it.
    assert offenders == ["engine/stack/__init__.py"]
