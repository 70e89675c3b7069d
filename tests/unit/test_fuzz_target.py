"""`make fuzz` runs every fuzz test with the issue's full counts and no time cap (issue 17); `make test`
runs the same tests with small counts under one shared time budget."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.security import fuzzing

ROOT = Path(__file__).resolve().parents[2]


def test_make_fuzz_runs_every_fuzz_test_with_the_issues_counts_and_no_cap() -> None:
    dry = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "fuzz"], capture_output=True, text=True, check=True
    ).stdout.replace("\\\n", " ")
    settings = dict(re.findall(r"\b(VOCALCAST_FUZZ_[A-Z_]+)=(\S+)", dry))
    assert settings == {
        "VOCALCAST_FUZZ_HTTP": "10000",
        "VOCALCAST_FUZZ_MAIL": "1000",
        "VOCALCAST_FUZZ_CSV": "200",
        "VOCALCAST_FUZZ_AUDIO": "200",
        "VOCALCAST_FUZZ_BUDGET_S": "0",
    }
    fuzz_tests = {str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "security").glob("test_fuzz_*.py")}
    assert fuzz_tests >= {
        "tests/security/test_fuzz_httpphp.py",
        "tests/security/test_fuzz_mail.py",
        "tests/security/test_fuzz_uploads.py",
    }
    assert {word for word in dry.split() if word.startswith("tests/")} == fuzz_tests


def test_the_shared_budget_stops_the_fuzz_tests_once_spent(monkeypatch: pytest.MonkeyPatch) -> None:
    budget = fuzzing._Budget()
    monkeypatch.setattr(fuzzing, "BUDGET_S", 120.0)
    with budget:
        assert budget.left()
    budget.spent = 119.0
    assert budget.left()
    budget.spent = 120.5  # spent by the fuzz tests before: the next one draws nothing new
    with budget:
        assert not budget.left()
    monkeypatch.setattr(fuzzing, "BUDGET_S", 0.0)  # make fuzz: no cap
    assert budget.left()
