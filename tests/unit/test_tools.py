"""The test run's own requirements (tests/support/tools.py): every program is installed by the bootstrap,
a missing one stops the run with its name and package, and no test skips itself."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

from engine.settings import PROJECT_ROOT
from tests.support import tools


def _bootstrap_packages() -> set[str]:
    text = (PROJECT_ROOT / "scripts" / "bootstrap.sh").read_text()
    block = re.search(r"^APT_PACKAGES=\((.*?)^\)", text, re.MULTILINE | re.DOTALL)
    assert block is not None
    return {word for line in block[1].splitlines() for word in line.split("#")[0].split()}


def test_the_bootstrap_installs_every_package_the_tests_need() -> None:
    packages = _bootstrap_packages()
    assert {"tshark", "sip-tester", "chromium"} <= packages  # the parse found the list
    assert set(tools.TOOLS.values()) - packages == set()


def test_each_missing_requirement_is_named_with_its_package() -> None:
    assert tools.missing({"sh": "dash"}, euid=0) == []
    assert tools.missing({"sh": "dash", "no-such-program-xyz": "xyz-tools"}, euid=0) == [
        "no-such-program-xyz is missing: Debian package xyz-tools; scripts/bootstrap.sh installs it "
        "(`make test` runs it)"
    ]
    assert tools.missing({"sh": "dash"}, euid=1000) == [tools.ROOT_REASON]


def test_a_missing_program_stops_the_run_before_any_test() -> None:
    # A pytest run of a harmless module, with one more program required than the machine has.
    code = textwrap.dedent("""
        import sys
        import pytest
        from tests.support import tools
        tools.TOOLS = {**tools.TOOLS, "no-such-program-xyz": "xyz-tools"}
        sys.exit(pytest.main(["-p", "no:cacheprovider", "-q", "tests/unit/test_layout.py"]))
    """)
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 4, run.stdout + run.stderr  # pytest's usage error: no test ran
    assert "no-such-program-xyz is missing: Debian package xyz-tools" in run.stdout + run.stderr
    assert "passed" not in run.stdout


def test_no_test_skips_itself() -> None:
    """A test that cannot run fails: skips would hide a broken machine behind a green run."""
    forms = re.compile(r"pytest\.skip\(|mark\.skip|skipif|importorskip|mark\.xfail|pytest\.xfail\(")
    offenders = [
        f"{path.relative_to(PROJECT_ROOT)}:{n}"
        for path in sorted((PROJECT_ROOT / "tests").rglob("*.py"))
        if path.name != "test_tools.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if forms.search(line)
    ]
    assert offenders == []
