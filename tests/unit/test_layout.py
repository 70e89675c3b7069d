"""Architecture rules that code review alone would let slip."""

from __future__ import annotations

from engine.settings import PROJECT_ROOT


def test_only_settings_reads_the_environment() -> None:
    offenders = []
    for path in (PROJECT_ROOT / "engine").rglob("*.py"):
        if path.parent.name == "settings":  # engine/settings/, the one reader of the environment
            continue
        text = path.read_text()
        if "os.environ" in text or "os.getenv" in text:
            offenders.append(str(path.relative_to(PROJECT_ROOT)))
    # The stack passes the environment on to the processes it starts, without reading settings from it.
    assert offenders == ["engine/stack/__init__.py"]
