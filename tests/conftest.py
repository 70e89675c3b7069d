"""Test settings: `make test` runs its own instance (state dir and port block), never the user's.

VOCALCAST_TEST_PORT_BASE (default 21000) moves the whole block, so two checkouts can test at once.
Every timer a test waits on is shortened here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from engine.settings import Settings
from tests.support import tools

# Property tests are reproducible by default: a fixed example budget derived from the test itself (no
# example database on disk, no deadline on a shared machine). HYPOTHESIS_PROFILE=explore draws new,
# ten times as many examples for a hunt outside `make test`.
hypothesis_settings.register_profile("vocalcast", derandomize=True, database=None, deadline=None)
hypothesis_settings.register_profile(
    "explore", max_examples=1000, derandomize=False, database=None, deadline=None
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "vocalcast"))

PORT_BASE = int(os.environ.get("VOCALCAST_TEST_PORT_BASE", "21000"))
# tests/smoke builds container images and brings docker/compose.yml up through podman: `make smoke` runs
# it (VOCALCAST_SMOKE=1), `make test` leaves it out.
collect_ignore = [] if os.environ.get("VOCALCAST_SMOKE") == "1" else ["smoke"]
# The big cluster run through Kamailio (issue 19, about 2 min): `make cluster-test`.
if os.environ.get("VOCALCAST_CLUSTER_TEST") != "1":
    collect_ignore.append("integration/test_cluster_edge_big.py")
ARTIFACTS = Path(__file__).parent / "artifacts"


def test_environ() -> dict[str, str]:
    base = PORT_BASE
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "VOCALCAST_STATE_DIR": f"/var/lib/vocalcast-test-{base}",
        "VOCALCAST_CACHE_DIR": os.environ.get("VOCALCAST_CACHE_DIR", "/var/cache/vocalcast"),
        "VOCALCAST_NODE": "test",
        "VOCALCAST_HTTP_PORT": str(base + 80),
        "VOCALCAST_ARI_PORT": str(base + 88),
        "VOCALCAST_SIP_PORT": str(base + 60),
        "VOCALCAST_PG_PORT": str(base + 32),
        "VOCALCAST_AGI_PORT": str(base + 73),
        "VOCALCAST_SMTP_PORT": str(base + 25),
        "VOCALCAST_DEMO_SIP_PORT": str(base + 70),
        "VOCALCAST_HEP_PORT": str(base + 99),
        "VOCALCAST_MEDIA_HTTP_PORT": str(base + 84),  # the cluster's nodes: + 100 x I
        "VOCALCAST_RTP_START": str(base + 2000),
        "VOCALCAST_MAX_CHANNELS": "100",
        "VOCALCAST_PG_FSYNC": "0",
        "VOCALCAST_RING_TIMEOUT_S": "5",
        # A request to a phone that stopped answering (the session timer's refresh, then its BYE) fails after
        # 64 x T1 = 6.4 s instead of 32 s: longer than any ring timeout of the tests.
        "VOCALCAST_SIP_T1_MS": "100",
        # A trunk added by a test is pinged within 2 s, and a dead one is seen as such as fast.
        "VOCALCAST_QUALIFY_FREQUENCY_S": "2",
        "VOCALCAST_ARI_RECONNECT_MAX_S": "0.5",
        "VOCALCAST_LOG_FORMAT": "json",
        "VOCALCAST_LOG_LEVEL": "info",
    }


def sipp_port(index: int) -> int:
    """Ports for SIPp processes of the tests: BASE+500 .. BASE+999, two per process (SIP, media)."""
    if not 0 <= index < 250:
        raise ValueError(index)
    return PORT_BASE + 500 + 2 * index


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return Settings.from_env(test_environ())


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def stack_settings(base_settings: Settings) -> Iterator[Settings]:
    """The test instance's stack (PostgreSQL, Asterisk), up for the whole session."""
    from engine import stack

    os.environ.update({k: v for k, v in test_environ().items() if k != "PATH"})
    result = stack.up(base_settings, engine=False)
    yield result.settings
    if os.environ.get("VOCALCAST_TEST_KEEP_STACK") != "1":
        stack.down(result.settings)


@pytest.fixture
async def db(stack_settings: Settings):  # type: ignore[no-untyped-def]
    """A pool on the test database, every table emptied first (migrations stay applied)."""
    from engine.store import Database

    async with Database(stack_settings.dsn, min_size=1, max_size=5) as database:
        tables = await database.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
        if tables:
            names = ", ".join(f'"{r["tablename"]}"' for r in tables)
            await database.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        yield database


def pytest_sessionstart(session: pytest.Session) -> None:
    """A missing program or a run as another user than root fails the whole run here, never a skip."""
    problems = tools.missing()
    if problems:
        pytest.exit(
            "cannot run the tests:\n  " + "\n  ".join(problems), returncode=pytest.ExitCode.USAGE_ERROR
        )


def pytest_configure(config: pytest.Config) -> None:
    from engine.logs import configure

    configure("info", "console", cache=False)
