"""`python -m bench` fails when any bench misses any target: the pass flags and the exit status."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

import bench.__main__ as runner
from bench.support import checks


def passing(value: float = 0.3) -> dict[str, Any]:
    return {"ratio": value, "checks": {"ratio": checks.at_most(value, 0.5)}}


def test_checks_put_the_measured_value_and_the_target_beside_the_flag() -> None:
    assert checks.at_most(0.6, 0.5) == {"measured": 0.6, "comparison": "<=", "target": 0.5, "pass": False}
    assert checks.at_least(0.9, 0.9)["pass"] is True
    assert checks.below(3.0, 3.0)["pass"] is False
    assert checks.within(1.06, 1.0, 0.05) == {
        "measured": 1.06,
        "comparison": "within",
        "target": 1.0,
        "pass": False,
        "tolerance": 0.05,
    }
    assert checks.within(0.96, 1.0, 0.05)["pass"] is True
    assert checks.equal(1999, 2000)["pass"] is False


@pytest.mark.parametrize("missing", [None, math.nan])
def test_a_value_that_was_not_measured_never_passes(missing: float | None) -> None:
    for check in (
        checks.at_most(missing, 0.5),
        checks.at_least(missing, 0.9),
        checks.below(missing, 3.0),
        checks.within(missing, 1.0, 0.05),
    ):
        assert check["pass"] is False


def test_all_targets_met_exits_0() -> None:
    status, lines = checks.verdict({"recipients": passing(), "audio": passing(0.1)})
    assert status == 0
    assert lines == ["bench recipients: all 1 targets met", "bench audio: all 1 targets met"]


def test_one_missed_target_exits_1_and_names_it_with_its_figures() -> None:
    status, lines = checks.verdict({"audio": passing(), "recipients": passing(0.7)})
    assert status == 1
    assert "bench recipients: target missed: ratio: measured 0.7, target <= 0.5" in lines


def test_a_missed_target_inside_a_part_is_seen() -> None:
    # Bench (c) once reported its "never faster" flag beside a pass flag that left it out.
    dialer = {
        "a_originate_rate": {"checks": {"ratio": checks.at_least(0.93, 0.9)}},
        "c_cps_limit": {
            "checks": {
                "steady_error": checks.within(0.001, 0.0, 0.02),
                "never_faster": checks.at_most(24, 21),
            }
        },
    }
    status, lines = checks.verdict({"dialer": dialer})
    assert status == 1
    assert lines == ["bench dialer: target missed: c_cps_limit.never_faster: measured 24, target <= 21"]


def test_a_bench_that_raised_exits_1() -> None:
    status, lines = checks.verdict({"audio": passing(), "amd": RuntimeError("no SIPp")})
    assert status == 1
    assert "bench amd: FAILED: RuntimeError('no SIPp')" in lines


@pytest.mark.parametrize(
    "result",
    [
        {"ratio": 0.3},  # no checks at all
        {"checks": {}},
        {"checks": {"ratio": {"measured": 0.3, "target": 0.5}}},  # no flag
        {"checks": {"ratio": {"measured": 0.3, "target": 0.5, "pass": "yes"}}},  # not a boolean
        {"checks": {"ratio": True}},  # not a check
        {"checks": ["ratio"]},
    ],
)
def test_a_bench_without_a_proper_flag_does_not_pass(result: dict[str, Any]) -> None:
    status, _ = checks.verdict({"audio": result})
    assert status == 1


def test_the_runner_exits_non_zero_and_writes_the_failed_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    results = {"audio": passing(), "recipients": passing(0.8)}
    ran: list[tuple[str, list[str]]] = []

    def fake_run(name: str, parts: list[str]) -> dict[str, Any]:
        ran.append((name, parts))
        return results[name]

    monkeypatch.setattr(runner, "RESULTS", tmp_path)
    monkeypatch.setattr(runner, "_run", fake_run)

    assert runner.main(["audio", "recipients"]) == 1
    assert runner.main(["audio"]) == 0
    assert ran == [("audio", []), ("recipients", []), ("audio", [])]
    written = json.loads((tmp_path / "recipients.json").read_text())
    assert written["all_pass"] is False
    assert written["failed_checks"] == ["ratio: measured 0.8, target <= 0.5"]
    assert written["checks"]["ratio"]["pass"] is False
    assert "bench recipients: target missed: ratio: measured 0.8, target <= 0.5" in capsys.readouterr().err


def test_the_runner_passes_parts_and_fails_when_a_bench_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[tuple[str, list[str]]] = []

    def fake_run(name: str, parts: list[str]) -> dict[str, Any]:
        ran.append((name, parts))
        raise RuntimeError("stack down")

    monkeypatch.setattr(runner, "RESULTS", tmp_path)
    monkeypatch.setattr(runner, "_run", fake_run)

    assert runner.main(["dialer:a,c"]) == 1
    assert ran == [("dialer", ["a", "c"])]
    assert not (tmp_path / "dialer.json").exists()
