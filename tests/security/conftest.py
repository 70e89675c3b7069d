"""Attacks on the real service: an engine in this process on the test stack, real HTTP and SMTP."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP

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
    running: int = 0
    most_at_once: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def password_checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[Checks]:
    checks = Checks()
    real = accounts_store._verify

    def counting(password_hash: str, password: str) -> bool:
        with checks.lock:  # verifications run in worker threads
            checks.count += 1
            checks.running += 1
            checks.most_at_once = max(checks.most_at_once, checks.running)
        try:
            return real(password_hash, password)
        finally:
            with checks.lock:
                checks.running -= 1

    monkeypatch.setattr(accounts_store, "_verify", counting)
    yield checks


class Sink:
    """The company's relay, standing in: every e-mail the engine sends."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(BytesParser(policy=policy.default).parsebytes(envelope.content))  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str, subject: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address and m["Subject"] == subject]


@pytest.fixture
async def sink() -> AsyncIterator[tuple[Sink, int]]:
    handler = Sink()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(handler), "127.0.0.1", 0)
    yield handler, server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.fixture
async def relayed(stack_settings: Settings, db: Database, sink: tuple[Sink, int]) -> AsyncIterator[Engine]:
    """An engine whose e-mails reach the sink."""
    settings = dataclasses.replace(stack_settings, smtp_relay=f"127.0.0.1:{sink[1]}")
    running = Engine(settings)
    running.run_dialer = False
    async with running:
        yield running
