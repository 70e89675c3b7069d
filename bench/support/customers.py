"""A bench customer: an account with credits and one message of a given length; and the targets of a send."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.domain.accounts import Account, Message
from engine.domain.numbers import Number, normalize
from engine.domain.sends import Target
from engine.services.messages import Messages
from engine.settings import Settings
from engine.store import Database
from engine.store.accounts import create_account, get_account
from lab import tones


@dataclass
class Customer:
    account: Account
    message: Message


async def customer(
    db: Database, settings: Settings, tmp: Path, *, credits: int, seconds: float, email: str
) -> Customer:
    """A new account with `credits` and a `seconds`-long message (a 700 Hz tone) in its library."""
    new = await create_account(db, email, secret_key=settings.require("secret_key"), credits=credits)
    wav = tmp / "message.wav"
    tones.write_wav(wav, tones.sine(700.0, seconds, 0.4))
    message = await Messages(db, settings).add(new.account.id, wav, title="Bench", origin="file")
    return Customer(await get_account(db, new.account.id), message)


def targets(numbers: list[str]) -> list[Target]:
    out = []
    for raw in numbers:
        number = normalize(raw)
        if not isinstance(number, Number):
            raise ValueError(f"not a valid number: {raw!r}")
        out.append(Target(number))
    return out
