"""Call-backs of a presented number (issue 18, L221-17 and L34-5: a working way to object): the caller
hears who called them and may press the opt-out key, which puts their number on that account's stop list
(source "callback"). The conversation itself is ivr/callback.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import structlog

from engine.domain.numbers import Number, mask_number, normalize
from engine.domain.preamble import callback_text, dialled_e164, opt_out_text
from engine.media.paths import sound_uri
from engine.media.spoken import spoken
from engine.settings import Settings
from engine.store import callbacks as store
from engine.store import stoplists
from engine.store.db import Database

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CallBack:
    """A call-back we can answer: whose number was dialled, the caller's, and what Asterisk plays."""

    account_id: UUID
    caller: str  # E.164
    key: str
    announcement: str  # as Asterisk reads it: a path without extension, or a URL (http media transport)
    thanks: str


class Callbacks:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    async def identify(self, dialled: list[str], caller_id: str | None) -> CallBack | None:
        """The call-back of ``caller_id`` to the first of ``dialled`` (the Request-URI's user, then the
        To header's) that one of our accounts presented; None: an unallocated number, or a caller
        without a number (nothing could be stopped)."""
        caller = normalize(caller_id, allow_international=True) if caller_id else None
        if not isinstance(caller, Number):
            return None
        for raw in dialled:
            presented = dialled_e164(raw)
            if presented is None:
                continue
            found = await store.called_by(self._db, presented, caller.e164)
            if found is None:
                continue
            key = self._settings.opt_out_key
            media = self._settings.media_dir
            said = await spoken(media, callback_text(found.company_name, key))
            thanks = await spoken(media, opt_out_text(found.company_name))
            log.info("callback.identified", number=mask_number(presented), caller=mask_number(caller.e164))
            return CallBack(
                found.account_id, caller.e164, key, self._asterisk(said.path), self._asterisk(thanks.path)
            )
        return None

    async def stop(self, call: CallBack) -> None:
        """The caller pressed the key: the account never calls them again."""
        await stoplists.add(self._db, call.account_id, [stoplists.Entry.of(call.caller)], source="callback")
        log.info("callback.opted_out", account_id=str(call.account_id), caller=mask_number(call.caller))

    def _asterisk(self, path: Path) -> str:
        return sound_uri(self._settings, path).removeprefix("sound:")
