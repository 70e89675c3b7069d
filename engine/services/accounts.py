"""Accounts: an account's profile, credits ledger, default send options, sender numbers, personal code,
API tokens and password — what the pages, the API and the CLI show and change."""

from __future__ import annotations

from uuid import UUID

from engine.domain.accounts import Account, LedgerEntry
from engine.errors import NotFound
from engine.settings import Settings
from engine.store import accounts as store
from engine.store import tokens as tokens_store
from engine.store.db import Database


class Accounts:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    async def get(self, account_id: UUID) -> Account:
        """NotFound when there is no such account."""
        return await store.get_account(self._db, account_id)

    async def by_token(self, secret: str) -> Account | None:
        """The account whose live API token this is; None for an unknown or revoked token."""
        token = await tokens_store.authenticate(self._db, secret)
        if token is None:
            return None
        try:
            return await store.get_account(self._db, token.account_id)
        except NotFound:
            return None  # the account was deleted between the two queries: as if the token were unknown

    async def by_email(self, email: str) -> Account:
        """NotFound when no account has that login e-mail (normalised as at login)."""
        return await store.account_by_email(self._db, email)

    async def ledger(
        self, account_id: UUID, *, limit: int, before_id: int | None = None
    ) -> list[LedgerEntry]:
        """The account's credit movements, newest first; page with ``before_id`` (the last id of a page)."""
        return await store.ledger(self._db, account_id, limit=limit, before_id=before_id)
