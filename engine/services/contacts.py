"""Contacts: an account's contacts and groups (entry, search, groups, CSV import) and the numbers a send
to contacts or groups reaches."""

from __future__ import annotations

from engine.settings import Settings
from engine.store.db import Database


class Contacts:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
