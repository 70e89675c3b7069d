"""Sends: creating, steering and following them — the one path every interface takes (pages, http.php,
e-mail, API, CLI). Options a channel cannot carry come from the account's default send options (``DEFAULT``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

import asyncpg

from engine.domain.accounts import Account, Message, SenderNumber, check_transfer
from engine.domain.commercial import PURPOSES, Purpose
from engine.domain.contacts import NewContact, check_phone
from engine.domain.intake import (
    COMMERCIAL_CODES_FR,
    NO_COMPANY_FR,
    NO_SENDER_FR,
    commercial_refusals,
    first_refusal,
)
from engine.domain.numbers import Number, normalize
from engine.domain.presented import Unusable, Usable, check_presented
from engine.domain.retries import RetryPolicy
from engine.domain.sends import (
    IdempotencyKeyUsed,
    Origin,
    Progress,
    Send,
    SendCounters,
    SendSpec,
    Target,
    unique_targets,
)
from engine.errors import InvalidInput, NotFound
from engine.services.contacts import save_contact
from engine.services.messages import greeting_too_long
from engine.settings import Settings
from engine.store import accounts as accounts_store
from engine.store import consent as consent_store
from engine.store import messages as messages_store
from engine.store import senders as senders_store
from engine.store import sends as sends_store
from engine.store import stoplists as stoplists_store
from engine.store import transfers as transfers_store
from engine.store import webhooks as webhooks_store
from engine.store.db import Database, Executor
from engine.store.transfers import TransferUsage


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default()


def _nothing() -> None:
    pass


class _Rollback(Exception):
    def __init__(self, send: Send) -> None:
        super().__init__("dry run")
        self.send = send


class Sends:
    """Creating, trying (dry run), steering and reading sends; the dialer is woken when there is new work."""

    def __init__(self, db: Database, settings: Settings, wake: Callable[[], None] = _nothing) -> None:
        self._db = db
        self._settings = settings
        self._wake = wake

    async def create(
        self,
        account: Account,
        *,
        message_ref: int,
        targets: Sequence[Target],
        origin: Origin,
        comment: str = "",
        at: datetime | None = None,
        greeting_ref: int | _Default | None = DEFAULT,
        transfer: str | _Default | None = DEFAULT,
        sender: str | _Default | None = DEFAULT,
        retries: int | _Default = DEFAULT,
        retry_interval_s: int | _Default = DEFAULT,
        voicemail_drop: bool | _Default = DEFAULT,
        purpose: Purpose | _Default = DEFAULT,
        idempotency_key: str | None = None,
        code: str | None = None,
        dry_run: bool = False,
        webhook: tuple[str, tuple[str, ...]] | None = None,
    ) -> Send:
        """Validate everything, reserve one credit per number and store the send, or raise and store
        nothing (error codes: see ``create_send``).

        ``webhook``: the send's own endpoint (url and events, checked by the webhooks service), stored in
        the same transaction: its send.started, queued at the commit, goes there and never to the account's.

        ``dry_run``: the same checks and the same answer, inside a transaction that is rolled back (a review
        page shows exactly what confirming would say, credits included). ``idempotency_key``: a key the
        account already used gives back that earlier send; IdempotencyKeyUsed when another request with
        the same key stored its send while this one was being stored.
        """
        options = {
            "message_ref": message_ref,
            "targets": targets,
            "origin": origin,
            "comment": comment,
            "at": at,
            "greeting_ref": greeting_ref,
            "transfer": transfer,
            "sender": sender,
            "retries": retries,
            "retry_interval_s": retry_interval_s,
            "voicemail_drop": voicemail_drop,
            "purpose": purpose,
            "idempotency_key": idempotency_key,
            "code": code,
        }
        if dry_run:
            try:
                async with self._db.transaction() as conn:
                    raise _Rollback(await create_send(conn, self._settings, account, **options))  # type: ignore[arg-type]
            except _Rollback as rolled_back:
                return rolled_back.send
        try:
            async with self._db.transaction() as conn:
                send = await create_send(conn, self._settings, account, **options)  # type: ignore[arg-type]
                if webhook is not None:
                    await webhooks_store.add_send_webhook(conn, send.id, url=webhook[0], events=webhook[1])
        except asyncpg.UniqueViolationError:
            earlier = await self.by_key(account.id, idempotency_key) if idempotency_key else None
            if earlier is None:
                raise
            raise IdempotencyKeyUsed(earlier) from None
        self._wake()
        return send

    async def create_for_contact(
        self,
        account: Account,
        contact: NewContact,
        *,
        group_id: int | None = None,
        message_ref: int,
        origin: Origin,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> Send:
        """Save ``contact`` (a number already in the contacts keeps its contact, names brought up to date)
        in ``group_id``, and create a send to it with ``options`` (those of ``create``), in one
        transaction: a refused send leaves no contact behind, a refused contact no send."""
        number = check_phone(contact.phone, allow_international=account.allow_international)
        async with self._db.transaction() as conn:
            saved = await save_contact(conn, account, contact, group_id=group_id)
            send = await create_send(
                conn,
                self._settings,
                account,
                message_ref=message_ref,
                targets=[Target(number, saved.id)],
                origin=origin,
                idempotency_key=idempotency_key,
                **options,
            )
        self._wake()
        return send

    async def steer(self, send_id: UUID, action: str, *, account_id: UUID | None = None) -> Send:
        """pause, resume or cancel (calls in progress always finish); ``account_id``: only the account's."""
        send = await steer(self._db, send_id, action, account_id=account_id)
        self._wake()
        return send

    # --- reads --------------------------------------------------------------------------------------------

    async def senders(self, account_id: UUID) -> list[SenderNumber]:
        """The numbers a send of the account may present: those declared AND verified."""
        return [s for s in await senders_store.list_senders(self._db, account_id) if s.status == "verified"]

    async def get(self, send_id: UUID, *, account_id: UUID | None) -> Send:
        """The account's send (another account's is NotFound); ``account_id`` None: the operator's CLI."""
        return await sends_store.get_send(self._db, send_id, account_id=account_id)

    async def by_key(self, account_id: UUID, key: str) -> Send | None:
        """The account's send created with idempotency key ``key``, else None."""
        return await sends_store.send_by_key(self._db, account_id, key)

    async def history(self, account_id: UUID, *, limit: int, before: datetime | None = None) -> list[Send]:
        """The account's sends, newest first; the next page starts ``before`` the last one's creation."""
        return await sends_store.list_sends(self._db, account_id, limit=limit, before=before)

    async def unfinished(self, account_id: UUID, *, limit: int) -> list[Send]:
        """The account's scheduled, running and paused sends, newest first."""
        return await sends_store.unfinished(self._db, account_id, limit=limit)

    async def counters(self, account_id: UUID, send_ids: Collection[UUID]) -> list[SendCounters]:
        """How far each of the account's sends among ``send_ids`` is (other ids are left out)."""
        return await sends_store.counters(self._db, account_id, list(send_ids))

    async def progress(self, send: Send) -> Progress:
        """Per-state and per-outcome counts of a send read with ``get``."""
        return await sends_store.progress(self._db, send.id)

    async def transfer_usage(self, send: Send) -> TransferUsage:
        """The send's answered transfers, their started minutes and the credits they were charged."""
        return await transfers_store.usage(self._db, send.id)

    async def outcomes(self, sends: Sequence[Send]) -> dict[UUID, dict[str, int]]:
        """Final outcomes per send, for a page of sends ({} for a send with none yet)."""
        return await sends_store.outcomes_of(self._db, [send.id for send in sends])

    async def recipients(self, send: Send, *, limit: int, after_id: int = 0) -> list[dict[str, Any]]:
        """Per recipient of a send read with ``get``: its final outcome and every attempt
        (``attempts_detail``, JSON text), by recipient id after ``after_id``."""
        return await sends_store.recipients(self._db, send.id, limit=limit, after_id=after_id)


async def create_send(
    db: Executor,
    settings: Settings,
    account: Account,
    *,
    message_ref: int,
    targets: Sequence[Target],
    origin: Origin,
    comment: str = "",
    at: datetime | None = None,
    greeting_ref: int | _Default | None = DEFAULT,
    transfer: str | _Default | None = DEFAULT,
    sender: str | _Default | None = DEFAULT,
    retries: int | _Default = DEFAULT,
    retry_interval_s: int | _Default = DEFAULT,
    voicemail_drop: bool | _Default = DEFAULT,
    purpose: Purpose | _Default = DEFAULT,
    idempotency_key: str | None = None,
    code: str | None = None,
) -> Send:
    """Validate everything, reserve one credit per number and store the send, or raise and store nothing.

    Error codes (InvalidInput.code, or the error's own code): message_not_found, greeting_not_found,
    greeting_too_long,
    transfer_invalid, sender_not_verified, drop_not_allowed, drop_not_mobile, no_recipient, too_many,
    deferred_past, bad_retry_policy, bad_purpose, commercial_no_company and commercial_no_sender
    (http.php 98), commercial_no_consent (99), all_stop_listed, credits.

    ``purpose`` (DEFAULT: the account's default purpose): a commercial send must present a usable number
    (engine/domain/presented.py) and call only contacts with a valid consent, none stop-listed; every
    send leaves out the numbers on the account's or the operator's stop list.
    """
    defaults = account.defaults
    message = await _message(db, account.id, message_ref, "message_not_found")

    greeting_id: UUID | None
    if isinstance(greeting_ref, _Default):
        greeting_id = defaults.greeting_message_id if defaults.greeting_enabled else None
    elif greeting_ref is None:
        greeting_id = None
    else:
        greeting = await _message(db, account.id, greeting_ref, "greeting_not_found")
        if greeting.duration_s > settings.greeting_max_s:  # any message may greet, if it is short
            raise greeting_too_long(settings, f"message {greeting_ref}: {greeting.duration_s:.1f} s")
        greeting_id = greeting.id

    transfer_e164: str | None
    if isinstance(transfer, _Default):
        transfer_e164 = defaults.transfer_number
    elif transfer is None or not transfer.strip():
        transfer_e164 = None
    else:
        transfer_e164 = check_transfer(transfer, allow_international=account.allow_international)

    sender_e164 = await _sender(db, account, sender)

    drop = defaults.voicemail_drop if isinstance(voicemail_drop, _Default) else voicemail_drop
    if drop and not account.allow_voicemail_drop:
        raise InvalidInput(
            "drop_not_allowed",
            "voicemail drop is not enabled for this account",
            message_fr="Le dépôt sur messagerie n'est pas activé sur votre compte.",
        )
    policy = RetryPolicy(
        extra_attempts=defaults.retries if isinstance(retries, _Default) else retries,
        interval_s=float(
            defaults.retry_interval_s if isinstance(retry_interval_s, _Default) else retry_interval_s
        ),
    )
    unique = unique_targets(targets)
    if len(unique) > settings.max_recipients:
        raise InvalidInput(
            "too_many",
            f"{len(unique)} numbers, at most {settings.max_recipients} per send",
            message_fr=f"Un envoi compte au plus {settings.max_recipients} numéros.",
        )
    now = datetime.now(UTC)
    if at is not None and at <= now:
        raise InvalidInput(
            "deferred_past",
            "the deferred time is already past",
            message_fr="La date d'envoi différé est déjà passée.",
        )
    chosen = account.default_purpose if isinstance(purpose, _Default) else purpose
    unique, skipped = await _lawful_targets(
        db, account, chosen, sender_e164, unique, now=now, stop_key=settings.require("secret_key")
    )
    spec = SendSpec(
        account_id=account.id,
        message_id=message.id,
        targets=unique,
        origin=origin,
        greeting_message_id=greeting_id,
        transfer_number=transfer_e164,
        sender_e164=sender_e164,
        comment=comment.strip(),
        start_at=at,
        retry=policy,
        voicemail_drop=drop,
        idempotency_key=idempotency_key,
        demo=settings.demo,
        purpose=chosen,
        stop_listed_skipped=skipped,
    )
    send = await sends_store.insert_send(db, spec, code=code)
    if chosen == "commercial" and await accounts_store.company_name(db, account.id) is None:
        # Read again now that the credits' reservation holds the account's row: a name removed while
        # this send was being checked is seen (engine/store/accounts.py, set_company_name).
        raise _no_company()
    return send


async def _lawful_targets(
    db: Executor,
    account: Account,
    purpose: Purpose,
    sender_e164: str | None,
    targets: tuple[Target, ...],
    *,
    now: datetime,
    stop_key: str | None = None,
) -> tuple[tuple[Target, ...], int]:
    """The targets a send of this purpose may keep, and how many stop-listed ones it leaves out.

    Every send leaves out the numbers on the account's stop list or the operator's ("liste
    d'opposition"). A commercial send is refused instead, whole: from an account without a company name
    to announce, or without a usable presented number (98), or with a number that is stop-listed or has
    no valid recorded consent (99) — engine/domain/intake.py.
    """
    if purpose not in PURPOSES:
        raise InvalidInput(
            "bad_purpose",
            f"purpose must be one of {', '.join(PURPOSES)}, got {purpose!r}",
            message_fr="L'objet de l'envoi doit être « information » ou « commercial ».",
        )
    numbers = [t.number.e164 for t in targets]
    stopped = await stoplists_store.stopped(db, account.id, numbers, key=stop_key)
    if purpose == "commercial":
        consents = await consent_store.consents(db, account.id, numbers)
        consented = all(n in consents and consents[n].valid_at(now) for n in numbers)
        # Read here, not from `account`: a name removed since the account was loaded counts.
        company = await accounts_store.company_name(db, account.id)
        failed = commercial_refusals(
            purpose,
            presents_usable_number=sender_e164 is not None
            and isinstance(check_presented(sender_e164), Usable),
            every_recipient_callable=consented and not stopped,
            names_company=company is not None,
        )
        refusal = first_refusal(failed)
        if refusal == "98" and company is None:
            raise _no_company()
        if refusal == "98":
            raise InvalidInput(
                "commercial_no_sender",
                "a commercial send must present a verified number usable by automated calls",
                message_fr=NO_SENDER_FR,
            )
        if refusal == "99":
            raise InvalidInput(
                "commercial_no_consent",
                "a commercial send may only call contacts with a recorded consent, none stop-listed",
                message_fr=COMMERCIAL_CODES_FR["99"],
            )
        return targets, 0
    kept = tuple(t for t in targets if t.number.e164 not in stopped)
    if not kept:
        raise InvalidInput(
            "all_stop_listed",
            "every number of the send is on a stop list",
            message_fr="Tous les numéros de cet envoi sont sur une liste d'opposition.",
        )
    return kept, len(targets) - len(kept)


def _no_company() -> InvalidInput:
    return InvalidInput(
        "commercial_no_company",
        "a commercial send must name the company calling (article L221-16): the account has none",
        message_fr=NO_COMPANY_FR,
    )


async def _message(db: Executor, account_id: UUID, ref: int, code: str) -> Message:
    try:
        return await messages_store.get_message(db, account_id, ref)
    except NotFound as exc:
        raise InvalidInput(
            code, f"no message {ref} for this account", message_fr="La référence du message n'est pas valide."
        ) from exc


async def _sender(db: Executor, account: Account, sender: str | _Default | None) -> str | None:
    """Only a number declared AND verified for the account is ever presented."""
    senders = await senders_store.list_senders(db, account.id)
    if isinstance(sender, _Default):
        # A default verified before ARCEP's ranges were checked and outside them is not presented: the
        # call is hidden (a commercial send is then refused, 98).
        chosen = [
            s
            for s in senders
            if s.id == account.defaults.sender_number_id
            and s.status == "verified"
            and isinstance(check_presented(s.e164), Usable)
        ]
        return chosen[0].e164 if chosen else None
    if sender is None or not sender.strip():
        return None
    number = normalize(sender)
    e164 = number.e164 if isinstance(number, Number) else None
    for s in senders:
        if s.e164 == e164 and s.status == "verified":
            presented = check_presented(s.e164)
            if isinstance(presented, Unusable):
                raise InvalidInput(
                    "sender_not_verified",  # http.php 94: an emetteur given but not usable
                    f"sender number {sender!r} may not be presented by automated calls ({presented.code})",
                    message_fr=presented.message_fr,
                )
            return s.e164
    raise InvalidInput(
        "sender_not_verified",
        f"sender number {sender!r} is not a verified number of the account",
        message_fr="Ce numéro émetteur n'est pas déclaré et vérifié sur votre compte.",
    )


async def steer(db: Executor, send_id: UUID, action: str, *, account_id: UUID | None = None) -> Send:
    """pause, resume or cancel (calls in progress always finish)."""
    return await sends_store.change_status(db, send_id, action, account_id=account_id)
