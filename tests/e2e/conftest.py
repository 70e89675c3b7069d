"""Browser tests share the real-stack fixtures of the integration tests; without Debian's chromium and
chromium-driver (scripts/bootstrap.sh installs them) they are skipped with the reason."""

from __future__ import annotations

import pytest

from tests.e2e.webdriver import CHROMEDRIVER, CHROMIUM
from tests.integration.conftest import sipp_ports  # noqa: F401 - a fixture, registered by importing it


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    skip = pytest.mark.skip(reason="needs Debian's chromium and chromium-driver (scripts/bootstrap.sh)")
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(skip)
