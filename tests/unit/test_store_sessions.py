"""No pooled PostgreSQL session keeps state between two users of its connection: the pool gives
connections back without asyncpg's reset query (engine/store/db.py, _keep_session), so the code must
not leave any. Checked on the source: settings only SET LOCAL (or set_config(..., true)), advisory
locks only transaction-scoped, no LISTEN, no WITH HOLD cursor; the migration's session lock runs on a
connection of its own."""

from __future__ import annotations

import re

import pytest

from engine.settings import PROJECT_ROOT

SOURCES = sorted(p for d in ("engine", "ivr") for p in (PROJECT_ROOT / d).rglob("*.py"))
SESSION_STATE = {
    "a session setting": re.compile(r"""["']\s*SET\s+(?!LOCAL\b)(SESSION\s+)?\w+\s*(=|TO\b)""", re.I),
    "a session setting by set_config": re.compile(r"set_config\([^)]*,\s*false\s*\)", re.I),
    "a session advisory lock": re.compile(r"pg_advisory_lock(_shared)?\(", re.I),
    "a LISTEN": re.compile(r"""["']\s*LISTEN\s+\w+|add_listener\("""),  # SQL's upper case: not "Listen (1)"
    "a cursor held past its transaction": re.compile(r"WITH\s+HOLD", re.I),
}
# The one session lock, on migrate()'s own connection (asyncpg.connect, never the pool's).
ALLOWED = {("engine/store/db.py", "a session advisory lock")}


def found(text: str) -> list[str]:
    return [what for what, pattern in SESSION_STATE.items() if pattern.search(text)]


def test_no_pooled_session_is_left_with_state() -> None:
    offenders = []
    for path in SOURCES:
        relative = str(path.relative_to(PROJECT_ROOT))
        offenders += [
            f"{relative}: {what}" for what in found(path.read_text()) if (relative, what) not in ALLOWED
        ]
    assert not offenders, offenders


@pytest.mark.parametrize(
    "sql",
    [
        'await conn.execute("SET enable_nestloop = off")',
        "await conn.execute('SET SESSION jit TO off')",
        "await conn.execute(\"SELECT set_config('jit', 'off', false)\")",
        'await conn.execute("SELECT pg_advisory_lock($1)", key)',
        'await conn.execute("LISTEN sends")',
        'await conn.execute("DECLARE c CURSOR WITH HOLD FOR SELECT 1")',
    ],
)
def test_each_kind_of_session_state_is_caught(sql: str) -> None:
    assert found(sql)


def test_transaction_scoped_state_is_fine() -> None:
    assert not found('await conn.execute("SET LOCAL enable_nestloop = off; SET LOCAL jit = off")')
    assert not found('await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", a, b)')
    assert not found("await conn.execute(\"SELECT set_config('enable_nestloop', $1, true)\", previous)")
