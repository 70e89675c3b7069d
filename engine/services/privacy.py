"""Personal data (issue 20, RGPD): an account's export and deletion, everything about one phone number
(find, export, erase — in one account for its customer, everywhere for the operator), and the retention
purge the engine runs every day.

What is kept, how long and why is the README's « Données personnelles » section; the SQL is
engine/store/privacy.py, the archive engine/services/privacy_archive.py.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final
from uuid import UUID

import structlog

from engine.domain.accounts import Account
from engine.domain.numbers import Refusal, normalize
from engine.domain.stoplists import lookup_hashes
from engine.errors import InvalidInput, VocalcastError
from engine.services import logrotate
from engine.services.logins import THROTTLED_FR, Logins
from engine.services.privacy_archive import Archive
from engine.settings import Settings
from engine.store import accounts as accounts_store
from engine.store import privacy as store
from engine.store.db import Database

log = structlog.get_logger(__name__)

_SNAPSHOT: Final = "repeatable_read"  # an export reads one consistent state of the database


@dataclass(frozen=True, slots=True)
class Export:
    """A written archive and the row count of each of its files."""

    path: Path
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class Deletion:
    """A customer's deletion request: done (with what was erased), or refused with a French reason."""

    erased: dict[str, int] | None = None
    refusal_fr: str = ""


def check_number(raw: str) -> str:
    """A number as the customer or operator typed it → its E.164 form (any country), or InvalidInput."""
    number = normalize(raw, allow_international=True)
    if isinstance(number, Refusal):
        raise InvalidInput("number_invalid", f"not a phone number: {raw!r}", message_fr=number.message_fr)
    return number.e164


class Privacy:
    def __init__(self, db: Database, settings: Settings, logins: Logins) -> None:
        self._db = db
        self._settings = settings
        self._logins = logins

    # --- an account ------------------------------------------------------------------------------------

    async def export_account(self, account_id: UUID, dest: Path) -> Export:
        """The account's data as one zip archive at ``dest``: profile, sender numbers, contacts, groups,
        sends with every recipient and call, ledger, messages with their audio, stop list, tokens (no
        secret), webhooks; CSV and JSON."""
        account = await accounts_store.get_account(self._db, account_id)
        media = self._settings.media_dir
        async with Archive(dest) as archive:
            async with (
                self._db.connection() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                await archive.tables(conn, store.ACCOUNT_EXPORT, (account_id,))
                files = await store.account_files(conn, account_id)
            for f in files:
                original = Path(str(f["original_file"]))
                await archive.file(media / original, f"audio/{f['ref']}-original{original.suffix}")
                await archive.file(media / f"{f['audio_stem']}.wav", f"audio/{f['ref']}.wav")
            await archive.manifest({"account": str(account.id), "email": account.email})
            counts = dict(archive.counts)
        log.info("privacy.account_exported", account_id=str(account_id), files=len(counts))
        return Export(dest, counts)

    async def delete_account(self, account_id: UUID) -> dict[str, int]:
        """Erase the account's personal data (its sends must be finished): contacts, numbers in sends,
        calls and CDRs, messages and their audio, tokens, sessions, webhooks, stop list; the ledger
        stays (it still sums to the balance), the account's row too, with a login nobody can use."""
        await accounts_store.get_account(self._db, account_id)
        _, password_hash = await accounts_store.hash_password(None)
        tombstone = store.Tombstone(password_hash=password_hash, code_digest=secrets.token_hex(32))
        async with self._db.transaction() as conn:
            erased = await store.erase_account(conn, account_id, tombstone)
        files = await asyncio.to_thread(_remove_tree, self._settings.media_dir / str(account_id))
        if files:
            erased["media_files"] = files
        log.info("privacy.account_deleted", account_id=str(account_id), **erased)
        return erased

    async def delete_own_account(self, account: Account, *, password: str, client: str) -> Deletion:
        """The customer deletes their account, confirmed by their password (under the login throttle)."""
        checked = await self._logins.password(account.email, password, client=client)
        if checked.throttled:
            return Deletion(refusal_fr=THROTTLED_FR)
        if checked.account is None or checked.account.id != account.id:
            return Deletion(refusal_fr="Mot de passe incorrect : le compte n'a pas été supprimé.")
        try:
            return Deletion(await self.delete_account(account.id))
        except InvalidInput as exc:
            return Deletion(refusal_fr=exc.message_fr)

    # --- one number --------------------------------------------------------------------------------------

    async def find_number(self, account_id: UUID | None, raw: str) -> dict[str, int]:
        """How many rows of each kind hold the number, in the account (None: every account)."""
        e164 = check_number(raw)
        async with self._db.connection() as conn:
            hashes = lookup_hashes(e164, self._settings.require("secret_key"))
            return await store.find_number(conn, account_id, e164, hashes)

    async def export_number(self, account_id: UUID | None, raw: str, dest: Path) -> Export:
        """Everything about the number (in the account, or every account) as one zip archive."""
        e164 = check_number(raw)
        hashes = list(lookup_hashes(e164, self._settings.require("secret_key")))
        args = (account_id, e164, hashes, store.spellings(e164))
        async with Archive(dest) as archive:
            async with (
                self._db.connection() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                await archive.tables(conn, store.NUMBER_EXPORT, args)
            scope = str(account_id) if account_id else "all accounts"
            await archive.manifest({"number": e164, "account": scope})
            counts = dict(archive.counts)
        return Export(dest, counts)

    async def erase_number(self, account_id: UUID | None, raw: str) -> dict[str, int]:
        """Erase the number in the account (None: everywhere). A stop-listed number stays stop-listed, by
        its hash; its place in sends and CDRs is pseudonymised, so the history still adds up."""
        e164 = check_number(raw)
        key = self._settings.require("secret_key")
        async with self._db.transaction() as conn:
            erased = await store.erase_number(conn, account_id, e164, key=key)
        log.info("privacy.number_erased", account_id=str(account_id) if account_id else "*", **erased)
        return erased

    # --- retention ---------------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The purge's clock: the dialer's (VOCALCAST_CLOCK_OFFSET_S moves it in tests)."""
        return datetime.now(UTC) + timedelta(seconds=self._settings.clock_offset_s)

    async def purge(self, now: datetime | None = None) -> dict[str, int]:
        """What the retention settings say is due at ``now``: numbers older than
        VOCALCAST_RETENTION_NUMBERS_DAYS pseudonymised, messages deleted more than
        VOCALCAST_RETENTION_DELETED_MESSAGES_DAYS ago without title, file name nor files, the CDRs of
        inbound calls (strangers' calls to the recording line) older than
        VOCALCAST_RETENTION_INBOUND_CDR_DAYS deleted."""
        settings = self._settings
        now = now or self.now()
        key = settings.require("secret_key")
        async with self._db.transaction() as conn:
            inbound_cdr = await store.delete_inbound_cdrs(
                conn, now - timedelta(days=settings.retention_inbound_cdr_days)
            )
            done = await store.pseudonymise_before(
                conn, now - timedelta(days=settings.retention_numbers_days), key=key
            )
            done["inbound_cdr"] = inbound_cdr
            messages = await store.forget_deleted_messages(
                conn, now - timedelta(days=settings.retention_deleted_messages_days)
            )
        done["messages"] = len(messages)
        media = settings.media_dir
        paths = [media / m.original_file for m in messages]
        paths += [media / f"{m.audio_stem}.{ext}" for m in messages for ext in ("wav", "alaw", "ulaw")]
        done["media_files"] = await asyncio.to_thread(_remove_files, paths)
        return done

    async def housekeeping(self) -> None:
        """Purge now and every VOCALCAST_RETENTION_PURGE_EVERY_S, for as long as the engine runs."""
        while True:
            try:
                purged = await self.purge()
                if any(purged.values()):
                    log.info("privacy.purged", **purged)
            except VocalcastError as exc:
                log.warning("privacy.purge_failed", error=str(exc))
            await logrotate.rotate(self._settings)  # logs hold masked numbers: kept as long as said, too
            await asyncio.sleep(self._settings.retention_purge_every_s)


def _remove_tree(directory: Path) -> int:
    """Remove a directory and everything in it; returns how many files were removed."""
    if not directory.is_dir():
        return 0
    count = sum(1 for p in directory.rglob("*") if not p.is_dir())
    shutil.rmtree(directory)
    return count


def _remove_files(paths: list[Path]) -> int:
    removed = 0
    for path in paths:
        if path.is_file():
            path.unlink()
            removed += 1
    return removed
