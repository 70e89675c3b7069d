"""Helpers for tests that run sends end to end: an account with a message, a trunk of SIPp callees."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from engine.domain.accounts import Account, Message
from engine.domain.numbers import Number, normalize
from engine.domain.sends import Target
from engine.library import add_message
from engine.settings import Settings
from engine.store import Database
from engine.store.accounts import create_account, get_account
from tests.support import tones
from tests.support.sipp import SippProcess

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
    message = await add_message(db, settings, new.account.id, wav, title="Test", origin="file")
    return Customer(await get_account(db, new.account.id), message)


def targets(numbers: list[str]) -> list[Target]:
    out = []
    for raw in numbers:
        number = normalize(raw)
        assert isinstance(number, Number), raw
        out.append(Target(number))
    return out


def invites_per_number(*sipps: SippProcess) -> Counter[str]:
    """INVITEs each number received, from SIPp's own logs."""
    counts: Counter[str] = Counter()
    for sipp in sipps:
        for event in sipp.log_events():
            if event.get("event") == "INVITE":
                counts[event["number"]] += 1
    return counts
