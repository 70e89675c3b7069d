"""The send options every send page shares (message, type d'envoi, référence, transfert, accueil,
émetteur, renvois, dépôt), read from a form, and the send itself — tried for real inside a rolled-back
transaction before the customer confirms, so the review page shows exactly what create_send would say.

No rule lives here: each value goes to the domain function that owns its rule (parse_deferred,
SendDefaults, create_send); this module only maps their error codes to the form's fields.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from engine.domain.accounts import (
    PARIS,
    Account,
    InsufficientCredits,
    Message,
    SendDefaults,
    SenderNumber,
    check_transfer,
)
from engine.domain.commercial import PURPOSES
from engine.domain.contacts import NewContact
from engine.domain.schedule import parse_deferred
from engine.domain.sends import IdempotencyKeyUsed, Send, Target
from engine.errors import InvalidInput
from engine.services.sends import Sends
from engine.web.ui.core import Page, count_fr, phone_fr

OPTION_FIELDS: Final = (
    "message",
    "mode",
    "at",
    "comment",
    "transfer",
    "greeting",
    "greeting_ref",
    "sender",
    "retries",
    "retry_minutes",
    "drop",
    "test_number",
    "purpose",
)

# create_send's error codes (and the SendDefaults/parse_deferred ones) → the field they belong beside.
PURPOSES_FR: Final = {
    "information": "Information (rappel, alerte, message interne)",
    "commercial": "Commercial (prospection, offre) — consentement et horaires légaux exigés",
}
FIELD_OF: Final = {
    "message_not_found": "message",
    "greeting_not_found": "greeting_ref",
    "greeting_missing": "greeting_ref",
    "greeting_too_long": "greeting_ref",
    "transfer_invalid": "transfer",
    "sender_not_verified": "sender",
    "drop_not_allowed": "drop",
    "drop_not_mobile": "drop",
    "no_recipient": "numbers",
    "all_stop_listed": "numbers",
    "commercial_no_consent": "numbers",
    "commercial_no_sender": "sender",
    "commercial_no_company": "purpose",
    "bad_purpose": "purpose",
    "too_many": "numbers",
    "deferred_past": "at",
    "bad_deferred": "at",
    "bad_retry_policy": "retries",
    "retries_invalid": "retries",
    "retry_interval_invalid": "retry_minutes",
    "comment_too_long": "comment",
}

DROP_MODE_FR: Final = (
    "Mobiles uniquement. Quand l'opérateur le permet, le message est déposé directement sur la messagerie, "
    "sans faire sonner le téléphone. Sinon, mode « répondeur » : le message est déposé après le bip quand "
    "un répondeur décroche ; si une personne décroche, elle entend le message comme d'habitude."
)


@dataclass
class Library:
    """What the option fields offer: the account's messages, its greetings, its verified sender numbers."""

    messages: list[Message]
    greetings: list[Message]
    senders: list[SenderNumber]


async def library(p: Page) -> Library:
    messages = await p.services.messages.list(p.account.id)
    senders = await p.services.sends.senders(p.account.id)
    return Library(messages, [m for m in messages if m.is_greeting], senders)


def default_values(account: Account, lib: Library) -> dict[str, str]:
    """The form as first shown: the account's default send options (Paramètres)."""
    d = account.defaults
    greeting = next((m for m in lib.greetings if m.id == d.greeting_message_id), None)
    sender = next((s for s in lib.senders if s.id == d.sender_number_id), None)
    return {
        "message": str(lib.messages[-1].ref) if lib.messages else "",
        "mode": "now",
        "at": "",
        "comment": "",
        "transfer": phone_fr(d.transfer_number),
        "greeting": "on" if d.greeting_enabled else "",
        "greeting_ref": str(greeting.ref) if greeting else "",
        "sender": sender.e164 if sender else "",
        "retries": str(d.retries),
        "retry_minutes": str(d.retry_interval_s // 60),
        "drop": "on" if d.voicemail_drop else "",
        "test_number": "",
        "purpose": account.default_purpose,
    }


def form_values(p: Page, names: Sequence[str] = OPTION_FIELDS) -> dict[str, str]:
    return {name: p.text(name).strip() if name != "numbers" else p.text(name) for name in names}


def _int(raw: str) -> int | None:
    try:
        return int(raw.strip())
    except ValueError:
        return None


def deferred_at(raw: str, now: datetime) -> datetime:
    """A datetime-local value ("2030-09-12T15:30"), read as Paris time, checked by parse_deferred."""
    try:
        local = datetime.strptime(raw.strip(), "%Y-%m-%dT%H:%M")  # noqa: DTZ007 - Paris wall time, below
    except ValueError as exc:
        raise InvalidInput(
            "bad_deferred", f"not a datetime-local value: {raw!r}", message_fr="Indiquez la date et l'heure."
        ) from exc
    try:
        return parse_deferred(local.strftime("%H%M%d%m%Y"), now).at_utc
    except InvalidInput as exc:
        if exc.code == "bad_deferred":
            raise InvalidInput(
                exc.code,
                str(exc),
                message_fr="Cette heure n'existe pas à Paris ce jour-là (passage à l'heure d'été).",
            ) from exc
        raise


def parse_options(
    values: dict[str, str], lib: Library, *, now: datetime | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """create_send's keyword arguments from the form, and the errors found on the way (by field)."""
    errors: dict[str, str] = {}
    options: dict[str, Any] = {"comment": values["comment"]}
    ref = _int(values["message"])
    if ref is None:
        errors["message"] = "Choisissez le message à envoyer."
    options["message_ref"] = ref or 0
    options["at"] = None
    if values["mode"] == "later":
        try:
            options["at"] = deferred_at(values["at"], now or datetime.now(UTC))
        except InvalidInput as exc:
            errors["at"] = exc.message_fr
    if values["greeting"]:
        greeting_ref = _int(values["greeting_ref"])
        if greeting_ref is None:
            errors["greeting_ref"] = "Choisissez le message d'accueil à utiliser."
        options["greeting_ref"] = greeting_ref
    else:
        options["greeting_ref"] = None
    options["transfer"] = values["transfer"] or None
    options["sender"] = values["sender"] or None
    retries, minutes = _int(values["retries"] or "0"), _int(values["retry_minutes"] or "0")
    if retries is None:
        errors["retries"] = "Indiquez un nombre de renvois (0 : un seul appel)."
    if minutes is None:
        errors["retry_minutes"] = "Indiquez l'intervalle en minutes."
    if retries is not None and minutes is not None:
        try:
            # The same bounds as the account's default options.
            SendDefaults(retries=retries, retry_interval_s=minutes * 60)
        except InvalidInput as exc:
            if retries or exc.code == "retries_invalid":
                errors[FIELD_OF[exc.code]] = exc.message_fr
        options["retries"] = retries
        options["retry_interval_s"] = max(minutes, 1) * 60
    options["voicemail_drop"] = bool(values["drop"])
    # Every web send states its purpose (issue 18): the form shows a checked radio; a POST without it, or
    # with another value, is refused rather than given the account's default.
    if values["purpose"] in PURPOSES:
        options["purpose"] = values["purpose"]
    else:
        errors["purpose"] = "Indiquez l'objet de l'envoi : information ou commercial."
    return options, errors


async def attempt(
    sends: Sends,
    account: Account,
    options: dict[str, Any],
    targets: Sequence[Target],
    *,
    dry_run: bool,
    idempotency_key: str | None = None,
) -> tuple[Send | None, dict[str, str]]:
    """The send for real, or tried inside a transaction that is rolled back (the review page): the send,
    or the errors by field. Credits are checked too, so the review never promises what confirming refuses.
    """
    return await _answer(
        account,
        len(targets),
        sends.create(
            account,
            targets=targets,
            origin="web",
            idempotency_key=None if dry_run else idempotency_key,
            dry_run=dry_run,
            **options,
        ),
    )


async def attempt_for_contact(
    sends: Sends,
    account: Account,
    options: dict[str, Any],
    contact: NewContact,
    *,
    group_id: int | None,
    idempotency_key: str,
) -> tuple[Send | None, dict[str, str]]:
    """Save the contact and create its send, both or neither: the send, or the errors by field."""
    return await _answer(
        account,
        1,
        sends.create_for_contact(
            account, contact, group_id=group_id, origin="web", idempotency_key=idempotency_key, **options
        ),
    )


async def _answer(
    account: Account, credits: int, creating: Coroutine[Any, Any, Send]
) -> tuple[Send | None, dict[str, str]]:
    """What ``creating`` gives: its send, or its refusal as an error beside the field it is about."""
    errors: dict[str, str] = {}
    try:
        return await creating, errors
    except IdempotencyKeyUsed as exc:
        return exc.send, errors  # a double click: the first click's send
    except InvalidInput as exc:
        errors[FIELD_OF.get(exc.code, "general")] = exc.message_fr
    except InsufficientCredits:
        errors["credits"] = (
            f"Crédits insuffisants : cet envoi demande {count_fr(credits)} crédit"
            f"{'s' if credits > 1 else ''}, vous en avez {count_fr(account.balance)}. "
            "Vous devez créditer le compte."
        )
    return None, errors


def summary(options: dict[str, Any], lib: Library) -> list[tuple[str, str]]:
    """The chosen options in words, for the review page."""
    message = next((m for m in lib.messages if m.ref == options.get("message_ref")), None)
    greeting = next((m for m in lib.greetings if m.ref == options.get("greeting_ref")), None)
    at: datetime | None = options.get("at")
    return [
        ("Message", f"n° {message.ref} — {message.title}" if message else ""),
        (
            "Type d'envoi",
            "Immédiat"
            if at is None
            else f"Différé, le {at.astimezone(PARIS):%d/%m/%Y à %Hh%M} (heure de Paris)",
        ),
        ("Référence", options.get("comment") or "(aucune)"),
        ("Numéro de transfert (touche 9)", transfer_fr(options.get("transfer")) or "(aucun)"),
        ("Message d'accueil (touche étoile)", f"n° {greeting.ref} — {greeting.title}" if greeting else "Non"),
        ("Numéro émetteur", phone_fr(options.get("sender")) or "Caché"),
        (
            "Renvoi des non-reçus",
            "Non"
            if not options.get("retries")
            else f"{options['retries']} essai(s) de plus, toutes les {options['retry_interval_s'] // 60} min",
        ),
        ("Dépôt sur messagerie", DROP_MODE_FR if options.get("voicemail_drop") else "Non"),
        ("Objet de l'envoi", PURPOSES_FR.get(options.get("purpose") or "", "Selon votre compte")),
    ]


def transfer_fr(raw: str | None) -> str:
    """A transfer number as typed, shown the way check_transfer reads it ("06 12 00 05 05")."""
    if not raw:
        return ""
    try:
        return phone_fr(check_transfer(raw, allow_international=True))
    except InvalidInput:
        return raw
