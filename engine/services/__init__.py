"""The services room: every use case the entry points call.

The pages, the JSON API and http.php (engine/web), the e-mail intake (engine/mail.py), the CLI's
customer commands (engine/commands) and the recording IVR (ivr/) receive a ``Services`` object and call
it; they never reach the store, the telephony adapter or the engine process directly. A service holds
its use case — validation, transaction, the calls to the store, to telephony and to outgoing mail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from engine.services.accounts import Accounts
from engine.services.contacts import Contacts
from engine.services.health import Health
from engine.services.intake import Intake
from engine.services.logins import Logins
from engine.services.messages import Messages
from engine.services.privacy import Privacy
from engine.services.recordings import Recordings
from engine.services.sends import Sends
from engine.services.stoplists import StopLists
from engine.services.trunks import Trunks
from engine.services.webhooks import Webhooks
from engine.settings import Settings
from engine.store.db import Database


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    accounts: Accounts
    logins: Logins
    messages: Messages
    contacts: Contacts
    sends: Sends
    intake: Intake
    recordings: Recordings
    trunks: Trunks
    webhooks: Webhooks
    stoplists: StopLists
    privacy: Privacy
    health: Health | None  # only in the engine process (it reads the live telephony)


def _nothing() -> None:
    pass


def build(
    settings: Settings, db: Database, *, wake: Callable[[], None] = _nothing, health: Health | None = None
) -> Services:
    """Every service on one database pool; ``wake`` tells the dialer that there is new work."""
    logins = Logins(db, settings)
    messages = Messages(db, settings)
    sends = Sends(db, settings, wake)
    return Services(
        settings=settings,
        accounts=Accounts(db, settings, messages),
        logins=logins,
        messages=messages,
        contacts=Contacts(db, settings),
        sends=sends,
        intake=Intake(db, settings, logins, sends),
        recordings=Recordings(db, settings, messages),
        trunks=Trunks(db, settings),
        webhooks=Webhooks(db, settings),
        stoplists=StopLists(db, stop_key=settings.require("secret_key")),
        privacy=Privacy(db, settings, logins),
        health=health,
    )


@asynccontextmanager
async def open_services(settings: Settings, *, pool_size: int = 2) -> AsyncIterator[Services]:
    """Services on a pool of their own, for a command that runs outside the engine (the CLI)."""
    async with Database(settings.dsn, min_size=1, max_size=pool_size) as db:
        yield build(settings, db)
