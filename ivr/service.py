"""The recording IVR as a service of the engine: its FastAGI routes wired to the store and the message
library, and ``serve()``, which runs the FastAGI server on 127.0.0.1:<agi port> with its housekeeping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final
from uuid import UUID

import structlog

from engine.domain.accounts import Message
from engine.errors import InvalidInput, VocalcastError
from engine.media.paths import prompts_dir, recording_spool
from engine.services import messages as library
from engine.settings import Settings
from engine.store import accounts
from engine.store.db import Database
from ivr.fastagi import FastAGIServer, Handler
from ivr.lockout import Lockout
from ivr.recording import IvrOptions, RecordingIVR, Spool

log = structlog.get_logger(__name__)

ROUTE: Final = "record"  # dialplan: AGI(agi://127.0.0.1:<agi port>/record)
HOUSEKEEPING_EVERY_S: Final = 600.0
# A raw recording this much older than the longest recording belongs to no live call any more.
ORPHAN_MARGIN_S: Final = 3600.0


class StoreBackend:
    """The conversation's Backend on PostgreSQL and the message library."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self._settings = settings
        self._db = db
        self._secret_key = settings.require("secret_key")
        self.lockout = Lockout(db, settings)

    async def is_blocked(self, caller: str) -> bool:
        return await self.lockout.is_blocked(caller)

    async def record_failure(self, caller: str) -> bool:
        return await self.lockout.record_failure(caller)

    async def throttle_delay_s(self) -> float:
        return await self.lockout.throttle_delay_s()

    async def find_account(self, code: str) -> UUID | None:
        account = await accounts.find_by_code(self._db, code, secret_key=self._secret_key)
        return account.id if account is not None else None

    async def save(self, account_id: UUID, recording: Path, *, is_greeting: bool) -> Message:
        message = await library.add_message(
            self._db, self._settings, account_id, recording, origin="phone", is_greeting=is_greeting
        )
        if is_greeting:
            await self._make_default_greeting(account_id, message)
        return message

    async def _make_default_greeting(self, account_id: UUID, message: Message) -> None:
        """A greeting recorded by phone replaces the account's default greeting (whether sends use a
        greeting by default stays the customer's choice: ``greeting_enabled`` is left as it is)."""
        try:
            account = await accounts.get_account(self._db, account_id)
            defaults = dataclasses.replace(account.defaults, greeting_message_id=message.id)
            await accounts.set_defaults(self._db, account_id, defaults)
        except InvalidInput as exc:  # another default became invalid meanwhile: the greeting is saved anyway
            log.warning("ivr.default_greeting_not_set", account_id=str(account_id), code=exc.code)


def spool(settings: Settings) -> Spool:
    """Asterisk's recording spool of this instance, from inside the Asterisk root and from the host."""
    return Spool(*recording_spool(settings))


def options(settings: Settings) -> IvrOptions:
    return IvrOptions.from_settings(settings, prompts_dir(settings))


def routes(settings: Settings, db: Database) -> dict[str, Handler]:
    return {ROUTE: RecordingIVR(options(settings), StoreBackend(settings, db), spool(settings))}


@asynccontextmanager
async def serve(settings: Settings, db: Database) -> AsyncIterator[FastAGIServer]:
    """The FastAGI server on 127.0.0.1:``settings.agi_port`` until the context exits."""
    recordings = spool(settings)
    lockout = Lockout(db, settings)
    # A reply never takes longer than the longest recording (and the listening back of one).
    command_timeout_s = max(600.0, 2 * settings.ivr_record_max_s + 60.0)
    server = FastAGIServer(
        routes(settings, db), host="127.0.0.1", port=settings.agi_port, command_timeout_s=command_timeout_s
    )
    async with server:
        housekeeping = asyncio.create_task(
            _housekeeping(recordings, lockout, orphan_age_s=settings.ivr_record_max_s + ORPHAN_MARGIN_S),
            name="ivr-housekeeping",
        )
        try:
            yield server
        finally:
            housekeeping.cancel()
            await asyncio.gather(housekeeping, return_exceptions=True)


async def _housekeeping(recordings: Spool, lockout: Lockout, *, orphan_age_s: float) -> None:
    """Now and every few minutes: drop orphaned raw recordings and lockout rows no rule needs."""
    while True:
        try:
            removed = await asyncio.to_thread(recordings.purge, orphan_age_s, time.time())
            purged = await lockout.purge()
            if removed or purged:
                log.info("ivr.housekeeping", orphan_recordings=removed, lockout_rows=purged)
        except (OSError, VocalcastError) as exc:
            log.warning("ivr.housekeeping_failed", error=str(exc))
        await asyncio.sleep(HOUSEKEEPING_EVERY_S)
