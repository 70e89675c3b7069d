"""Accounts: an account's profile and options, credits ledger, default send options, sender numbers,
personal code and API tokens — what the pages, the API and the CLI show and change.

Passwords, logins and web sessions are the logins service's (engine/services/logins.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Literal
from uuid import UUID

from engine.domain.accounts import (
    Account,
    Balance,
    LedgerEntry,
    NewAccount,
    SendDefaults,
    SenderNumber,
    check_sender,
)
from engine.domain.commercial import Purpose
from engine.domain.numbers import Number, normalize
from engine.domain.spending import DailySpending, TransferLimits
from engine.domain.tokens import ApiToken, NewToken
from engine.errors import InvalidInput, NotFound
from engine.services.messages import Messages
from engine.settings import Settings
from engine.store import accounts as store
from engine.store import credits, senders, spending, transfers
from engine.store import tokens as tokens_store
from engine.store.db import Database


class _Keep(Enum):
    KEEP = "keep"


# An option of change_defaults() left as it is.
KEEP: Final = _Keep.KEEP
COMPANY_NAME_MAX: Final = 100  # sql/0019: what a preamble names (issue 18)
Keep = Literal[_Keep.KEEP]


@dataclass(frozen=True, slots=True)
class NamedDefaults:
    """Default send options as the customer names them: the greeting by its reference, the sender by
    its number (None when the greeting or the sender was removed meanwhile)."""

    greeting_enabled: bool
    greeting_ref: int | None
    transfer_number: str | None
    sender_number: str | None
    retries: int
    retry_interval_s: int
    voicemail_drop: bool
    # The purpose of the http.php and e-mail sends, and the company a commercial call names (issue 18).
    purpose: Purpose = "information"
    company_name: str | None = None


class Accounts:
    def __init__(self, db: Database, settings: Settings, messages: Messages) -> None:
        self._db = db
        self._settings = settings
        self._messages = messages

    # --- the account ------------------------------------------------------------------------------------

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

    async def create(
        self,
        email: str,
        *,
        password: str | None = None,
        credits: int = 0,
        default_purpose: Purpose = "information",
        company_name: str | None = None,
    ) -> NewAccount:
        """An operator opens an account; its password (generated unless given) and personal code are
        returned here, the only time they are seen in clear. ``default_purpose``: that of its http.php
        and e-mail sends, chosen when it is set up (issue 18); commercial needs ``company_name``, the
        company its calls name (article L221-16), else ``company_required``."""
        return await store.create_account(
            self._db,
            email,
            secret_key=self._secret_key(),
            password=password,
            credits=credits,
            default_purpose=default_purpose,
            company_name=_company_name(company_name),
        )

    async def company_name(self, account_id: UUID) -> str | None:
        """The company the account's commercial calls name (None: none yet)."""
        return await store.company_name(self._db, account_id)

    async def set_company_name(self, account_id: UUID, name: str | None) -> str | None:
        """The company a commercial call names in its preamble (issue 18); None or blank: none — refused
        (``company_required``) while the account's default purpose is commercial."""
        clean = _company_name(name)
        await store.set_company_name(self._db, account_id, clean)
        return await store.company_name(self._db, account_id)

    async def set_default_purpose(self, account_id: UUID, purpose: Purpose) -> Account:
        """The purpose of the account's http.php and e-mail sends (information or commercial); commercial
        only once the account has a company name (``company_required``)."""
        await store.set_default_purpose(self._db, account_id, purpose)
        return await store.get_account(self._db, account_id)

    async def set_options(
        self,
        account_id: UUID,
        *,
        allow_international: bool | None = None,
        allow_voicemail_drop: bool | None = None,
    ) -> Account:
        """What the account may do (an operator's decision); defaults it no longer allows are switched off."""
        return await store.set_options(
            self._db,
            account_id,
            allow_international=allow_international,
            allow_voicemail_drop=allow_voicemail_drop,
        )

    async def new_code(self, account_id: UUID) -> str:
        """A new personal code (the recording line's login); the old one stops working. Seen only now."""
        return await store.regenerate_code(self._db, account_id, secret_key=self._secret_key())

    def _secret_key(self) -> str:
        key: str = self._settings.require("secret_key")
        return key

    # --- credits ----------------------------------------------------------------------------------------

    async def credit(self, account_id: UUID, amount: int, *, reason: str) -> Balance:
        """An operator adds credits (a positive whole number)."""
        return await credits.credit(self._db, account_id, amount, reason=reason)

    async def set_daily_cap(self, account_id: UUID, cap: int | None) -> DailySpending:
        """The account's own daily spending cap (None: VOCALCAST_DAILY_SPEND_CAP; 0: none)."""
        await spending.set_daily_cap(self._db, account_id, cap)
        return await self.daily_spending(account_id)

    async def daily_spending(self, account_id: UUID) -> DailySpending:
        return await spending.daily_spending(self._db, account_id, default_cap=self._settings.daily_spend_cap)

    async def daily_cap(self, account_id: UUID) -> int | None:
        """The account's own daily cap (None: VOCALCAST_DAILY_SPEND_CAP's; 0: none)."""
        return await spending.own_daily_cap(self._db, account_id)

    # --- transfers (touche 9) ------------------------------------------------------------------------------

    async def transfer_limits(self, account_id: UUID) -> TransferLimits:
        """The account's own transfer caps (None: the settings')."""
        return await transfers.limits(self._db, account_id)

    async def set_transfer_limits(
        self,
        account_id: UUID,
        *,
        max_minutes: int | Keep | None = KEEP,
        max_simultaneous: int | Keep | None = KEEP,
    ) -> TransferLimits:
        """The account's longest transfer in whole minutes (1 up to VOCALCAST_TRANSFER_MAX_S, which bounds
        every account) and its simultaneous transfers (0: none); None: the setting's; KEEP: unchanged."""
        longest = int(self._settings.transfer_max_s // 60)
        if isinstance(max_minutes, int) and not 1 <= max_minutes <= longest:
            raise InvalidInput(
                "transfer_max_invalid",
                f"expected a whole number of minutes from 1 to {longest} (VOCALCAST_TRANSFER_MAX_S "
                f"({longest} min) bounds every account), got {max_minutes}",
            )
        if isinstance(max_simultaneous, int) and max_simultaneous < 0:
            raise InvalidInput(
                "max_transfers_invalid", f"expected a whole number >= 0, got {max_simultaneous}"
            )
        return await transfers.set_limits(
            self._db,
            account_id,
            max_s=None if max_minutes is None or max_minutes is KEEP else max_minutes * 60.0,
            max_simultaneous=None if max_simultaneous is KEEP else max_simultaneous,
            change_max_s=max_minutes is not KEEP,
            change_max_simultaneous=max_simultaneous is not KEEP,
        )

    async def ledger(
        self, account_id: UUID, *, limit: int = 50, before_id: int | None = None
    ) -> list[LedgerEntry]:
        """The account's credit movements, newest first; page with ``before_id`` (the last id of a page)."""
        return await credits.ledger(self._db, account_id, limit=limit, before_id=before_id)

    # --- sender numbers ---------------------------------------------------------------------------------

    async def senders(self, account_id: UUID) -> list[SenderNumber]:
        return await senders.list_senders(self._db, account_id)

    async def declare_sender(self, account_id: UUID, raw: str) -> tuple[SenderNumber, bool]:
        """Declare a sender number (presented only once our staff has verified it); (the number, whether
        it is new: declaring a number again returns the existing one)."""
        e164 = check_sender(raw).e164  # refused before any query
        known = any(s.e164 == e164 for s in await senders.list_senders(self._db, account_id))
        sender = await senders.declare_sender(self._db, account_id, raw)
        return sender, not known

    async def verify_sender(self, account_id: UUID, raw: str) -> SenderNumber:
        """Our staff confirm a declared number is the customer's; mobiles are refused (ARCEP)."""
        return await senders.verify_sender(self._db, account_id, raw)

    # --- default send options ---------------------------------------------------------------------------

    async def defaults(self, account: Account) -> NamedDefaults:
        d = account.defaults
        greeting_ref = None
        if d.greeting_message_id is not None:
            try:
                greeting_ref = (await self._messages.get_by_id(account.id, d.greeting_message_id)).ref
            except NotFound:
                greeting_ref = None  # deleted meanwhile: no greeting is played
        sender = None
        if d.sender_number_id is not None:
            found = await senders.list_senders(self._db, account.id)
            sender = next((s.e164 for s in found if s.id == d.sender_number_id), None)
        return NamedDefaults(
            greeting_enabled=d.greeting_enabled,
            greeting_ref=greeting_ref,
            transfer_number=d.transfer_number,
            sender_number=sender,
            retries=d.retries,
            retry_interval_s=d.retry_interval_s,
            voicemail_drop=d.voicemail_drop,
            purpose=account.default_purpose,
            company_name=await store.company_name(self._db, account.id),
        )

    async def set_defaults(self, account_id: UUID, defaults: SendDefaults) -> Account:
        """Store the default send options (http.php and e-mail sends use them, and sends that omit one),
        once checked to be the account's own and usable: a live greeting of the account, one of its
        verified sender numbers, a transfer number and a voicemail drop its options allow."""
        return await store.set_defaults(self._db, account_id, defaults)

    async def change_defaults(
        self,
        account_id: UUID,
        *,
        greeting_ref: int | Keep | None = KEEP,
        transfer_number: str | Keep | None = KEEP,
        sender_number: str | Keep | None = KEEP,
        retries: int | Keep = KEEP,
        retry_interval_s: int | Keep = KEEP,
        voicemail_drop: bool | Keep = KEEP,
        purpose: Purpose | Keep = KEEP,
        company_name: str | Keep | None = KEEP,
    ) -> NamedDefaults:
        """Change the options given, named as the customer names them (None: no greeting, no transfer,
        a hidden number, no company name); the others stay, and nothing changes when one is refused.
        ``greeting_invalid`` for a reference that is not one of the account's messages,
        ``sender_not_verified`` for a number not verified on the account; the purpose and the company
        name follow set_default_purpose's and set_company_name's rule (``company_required``)."""
        clean_name = company_name if company_name is KEEP else _company_name(company_name)
        account = await store.get_account(self._db, account_id)
        changes: dict[str, Any] = {}
        if greeting_ref is not KEEP:
            greeting_id = None if greeting_ref is None else await self._greeting_id(account_id, greeting_ref)
            changes |= {"greeting_enabled": greeting_id is not None, "greeting_message_id": greeting_id}
        if transfer_number is not KEEP:
            changes["transfer_number"] = (transfer_number or "").strip() or None
        if sender_number is not KEEP:
            number = (sender_number or "").strip()
            changes["sender_number_id"] = (
                await self._verified_sender_id(account_id, number) if number else None
            )
        if retries is not KEEP:
            changes["retries"] = retries
        if retry_interval_s is not KEEP:
            changes["retry_interval_s"] = retry_interval_s
        if voicemail_drop is not KEEP:
            changes["voicemail_drop"] = voicemail_drop
        async with self._db.transaction() as conn:
            if changes:
                defaults = dataclasses.replace(account.defaults, **changes)
                await store.set_defaults(conn, account_id, defaults)
            # A name is set before a commercial purpose needs it, and removed once the purpose allows it.
            if clean_name is not KEEP and clean_name is not None:
                await store.set_company_name(conn, account_id, clean_name)
            if purpose is not KEEP:
                await store.set_default_purpose(conn, account_id, purpose)
            if clean_name is None:
                await store.set_company_name(conn, account_id, None)
            account = await store.get_account(conn, account_id)
        return await self.defaults(account)

    async def _greeting_id(self, account_id: UUID, ref: int) -> UUID:
        try:
            return (await self._messages.get(account_id, ref)).id
        except NotFound as exc:
            raise InvalidInput(
                "greeting_invalid",
                f"account {account_id} has no message {ref}",
                message_fr="Ce message n'est pas un message d'accueil de votre compte.",
            ) from exc

    async def _verified_sender_id(self, account_id: UUID, raw: str) -> int:
        number = normalize(raw)
        e164 = number.e164 if isinstance(number, Number) else None
        for sender in await senders.list_senders(self._db, account_id):
            if sender.e164 == e164 and sender.status == "verified":
                return sender.id
        raise InvalidInput(
            "sender_not_verified",
            f"sender number {raw!r} is not a verified number of the account",
            message_fr="Ce numéro émetteur n'est pas déclaré et vérifié sur votre compte.",
        )

    # --- API tokens -------------------------------------------------------------------------------------

    async def tokens(self, account_id: UUID) -> list[ApiToken]:
        """The account's API tokens, revoked ones included, oldest first (never the secrets)."""
        return await tokens_store.list_tokens(self._db, account_id)

    async def create_token(self, account_id: UUID, *, label: str = "") -> NewToken:
        """A new API token; its secret is returned here and never again."""
        return await tokens_store.create_token(self._db, account_id, label=label)

    async def revoke_token(self, account_id: UUID, token_id: int) -> ApiToken:
        """Revoke the account's token: it stops working at once. Another account's token is NotFound."""
        return await tokens_store.revoke_token(self._db, account_id, token_id)


def _company_name(name: str | None) -> str | None:
    """A company name as stored: spaces collapsed; None or blank: none; at most COMPANY_NAME_MAX."""
    clean = " ".join((name or "").split()) or None
    if clean is not None and len(clean) > COMPANY_NAME_MAX:
        raise InvalidInput(
            "company_name",
            f"company name longer than {COMPANY_NAME_MAX} characters",
            message_fr=f"Le nom de l'entreprise dépasse {COMPANY_NAME_MAX} caractères.",
        )
    return clean
