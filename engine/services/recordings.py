"""Recordings by phone: what the recording IVR (ivr/) needs from the engine — the personal-code check
under its lockout, and saving a recording into the account's library.

Personal-code guessing defence: a caller number that types ``ivr_lockout_failures`` wrong codes within
``ivr_lockout_window_s`` is blocked for ``ivr_lockout_s`` (the failure that reaches the limit blocks, not
the one before). When all callers together fail more than ``ivr_global_failures_per_min`` times a
minute, every code check waits longer, in proportion: guessing slows down for everyone, nobody is
locked out. The counts live in PostgreSQL, shared by every engine process and kept across restarts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from uuid import UUID

import structlog

from engine.domain.accounts import Message
from engine.domain.recordings import GLOBAL_WINDOW_S, masked_caller, throttle_delay_s
from engine.errors import InvalidInput
from engine.services.messages import Messages
from engine.settings import Settings
from engine.store import accounts as accounts_store
from engine.store import ivr as store
from engine.store.db import Database

log = structlog.get_logger(__name__)


class Recordings:
    """The recording IVR's backend (ivr.recording.Backend)."""

    def __init__(self, db: Database, settings: Settings, messages: Messages) -> None:
        self._db = db
        self._messages = messages
        self._secret_key = settings.require("secret_key")
        self._window_s = settings.ivr_lockout_window_s
        self._max_failures = settings.ivr_lockout_failures
        self._lockout_s = settings.ivr_lockout_s
        self._global_per_min = settings.ivr_global_failures_per_min

    # --- the lockout ----------------------------------------------------------------------------------
    async def is_blocked(self, caller: str) -> bool:
        return await store.blocked_until(self._db, caller) is not None

    async def record_failure(self, caller: str) -> bool:
        """Count a wrong code; True when this one blocked the caller."""
        count = await store.record_failure(
            self._db,
            caller,
            window_s=self._window_s,
            max_failures=self._max_failures,
            lockout_s=self._lockout_s,
        )
        if count.blocked:
            log.warning(
                "ivr.caller_blocked",
                caller=masked_caller(caller),
                failures=count.failures,
                until=count.blocked_until.isoformat() if count.blocked_until else None,
            )
        return count.blocked

    async def throttle_delay_s(self) -> float:
        recent = await store.recent_failures(self._db, window_s=GLOBAL_WINDOW_S)
        delay = throttle_delay_s(recent, self._global_per_min)
        if delay:
            log.warning("ivr.global_throttle", failures_last_min=recent, delay_s=delay)
        return delay

    async def purge(self) -> int:
        """Forget what no rule looks at any more (failures out of every window, ended blocks)."""
        return await store.purge(self._db, keep_s=max(self._window_s, GLOBAL_WINDOW_S))

    # --- the account and its library --------------------------------------------------------------------
    async def find_account(self, code: str) -> UUID | None:
        account = await accounts_store.find_by_code(self._db, code, secret_key=self._secret_key)
        return account.id if account is not None else None

    async def save(self, account_id: UUID, recording: Path, *, is_greeting: bool) -> Message:
        message = await self._messages.add(account_id, recording, origin="phone", is_greeting=is_greeting)
        if is_greeting:
            await self._make_default_greeting(account_id, message)
        return message

    async def _make_default_greeting(self, account_id: UUID, message: Message) -> None:
        """A greeting recorded by phone replaces the account's default greeting (whether sends use a
        greeting by default stays the customer's choice: ``greeting_enabled`` is left as it is)."""
        try:
            account = await accounts_store.get_account(self._db, account_id)
            defaults = dataclasses.replace(account.defaults, greeting_message_id=message.id)
            await accounts_store.set_defaults(self._db, account_id, defaults)
        except InvalidInput as exc:  # another default became invalid meanwhile: the greeting is saved anyway
            log.warning("ivr.default_greeting_not_set", account_id=str(account_id), code=exc.code)
