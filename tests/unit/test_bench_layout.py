"""The benches stand on their own support code: nothing they import, directly or through the project's
own modules (bench/, lab/, engine/, ivr/), is the `tests` package."""

from __future__ import annotations

import re
from pathlib import Path

from engine.settings import PROJECT_ROOT

# A regex, not ast.parse (see test_layout.py: Debian's Python 3.11.2 and pytest's assertion rewriting).
_FROM = re.compile(r"^\s*from\s+([\w.]+)\s+import\s+(\([^)]*\)|[^\n]+)", re.MULTILINE)
_IMPORT = re.compile(r"^\s*import\s+([\w.]+(?:\s+as\s+\w+)?(?:\s*,\s*[\w.]+(?:\s+as\s+\w+)?)*)", re.MULTILINE)
_DYNAMIC = re.compile(r"""(?:import_module|__import__)\(\s*[rbf]?["']([\w.]+)""")
LOCAL_PACKAGES = ("bench", "lab", "engine", "ivr")


def imported_modules(text: str) -> set[str]:
    """Every module a source text names in an import (function-level and dynamic ones included); for
    `from a import b`, both `a` and `a.b` (b may be a submodule)."""
    names: set[str] = set()
    for module, imported in _FROM.findall(text):
        names.add(module)
        for item in imported.strip("()").split(","):
            name = item.split("#")[0].split(" as ")[0].strip()
            if name and name != "*":
                names.add(f"{module}.{name}")
    for group in _IMPORT.findall(text):
        names.update(item.split(" as ")[0].strip() for item in group.split(","))
    names.update(_DYNAMIC.findall(text))
    return names


def module_file(root: Path, name: str) -> Path | None:
    """The project file of a module name, or None when it is not one of the project's own modules."""
    if name.split(".", maxsplit=1)[0] not in LOCAL_PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def is_tests(name: str) -> bool:
    return name == "tests" or name.startswith("tests.")


def chain_to_tests(root: Path, start: Path) -> list[str] | None:
    """The chain of project modules from `start` to an import of `tests`, or None when there is none."""
    queue = [[start]]
    seen = {start}
    while queue:
        chain = queue.pop(0)
        for name in sorted(imported_modules(chain[-1].read_text())):
            if is_tests(name):
                return [*(str(p.relative_to(root)) for p in chain), name]
            target = module_file(root, name)
            if target is not None and target not in seen:
                seen.add(target)
                queue.append([*chain, target])
    return None


def imports_of_tests(root: Path) -> dict[str, list[str]]:
    """Every bench module that reaches `tests`, with the chain of modules that leads there."""
    found = {}
    for start in sorted((root / "bench").rglob("*.py")):
        chain = chain_to_tests(root, start)
        if chain is not None:
            found[str(start.relative_to(root))] = chain
    return found


def test_no_bench_module_imports_tests() -> None:
    assert imports_of_tests(PROJECT_ROOT) == {}


def test_the_check_sees_direct_late_dynamic_and_indirect_imports(tmp_path: Path) -> None:
    (tmp_path / "bench" / "support").mkdir(parents=True)
    (tmp_path / "lab").mkdir()
    (tmp_path / "bench" / "__init__.py").write_text("")
    (tmp_path / "bench" / "support" / "__init__.py").write_text("")
    (tmp_path / "lab" / "__init__.py").write_text("")
    (tmp_path / "bench" / "clean.py").write_text("import json\nfrom bench.support import fine\n")
    (tmp_path / "bench" / "support" / "fine.py").write_text("from lab import tones\n")
    (tmp_path / "lab" / "tones.py").write_text("import math\n")
    (tmp_path / "bench" / "late.py").write_text(
        "def f():\n    from tests.integration.dialing import (\n        customer,\n    )\n"
    )
    (tmp_path / "bench" / "plain.py").write_text("import os, tests.support.sipp as sipp\n")
    (tmp_path / "bench" / "dynamic.py").write_text(
        'import importlib\nimportlib.import_module("tests.conftest")\n'
    )
    (tmp_path / "bench" / "indirect.py").write_text("from lab import helper\n")
    (tmp_path / "lab" / "helper.py").write_text("from tests import conftest\n")

    found = imports_of_tests(tmp_path)

    assert found == {
        "bench/dynamic.py": ["bench/dynamic.py", "tests.conftest"],
        "bench/indirect.py": ["bench/indirect.py", "lab/helper.py", "tests"],
        "bench/late.py": ["bench/late.py", "tests.integration.dialing"],
        "bench/plain.py": ["bench/plain.py", "tests.support.sipp"],
    }
