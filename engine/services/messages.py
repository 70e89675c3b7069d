"""Messages: the library use case — add (upload or phone recording), list, rename, delete, listen, play.

A message is converted first, into <media dir>/<account id>/<message id>.*, and only then gets its row
and reference, in one transaction; a refused file leaves nothing behind and uses no reference.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar
from uuid import UUID, uuid4

import structlog

from engine.domain.accounts import ORIGINS, Message, Origin, check_title, default_title
from engine.errors import InvalidInput
from engine.media.audio import AudioLimits, convert
from engine.media.paths import sound_uri
from engine.settings import Settings
from engine.store import messages as store
from engine.store.accounts import get_account
from engine.store.db import Database

log = structlog.get_logger(__name__)

T = TypeVar("T")


def audio_limits(settings: Settings) -> AudioLimits:
    return AudioLimits(
        max_bytes=settings.audio_max_bytes,
        min_duration_s=settings.audio_min_duration_s,
        max_duration_s=settings.audio_max_duration_s,
        run_timeout_s=settings.audio_timeout_s,
    )


def greeting_too_long(settings: Settings, detail: str) -> InvalidInput:
    return InvalidInput(
        "greeting_too_long",
        detail,
        message_fr=f"Un message d'accueil dure au plus {settings.greeting_max_s:g} secondes hors silences.",
    )


def _remove_files(message_files: list[Path]) -> None:
    # Metadata operations of microseconds: on the loop, like engine.media.audio's own cleanup.
    for path in message_files:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("message_file_not_removed", path=str(path), error=str(exc))


async def _settle(coro: Coroutine[Any, Any, T]) -> tuple[asyncio.Task[T], bool]:
    """Run ``coro`` to its end even if we are cancelled meanwhile; (its task, whether we were cancelled).

    A transaction cancelled mid-commit leaves no way to know whether the row exists, and so whether
    the files must go: letting it finish answers that.
    """
    task = asyncio.ensure_future(coro)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            cancelled = True
    return task, cancelled


class Messages:
    """An account's message library (uploads, phone recordings, greetings) and the files behind it."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    async def add(
        self,
        account_id: UUID,
        src_path: Path,
        *,
        title: str | None = None,
        origin: Origin,
        is_greeting: bool = False,
        original_name: str | None = None,
        greeting_pending: bool = False,
    ) -> Message:
        """Convert ``src_path`` (WAV or MP3, any rate) and add it to the account's library
        (``greeting_pending``: a greeting recorded by phone, waiting for the customer's confirmation).

        Raises engine.media.audio's InvalidInput codes for a refused file, ``title_invalid``, or NotFound
        for an unknown account; in every failure nothing is stored and no reference is used. ``src_path``
        itself is left alone (the caller owns it: an upload's temp file, an Asterisk recording).
        """
        if origin not in ORIGINS:
            raise InvalidInput("origin_invalid", f"origin must be one of {ORIGINS}, got {origin!r}")
        checked_title = check_title(title) if title is not None else None
        await get_account(self._db, account_id)  # before spending a conversion on an unknown account
        settings = self._settings
        message_id = uuid4()
        stem = str(message_id)
        limits = audio_limits(settings)
        if is_greeting:  # a greeting plays before the message to everyone who answers: short, never an advert
            limits = dataclasses.replace(
                limits, max_duration_s=min(limits.max_duration_s, settings.greeting_max_s)
            )
        try:
            converted = await convert(
                src_path,
                settings.media_dir / str(account_id),
                stem,
                limits,
                original_name=original_name or src_path.name,
            )
        except InvalidInput as exc:
            if is_greeting and exc.code == "too_long":
                raise greeting_too_long(settings, str(exc)) from exc
            raise
        files = [converted.wav, converted.alaw, converted.ulaw, converted.original]
        created_at = datetime.now(UTC)
        rel_dir = PurePosixPath(str(account_id))
        task, cancelled = await _settle(
            store.insert_message(
                self._db,
                message_id=message_id,
                account_id=account_id,
                title=checked_title or default_title(original_name, created_at, is_greeting=is_greeting),
                origin=origin,
                is_greeting=is_greeting,
                duration_s=converted.duration_s,
                audio_stem=rel_dir / stem,
                original_file=rel_dir / converted.original.name,
                original_name=original_name,
                loudness_lufs=converted.loudness_lufs,
                true_peak_dbfs=converted.true_peak_dbfs,
                created_at=created_at,
                greeting_pending=is_greeting and greeting_pending,
            )
        )
        if task.cancelled() or task.exception() is not None:
            _remove_files(files)
        if cancelled:
            raise asyncio.CancelledError
        message = task.result()
        log.info(
            "message_added",
            account_id=str(account_id),
            message_id=str(message.id),
            ref=message.ref,
            origin=origin,
            duration_s=message.duration_s,
        )
        return message

    async def pending_greetings(self, account_id: UUID) -> list[Message]:
        """Greetings recorded by phone that wait for the customer's confirmation."""
        return await store.pending_greetings(self._db, account_id)

    async def list(self, account_id: UUID, *, greetings_only: bool = False) -> list[Message]:
        return await store.list_messages(self._db, account_id, greetings_only=greetings_only)

    async def refs(self, account_id: UUID) -> dict[UUID, int]:
        """Every message id of the account → its reference (sends name their message by id)."""
        return {m.id: m.ref for m in await self.list(account_id)}

    async def get(self, account_id: UUID, ref: int) -> Message:
        """The account's message ``ref``; another account's message is NotFound."""
        return await store.get_message(self._db, account_id, ref)

    async def get_by_id(self, account_id: UUID, message_id: UUID) -> Message:
        return await store.get_message_by_id(self._db, account_id, message_id)

    async def confirm_greeting(self, account_id: UUID, ref: int) -> Message:
        """The customer makes a greeting recorded by phone its default greeting; NotFound unless it waits."""
        message = await store.settle_pending_greeting(self._db, account_id, ref, make_default=True)
        log.info("greeting_confirmed", account_id=str(account_id), message_id=str(message.id), ref=ref)
        return message

    async def dismiss_greeting(self, account_id: UUID, ref: int) -> Message:
        """The customer keeps its default greeting: the one recorded by phone stays in the library only."""
        message = await store.settle_pending_greeting(self._db, account_id, ref, make_default=False)
        log.info("greeting_dismissed", account_id=str(account_id), message_id=str(message.id), ref=ref)
        return message

    async def rename(self, account_id: UUID, ref: int, title: str) -> Message:
        return await store.rename_message(self._db, account_id, ref, check_title(title))

    async def delete(self, account_id: UUID, ref: int) -> Message:
        """Delete the account's message ``ref`` and its files; MessageInUse while a send needs it."""
        message = await store.delete_message(self._db, account_id, ref)
        _remove_files(message.files(self._settings.media_dir))
        log.info("message_deleted", account_id=str(account_id), message_id=str(message.id), ref=ref)
        return message

    def playback_uri(self, message: Message) -> str:
        """What ARI plays: Asterisk picks the .alaw/.ulaw/.wav file that matches the channel's codec."""
        return playback_uri(self._settings, message)

    async def listening_file(self, account_id: UUID, ref: int) -> Path:
        """The file a browser plays for the message's owner: the 8 kHz WAV (PCM), exactly what callers
        hear."""
        message = await store.get_message(self._db, account_id, ref)
        return message.wav(self._settings.media_dir)

    async def original_file(self, account_id: UUID, ref: int) -> tuple[Path, str]:
        """The upload as it was received, and the name to download it under; for its owner only."""
        message = await store.get_message(self._db, account_id, ref)
        path = self._settings.media_dir / message.original_file
        name = message.original_name or f"message-{message.ref}{path.suffix}"
        return path, name


def playback_uri(settings: Settings, message: Message) -> str:
    """What ARI plays for ``message``."""
    return sound_uri(settings, message.wav(settings.media_dir))
