"""Attacks on the real service: an engine in this process on the test stack, real HTTP and SMTP."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.app import Engine
from engine.settings import Settings
from engine.store import Database
from engine.store import accounts as accounts_store
from engine.store.accounts import set_password
from tests.integration.dialing import Customer, customer

pytestmark = pytest.mark.integration
PASSWORD = "motdepasse-solide-42"


@pytest.fixture
async def engine(stack_settings: Settings, db: Database) -> AsyncIterator[Engine]:
    running = Engine(stack_settings)
    running.run_dialer = False
    async with running:
        yield running


@pytest.fixture
async def client(db: Database, stack_settings: Settings, tmp_path: Path) -> Customer:
    who = await customer(db, stack_settings, tmp_path, credits=100)
    await set_password(db, who.account.id, PASSWORD)
    return who


@dataclass
class Checks:
    """Every argon2 verification the engine ran (real passwords and the dummy one of unknown e-mails)."""

    count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def password_checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[Checks]:
    checks = Checks()
    real = accounts_store._verify

    def counting(password_hash: str, password: str) -> bool:
        with checks.lock:  # verifications run in worker threads
            checks.count += 1
        return real(password_hash, password)

    monkeypatch.setattr(accounts_store, "_verify", counting)
    yield checks
