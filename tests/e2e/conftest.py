"""Browser tests share the real-stack fixtures of the integration tests. Debian's chromium and
chromium-driver are required like every tool the bootstrap installs (tests/support/tools.py)."""

from __future__ import annotations

from tests.integration.conftest import sipp_ports  # noqa: F401 - a fixture, registered by importing it
