"""Pass flags: each bench reports, under a "checks" key, one entry per target with the measured value and
the target beside its boolean; `python -m bench` exits non-zero when any is false (see failed_checks).

A check whose measured value is missing (None, NaN) fails: a bench that could not measure did not pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

Check = dict[str, Any]


def _holds(measured: float | None, test: Callable[[float], bool]) -> bool:
    return measured is not None and not math.isnan(measured) and test(measured)


def _check(measured: Any, comparison: str, target: Any, passed: bool, **extra: Any) -> Check:
    return {"measured": measured, "comparison": comparison, "target": target, "pass": bool(passed), **extra}


def at_most(measured: float | None, target: float) -> Check:
    return _check(measured, "<=", target, _holds(measured, lambda v: v <= target))


def below(measured: float | None, target: float) -> Check:
    return _check(measured, "<", target, _holds(measured, lambda v: v < target))


def at_least(measured: float | None, target: float) -> Check:
    return _check(measured, ">=", target, _holds(measured, lambda v: v >= target))


def within(measured: float | None, target: float, tolerance: float) -> Check:
    """|measured - target| <= tolerance."""
    ok = _holds(measured, lambda v: abs(v - target) <= tolerance)
    return _check(measured, "within", target, ok, tolerance=tolerance)


def equal(measured: Any, target: Any) -> Check:
    return _check(measured, "==", target, measured == target)


def _walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "checks":
                if not isinstance(value, Mapping):
                    yield where, value
                    continue
                for name, check in value.items():
                    yield (f"{path}.{name}" if path else str(name)), check
            else:
                yield from _walk(value, where)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


def all_checks(result: Mapping[str, Any]) -> dict[str, Any]:
    """Every check of a bench's result, wherever its "checks" dicts sit, by dotted name."""
    return dict(_walk(result, ""))


def failed_checks(result: Mapping[str, Any]) -> list[str]:
    """Names of the checks that did not pass, each with its measured value and target. A result without
    any check fails too: a bench that reports no target cannot pass silently."""
    checks = all_checks(result)
    if not checks:
        return ["(no check reported)"]
    failed = []
    for name, check in checks.items():
        if not isinstance(check, Mapping) or check.get("pass") is not True:
            if isinstance(check, Mapping):
                failed.append(
                    f"{name}: measured {check.get('measured')!r}, target {check.get('comparison', '')} "
                    f"{check.get('target')!r}".replace("  ", " ")
                )
            else:
                failed.append(f"{name}: not a check ({check!r})")
    return failed


def verdict(outcomes: Mapping[str, Mapping[str, Any] | BaseException]) -> tuple[int, list[str]]:
    """`python -m bench`'s exit status and the lines explaining it, from each bench's result (or the
    exception it raised): 1 when a bench raised or missed any target, else 0."""
    lines = []
    status = 0
    for name, outcome in outcomes.items():
        if isinstance(outcome, BaseException):
            status = 1
            lines.append(f"bench {name}: FAILED: {outcome!r}")
            continue
        failed = failed_checks(outcome)
        if failed:
            status = 1
            lines.extend(f"bench {name}: target missed: {line}" for line in failed)
        else:
            lines.append(f"bench {name}: all {len(all_checks(outcome))} targets met")
    return status, lines
