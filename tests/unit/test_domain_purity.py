"""The domain core (engine/domain) holds pure logic: no I/O, no clock, no threads."""

from __future__ import annotations

import ast
from pathlib import Path


def test_domain_modules_are_pure() -> None:
    forbidden = {"asyncio", "aiohttp", "asyncpg", "aiosmtpd", "socket", "time", "threading", "subprocess"}
    forbidden |= {"os", "shutil", "structlog", "engine.store", "engine.telephony", "engine.web"}
    root = Path(__file__).resolve().parents[2] / "engine" / "domain"
    modules_checked = sorted(root.glob("*.py"))
    assert len(modules_checked) > 10
    for path in modules_checked:
        name = path.name
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                parts = module.split(".")
                assert parts[0] not in forbidden, f"{name} imports {module}"
                assert ".".join(parts[:2]) not in forbidden, f"{name} imports {module}"
