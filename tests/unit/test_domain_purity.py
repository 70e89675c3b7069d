"""The domain core (engine/domain) holds pure logic: no I/O, no clock, no threads, no logging.

The one test of that rule. Imports are read from the bytecode compile() makes, not from ast.parse:
every import is compiled wherever it stands (module level, inside a function, under `if TYPE_CHECKING:`),
and compile() builds no Python AST objects, so Debian's Python 3.11.2 cannot raise its "AST constructor
recursion depth mismatch" here (CPython gh-106905, fixed in 3.11.8, not in Debian 12's 3.11.2: two
threads building AST objects at once, which a test cannot rule out in a shared process). Code the
compiler drops as unreachable (`if False:`) is not seen: it never runs.
"""

from __future__ import annotations

import dis
import textwrap
import types

import pytest

from engine.settings import PROJECT_ROOT

DOMAIN = PROJECT_ROOT / "engine" / "domain"

# A module is forbidden with its submodules ("os" forbids "os.path").
FORBIDDEN = {
    # network and event loop: the edges (store, telephony, web, mail) talk to the world
    "asyncio", "socket", "ssl", "select", "selectors", "http", "urllib", "smtplib",
    "aiohttp", "asyncpg", "aiosmtpd",
    # processes, threads, signals
    "subprocess", "threading", "multiprocessing", "concurrent", "signal",
    # files and the operating system (pure path arithmetic, PurePosixPath, is allowed)
    "os", "shutil", "tempfile", "glob",
    # the clock: the domain is given the time (see also FORBIDDEN_NAMES)
    "time",
    # logging: the domain returns what happened, its callers log it
    "logging", "structlog",
    # password hashing: deliberately slow CPU work (≈ 0.1 s), run by engine.store.accounts off the loop
    "argon2",
    # a dynamic import would hide any of the above from this test
    "importlib",
}  # fmt: skip
# Inside the project the domain knows only itself and the error types its rules raise: never an
# adapter (engine.store, engine.telephony, engine.web, engine.stack, ...) nor the IVR.
PROJECT_ALLOWED = {"engine.domain", "engine.errors"}
PROJECT_PACKAGES = {"engine", "ivr", "tests", "bench"}
# Names that reach the world without an import: the clock (datetime.now, any object's), and the builtins
# for files and dynamic code (as globals only: `BreakerState.open` is an attribute, not the builtin).
FORBIDDEN_NAMES = {"now", "today", "utcnow"}
FORBIDDEN_BUILTINS = {"open", "__import__", "exec", "eval"}
_GLOBAL_LOADS = {"LOAD_GLOBAL", "LOAD_NAME"}


def _within(name: str, modules: set[str]) -> bool:
    return any(name == m or name.startswith(m + ".") for m in modules)


def _code_objects(source: str, filename: str) -> list[types.CodeType]:
    pending = [compile(source, filename, "exec", dont_inherit=True)]
    found = []
    while pending:
        code = pending.pop()
        found.append(code)
        pending += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    return found


def imports_and_names(source: str, package: str, filename: str = "<source>") -> tuple[set[str], set[str]]:
    """Every module `source` imports (with `X.name` for each `from X import name`, relative imports
    resolved against `package`), and every name it uses (attributes included; builtins it loads as
    globals are marked `builtin:<name>`)."""
    imported: set[str] = set()
    names: set[str] = set()
    for code in _code_objects(source, filename):
        names |= set(code.co_names)
        instructions = list(dis.get_instructions(code))
        names |= {f"builtin:{ins.argval}" for ins in instructions if ins.opname in _GLOBAL_LOADS}
        for i, ins in enumerate(instructions):
            if ins.opname != "IMPORT_NAME":
                continue
            # CPython pushes the level, then the from-list, then imports: `from ..a import b` is
            # (2, ("b",), "a").
            level, fromlist = instructions[i - 2].argval, instructions[i - 1].argval
            module = str(ins.argval)
            if level:
                base = package.split(".")[: len(package.split(".")) - level + 1]
                module = ".".join([*base, module] if module else base)
            imported.add(module)
            imported |= {f"{module}.{name}" for name in fromlist or () if name != "*"}
    return imported, names


def violations(source: str, package: str = "engine.domain") -> list[str]:
    imported, names = imports_and_names(source, package)
    found = [f"imports {m}" for m in sorted(imported) if _within(m, FORBIDDEN)]
    found += [
        f"imports {m}"
        for m in sorted(imported)
        if m.split(".")[0] in PROJECT_PACKAGES and m != "engine" and not _within(m, PROJECT_ALLOWED)
    ]
    found += [f"uses {n}" for n in sorted(names & FORBIDDEN_NAMES)]
    found += [f"uses {n}" for n in sorted(FORBIDDEN_BUILTINS) if f"builtin:{n}" in names]
    return found


def test_domain_modules_are_pure() -> None:
    modules = sorted(DOMAIN.rglob("*.py"))
    assert len(modules) > 10
    offenders = {}
    for path in modules:
        found = violations(path.read_text(encoding="utf-8"))
        if found:
            offenders[str(path.relative_to(PROJECT_ROOT))] = found
    assert offenders == {}


# The detector itself: each form below must be seen, or the test above could pass on an impure module.
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import asyncio", ["imports asyncio"]),
        ("import os.path as p", ["imports os.path"]),
        ("from time import monotonic", ["imports time", "imports time.monotonic"]),
        ("def f():\n    import subprocess\n    return subprocess", ["imports subprocess"]),
        (
            "class A:\n    def m(self):\n        from socket import socket\n        return socket",
            ["imports socket", "imports socket.socket"],
        ),
        (
            """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from engine.store import Database
            """,
            ["imports engine.store", "imports engine.store.Database"],
        ),
        ("from engine import store", ["imports engine.store"]),
        ("from engine import errors, telephony", ["imports engine.telephony"]),
        ("from .. import web", ["imports engine.web"]),
        (
            "from ..stack.asterisk import cli",
            ["imports engine.stack.asterisk", "imports engine.stack.asterisk.cli"],
        ),
        ("from ivr import service", ["imports ivr", "imports ivr.service"]),
        ("import argon2.exceptions", ["imports argon2.exceptions"]),
        ("import structlog", ["imports structlog"]),
        ("mod = __import__('os')", ["uses __import__"]),
        ("from datetime import datetime\nt = datetime.now()", ["uses now"]),
        ("def f(p):\n    with open(p) as f:\n        return f.read()", ["uses open"]),
        # allowed: the domain itself, its error types, pure standard modules
        ("from . import numbers\nfrom .outcomes import Outcome", []),
        ("from engine.errors import InvalidInput\nfrom engine.domain.numbers import normalize", []),
        ("import re, unicodedata\nfrom pathlib import PurePosixPath\nfrom datetime import datetime", []),
        ("import timeit_like_name_not_time", []),
        ("class State:\n    open = 'open'\nx = State.open", []),  # an attribute, not the builtin
    ],
)
def test_the_check_sees_every_form_of_import(source: str, expected: list[str]) -> None:
    assert violations(textwrap.dedent(source)) == expected
