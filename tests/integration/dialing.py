"""Helpers for tests that run sends end to end: an account with a message, a trunk of SIPp callees."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from engine.domain.accounts import Account, Message
from engine.domain.numbers import Number, normalize
from engine.domain.sends import Target
from engine.services.messages import Messages
from engine.settings import Settings
from engine.store import Database
from engine.store.accounts import create_account, get_account
from lab import tones
from lab.sipp import SippProcess

SIPP_DIR = Path(__file__).parent.parent / "sipp"


@dataclass
class Customer:
    account: Account
    message: Message


async def customer(
    db: Database,
    settings: Settings,
    tmp: Path,
    *,
    credits: int = 1000,
    seconds: float = 2.0,
    email: str = "client@example.fr",
) -> Customer:
    new = await create_account(db, email, secret_key=settings.require("secret_key"), credits=credits)
    wav = tmp / "message.wav"
    tones.write_wav(wav, tones.sine(700.0, seconds, 0.4))
    message = await Messages(db, settings).add(new.account.id, wav, title="Test", origin="file")
    return Customer(await get_account(db, new.account.id), message)


def targets(numbers: list[str]) -> list[Target]:
    out = []
    for raw in numbers:
        number = normalize(raw)
        assert isinstance(number, Number), raw
        out.append(Target(number))
    return out


def invites_per_number(*sipps: SippProcess) -> Counter[str]:
    """Calls (distinct INVITE dialogs: a retransmitted INVITE is the same call) each number received,
    from SIPp's own logs."""
    dialogs: set[tuple[str, str]] = set()
    for sipp in sipps:
        for event in sipp.log_events():
            if event.get("event") == "INVITE":
                dialogs.add((event["number"], event.get("call_id", "")))
    return Counter(number for number, _ in dialogs)


class EngineProcess:
    """`vocalcast serve` as a real separate process (kill -9 tests, two engines sharing work)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['VOCALCAST_HTTP_PORT']}"

    async def start(self, timeout_s: float = 20.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "engine.cli",
                "serve",
                env=self.env,
                stdout=log,
                stderr=log,
                cwd=str(Path(__file__).parent.parent.parent),
            )
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(
                        self.url + "/healthz", timeout=aiohttp.ClientTimeout(total=2)
                    ) as resp:
                        if resp.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if self.proc.returncode is not None or asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"engine did not come up; see {self.log_path}")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        """kill -9: no goodbye, no cleanup."""
        if self.proc is not None and self.proc.returncode is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        else:
            await self.proc.wait()


def engine_env(overrides: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith("VOCALCAST_") or k in {"PATH", "LANG", "HOME"}}
    env.update(overrides)
    return env


async def customer_greeting(db: Database, settings: Settings, who: Customer, tmp: Path) -> int:
    """A greeting message for the customer (a short tone); returns its reference."""
    wav = tmp / "greeting.wav"
    tones.write_wav(wav, tones.sine(500.0, 1.5, 0.4))
    message = await Messages(db, settings).add(
        who.account.id, wav, title="Accueil", origin="file", is_greeting=True
    )
    return message.ref
