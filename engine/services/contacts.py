"""Contacts: an account's contacts and groups (entry, search, groups, CSV import) and the numbers a send
to contacts or groups reaches."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from uuid import UUID

from engine.domain.accounts import Account
from engine.domain.contacts import (
    DEFAULT_PAGE_SIZE,
    ConsentRecord,
    Contact,
    ContactOrder,
    ContactPage,
    Group,
    NewContact,
    check_phone,
)
from engine.domain.numbers import Number, normalize
from engine.domain.sends import Target
from engine.errors import InvalidInput
from engine.services.contacts_import import ImportReport, import_contacts_csv
from engine.settings import Settings
from engine.store import consent as consent_store
from engine.store import contacts as store
from engine.store import groups as groups_store
from engine.store import targets as targets_store
from engine.store.db import Database, Executor


class Contacts:
    """Every method acts for one account: another account's contact or group is NotFound."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    # --- contacts ---------------------------------------------------------------------------------------

    async def page(
        self,
        account_id: UUID,
        *,
        group_id: int | None = None,
        search: str | None = None,
        order: ContactOrder = "name",
        after: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> ContactPage:
        """One page of the account's contacts; ``after`` is the previous page's ``next_cursor``."""
        return await store.list_contacts(
            self._db, account_id, group_id=group_id, search=search, order=order, after=after, limit=limit
        )

    async def count(self, account_id: UUID, *, group_id: int | None = None, search: str | None = None) -> int:
        """How many contacts ``page`` shows with the same filters."""
        return await store.count_contacts(self._db, account_id, group_id=group_id, search=search)

    async def get(self, account_id: UUID, contact_id: int) -> Contact:
        return await store.get_contact(self._db, account_id, contact_id)

    # --- consent to commercial calls (issue 18) ------------------------------------------------------

    async def consent(self, account_id: UUID, contact_id: int) -> ConsentRecord:
        contact = await store.get_contact(self._db, account_id, contact_id)
        record = await consent_store.read(self._db, account_id, contact.e164)
        return record or ConsentRecord(None, None, None, None)

    async def record_consent(
        self, account_id: UUID, contact_id: int, *, given_at: datetime, source: str, proof: str
    ) -> ConsentRecord:
        """The contact's consent to commercial calls: when, where, its proof (a new one replaces the old)."""
        if not source.strip():
            raise InvalidInput(
                "consent_source_missing",
                "a consent needs its source",
                message_fr="Indiquez d'où vient le consentement (formulaire, contrat, appel…).",
            )
        contact = await store.get_contact(self._db, account_id, contact_id)
        await consent_store.record(
            self._db, account_id, contact.e164, given_at=given_at, source=source, proof=proof
        )
        return await self.consent(account_id, contact_id)

    async def withdraw_consent(self, account_id: UUID, contact_id: int, *, at: datetime) -> ConsentRecord:
        """The contact withdrew its consent (kept for the record): no commercial send calls it any more."""
        contact = await store.get_contact(self._db, account_id, contact_id)
        await consent_store.withdraw(self._db, account_id, contact.e164, at=at)
        return await self.consent(account_id, contact_id)

    async def create(
        self, account: Account, contact: NewContact, *, group_ids: Collection[int] = ()
    ) -> Contact:
        """Add a contact (InvalidInput ``contact_exists`` when the number is already one of the account's);
        an international number only when the account may call abroad."""
        return await _create(self._db, account, contact, group_ids)

    async def update(
        self,
        account: Account,
        contact_id: int,
        *,
        phone: str | None = None,
        societe: str | None = None,
        nom: str | None = None,
        prenom: str | None = None,
        group_ids: Collection[int] | None = None,
    ) -> Contact:
        """Change the given fields (None: unchanged); ``group_ids`` replaces the contact's groups."""
        return await store.update_contact(
            self._db,
            account.id,
            contact_id,
            allow_international=account.allow_international,
            phone=phone,
            societe=societe,
            nom=nom,
            prenom=prenom,
            group_ids=group_ids,
        )

    async def delete(self, account_id: UUID, contact_id: int) -> None:
        await store.delete_contact(self._db, account_id, contact_id)

    async def delete_many(self, account_id: UUID, contact_ids: Collection[int]) -> int:
        """Delete those of ``contact_ids`` that are the account's; how many were deleted."""
        return await store.delete_contacts(self._db, account_id, contact_ids)

    # --- groups -----------------------------------------------------------------------------------------

    async def groups(self, account_id: UUID) -> list[Group]:
        return await groups_store.list_groups(self._db, account_id)

    async def group(self, account_id: UUID, group_id: int) -> Group:
        return await groups_store.get_group(self._db, account_id, group_id)

    async def group_by_name(self, account_id: UUID, name: str) -> Group:
        return await groups_store.group_by_name(self._db, account_id, name)

    async def create_group(self, account_id: UUID, name: str) -> Group:
        return await groups_store.create_group(self._db, account_id, name)

    async def rename_group(self, account_id: UUID, group_id: int, name: str) -> Group:
        return await groups_store.rename_group(self._db, account_id, group_id, name)

    async def delete_group(self, account_id: UUID, group_id: int) -> None:
        """The group goes; its contacts stay."""
        await groups_store.delete_group(self._db, account_id, group_id)

    async def add_members(self, account_id: UUID, group_id: int, contact_ids: Collection[int]) -> int:
        """How many of the contacts were not in the group yet."""
        return await groups_store.add_members(self._db, account_id, group_id, contact_ids)

    async def remove_members(self, account_id: UUID, group_id: int, contact_ids: Collection[int]) -> int:
        """How many of the contacts were in the group (they stay contacts)."""
        return await groups_store.remove_members(self._db, account_id, group_id, contact_ids)

    # --- what a send reaches ----------------------------------------------------------------------------

    async def targets(
        self,
        account_id: UUID,
        *,
        contact_ids: Collection[int] = (),
        group_ids: Collection[int] = (),
        subset_contact_ids: Collection[int] | None = None,
    ) -> list[Target]:
        """The numbers a send to these contacts and groups calls, once each, with their contact.

        ``subset_contact_ids``: only those members of the groups ("part of a group"). Error codes:
        NotFound, and InvalidInput ``no_targets``, ``group_empty``, ``no_recipients``.
        """
        found = await targets_store.numbers_for_targets(
            self._db,
            account_id,
            contact_ids=contact_ids,
            group_ids=group_ids,
            subset_contact_ids=subset_contact_ids,
        )
        return _as_targets(found)

    # --- CSV import -------------------------------------------------------------------------------------

    async def import_csv(self, account: Account, data: bytes) -> ImportReport:
        """An Excel CSV (Société;Nom;Prénom;Téléphone;Groupe): refused rows are reported, the rest
        imported; InvalidInput for a file that cannot be read at all (nothing is imported)."""
        return await import_contacts_csv(
            self._db, account.id, data, allow_international=account.allow_international
        )


def _as_targets(found: Sequence[targets_store.Target]) -> list[Target]:
    targets = []
    for target in found:
        # Stored contacts were checked when saved; the account's options then allowed them.
        number = normalize(target.e164, allow_international=True)
        if isinstance(number, Number):
            targets.append(Target(number, target.contact_id))
    return targets


async def _create(db: Executor, account: Account, contact: NewContact, group_ids: Collection[int]) -> Contact:
    return await store.create_contact(
        db,
        account.id,
        phone=contact.phone,
        allow_international=account.allow_international,
        societe=contact.societe,
        nom=contact.nom,
        prenom=contact.prenom,
        group_ids=group_ids,
    )


async def save_contact(
    db: Executor, account: Account, contact: NewContact, *, group_id: int | None
) -> Contact:
    """Add the contact to the account's contacts (and to ``group_id``); a number that is already a
    contact keeps its contact, its names brought up to date (a blank name leaves the stored one) and
    put in the group. ``db``: a connection of the caller's transaction (a contact saved with its send).
    """
    group_ids = [group_id] if group_id is not None else []
    try:
        return await _create(db, account, contact, group_ids)
    except InvalidInput as exc:
        if exc.code != "contact_exists":
            raise
    e164 = check_phone(contact.phone, allow_international=account.allow_international).e164
    existing = await store.contact_by_number(db, account.id, e164)
    if existing is None:
        raise RuntimeError("contact_exists without a contact of that number")
    saved = await store.update_contact(
        db,
        account.id,
        existing.id,
        allow_international=account.allow_international,
        societe=contact.societe or None,
        nom=contact.nom or None,
        prenom=contact.prenom or None,
    )
    if group_id is not None:
        await groups_store.add_members(db, account.id, group_id, [saved.id])
    return saved
