"""The manual's machine interfaces, http.php and e-mail, share this: the same fields, the same checks
in the same order, the same two-digit codes (80–91 exactly as the manual defines them, ours above).

Both create sends through engine.services.sends.create_send; no validation rule lives here that lives
elsewhere too — this module only orders the checks and maps errors to codes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal
from uuid import UUID

import structlog

from engine.domain.accounts import Account, InsufficientCredits, check_transfer
from engine.domain.numbers import Number, Refusal, normalize
from engine.domain.schedule import parse_deferred
from engine.domain.sends import Target
from engine.errors import DatabaseUnavailable, InvalidInput, NotFound
from engine.logs import mask_number
from engine.services.sends import DEFAULT, create_send, steer
from engine.settings import Settings
from engine.store import Database, rates
from engine.store import contacts as contacts_store
from engine.store import messages as messages_store
from engine.store.accounts import authenticate

log = structlog.get_logger(__name__)

# The manual's codes (80–91), then ours (92+, documented in the README).
CODES: Final[dict[str, str]] = {
    "80": "Le message a été envoyé",
    "81": "Le message est enregistré pour un envoi en différé",
    "82": "Le login et/ou mot de passe n'est pas valide",
    "83": "Vous devez créditer le compte",
    "84": "Le numéro n'est pas valide",
    "85": "Le format d'envoi en différé n'est pas valide",
    "86": "Le groupe de contacts est vide",
    "87": "La valeur email est vide",
    "88": "La valeur pass est vide",
    "89": "La valeur numero est vide",
    "90": "La valeur ref est vide",
    "91": "La référence n'est pas valide",
    "92": "L'envoi différé a été annulé",
    "93": "Aucun envoi différé ne correspond à cette annulation",
    "94": "Le numéro émetteur n'est pas déclaré et vérifié sur votre compte",
    "95": "Le dépôt sur messagerie n'est possible que vers des mobiles, et doit être activé sur votre compte",
    "96": "Trop de numéros pour un seul envoi",
    "97": "Le service est momentanément indisponible, réessayez plus tard",
}
LOGIN_FAILURES: Final = "login"

Channel = Literal["http", "email"]


@dataclass(frozen=True, slots=True)
class CompatRequest:
    """The manual's fields, as received (already decoded to text)."""

    email: str = ""
    password: str = ""
    numero: str = ""
    ref: str = ""
    transfert: str = ""
    com: str = ""
    emetteur: str = ""
    diff: str = ""
    depot: str = ""


@dataclass(frozen=True, slots=True)
class CompatAnswer:
    code: str
    send_id: UUID | None = None
    retry_after_s: float | None = None
    account: Account | None = None  # when e-mail and password matched (e-mail replies go only then)

    @property
    def message_fr(self) -> str:
        return CODES[self.code]


class _Refused(Exception):
    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code


def login_keys(email: str, client: str) -> list[str]:
    return [f"account:{email.strip().lower()}", f"client:{client}"]


async def submit(
    db: Database, settings: Settings, request: CompatRequest, *, channel: Channel, client: str
) -> CompatAnswer:
    """One http.php request or intake e-mail → its code (and the send, when one was created)."""
    account: Account | None = None
    try:
        account = await _check_login(db, settings, request, client)
        answer = await _submit(db, settings, request, account, channel)
    except _Refused as refused:
        answer = CompatAnswer(refused.code, account=account)
        if refused.code == "82" and isinstance(refused.__cause__, _Throttled):
            answer = CompatAnswer("82", retry_after_s=refused.__cause__.retry_after_s)
        await _log_refusal(
            db,
            channel=channel,
            code=answer.code,
            account=account,
            client=client,
            req=request,
            detail=str(refused),
        )
    except DatabaseUnavailable:
        answer = CompatAnswer("97", account=account)
    return answer


class _Throttled(Exception):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"throttled for {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


async def _check_login(db: Database, settings: Settings, req: CompatRequest, client: str) -> Account:
    # Missing values first, in the manual's order.
    for field, code in (("email", "87"), ("password", "88"), ("numero", "89"), ("ref", "90")):
        if not getattr(req, field).strip():
            raise _Refused(code, f"{field} empty")
    keys = login_keys(req.email, client)
    wait = await rates.blocked_for_s(
        db, LOGIN_FAILURES, keys, limit=settings.login_max_failures, window_s=settings.login_window_s
    )
    if wait is not None:
        # No password check at all while throttled: a guesser learns nothing and costs us nothing.
        raise _Refused("82", "throttled") from _Throttled(wait)
    account = await authenticate(db, req.email.strip(), req.password)
    if account is None:
        await rates.record(db, LOGIN_FAILURES, keys)
        raise _Refused("82", "bad login")
    return account


async def _submit(
    db: Database, settings: Settings, req: CompatRequest, account: Account, channel: Channel
) -> CompatAnswer:
    ref = req.ref.strip()
    if not ref.isdigit():
        raise _Refused("91", "reference not a number")
    try:
        await messages_store.get_message(db, account.id, int(ref))
    except NotFound as exc:
        raise _Refused("91", "unknown reference") from exc

    numbers = await _numbers(db, account, req.numero)
    transfer: str | None = None
    if req.transfert.strip():
        try:
            transfer = check_transfer(req.transfert, allow_international=account.allow_international)
        except InvalidInput as exc:
            raise _Refused("84", "bad transfer number") from exc

    at: datetime | None = None
    cancel = False
    if req.diff.strip():
        try:
            deferred = parse_deferred(req.diff.strip(), datetime.now(UTC))
        except InvalidInput as exc:
            raise _Refused("85", exc.code) from exc
        at, cancel = deferred.at_utc, deferred.cancel
    if cancel and at is not None:
        return CompatAnswer(await _cancel(db, account, int(ref), numbers, at), account=account)

    depot = req.depot.strip() == "1"
    if channel == "email":
        # An e-mail subject carries no transfer, sender, retries or drop: the account's defaults apply.
        options: dict[str, object] = {}
    else:
        options = {"transfer": transfer, "sender": req.emetteur.strip() or None, "voicemail_drop": depot}
    try:
        send = await create_send(
            db,
            settings,
            account,
            message_ref=int(ref),
            targets=[Target(n) for n in numbers],
            origin=channel,
            comment=req.com,
            at=at,
            code="81" if at is not None else "80",
            greeting_ref=DEFAULT,
            retries=DEFAULT,
            retry_interval_s=DEFAULT,
            **options,  # type: ignore[arg-type]
        )
    except InvalidInput as exc:
        raise _Refused(_code_of(exc), exc.code) from exc
    except InsufficientCredits as exc:
        raise _Refused("83", "credits") from exc
    log.info(
        "compat.send_created",
        channel=channel,
        send_id=str(send.id),
        numbers=len(numbers),
        deferred=at is not None,
    )
    return CompatAnswer("81" if at is not None else "80", send.id, account=account)


_CODE_OF: Final = {
    "sender_not_verified": "94",
    "drop_not_allowed": "95",
    "drop_not_mobile": "95",
    "too_many": "96",
    "deferred_past": "85",
    "bad_deferred": "85",
    "transfer_invalid": "84",
    "message_not_found": "91",
    "greeting_not_found": "91",
    "no_recipient": "89",
}


def _code_of(exc: InvalidInput) -> str:
    return _CODE_OF.get(exc.code, "84")


async def _numbers(db: Database, account: Account, numero: str) -> list[Number]:
    """`numero` names one of the account's contact groups, or is one number or a comma-separated list."""
    with contextlib.suppress(NotFound):
        group = await contacts_store.group_by_name(db, account.id, numero)
        try:
            targets = await contacts_store.numbers_for_targets(db, account.id, group_ids=[group.id])
        except InvalidInput as exc:
            raise _Refused("86", "group empty") from exc
        return [
            n for n in (normalize(t.e164, allow_international=True) for t in targets) if isinstance(n, Number)
        ]
    numbers: list[Number] = []
    seen: set[str] = set()
    for raw in numero.split(","):
        if not raw.strip():
            continue
        number = normalize(raw, allow_international=account.allow_international)
        if isinstance(number, Refusal):
            raise _Refused("84", f"number refused: {number.code}")
        if number.e164 not in seen:
            seen.add(number.e164)
            numbers.append(number)
    if not numbers:
        raise _Refused("84", "no number")
    return numbers


async def _cancel(db: Database, account: Account, ref: int, numbers: list[Number], at: datetime) -> str:
    """`diff` + `s`: cancel the account's deferred send(s) of that message, at that time, to those numbers."""
    message = await messages_store.get_message(db, account.id, ref)
    rows = await db.fetch(
        "SELECT s.id FROM sends s WHERE s.account_id = $1 AND s.message_id = $2 AND s.status = 'scheduled' "
        "AND s.start_at = $3 AND (SELECT count(*) FROM send_recipients r WHERE r.send_id = s.id "
        "AND r.e164 = ANY($4::text[])) = $5",
        account.id,
        message.id,
        at,
        [n.e164 for n in numbers],
        len(numbers),
    )
    cancelled = 0
    for row in rows:
        with contextlib.suppress(InvalidInput):  # started in the meantime: nothing to cancel any more
            await steer(db, row["id"], "cancel", account_id=account.id)
            cancelled += 1
    return "92" if cancelled else "93"


async def _log_refusal(
    db: Database,
    *,
    channel: Channel,
    code: str,
    account: Account | None,
    client: str,
    req: CompatRequest,
    detail: str,
) -> None:
    """Refused requests are kept (never the password; numbers masked) so a customer can be helped."""
    numero = ",".join(mask_number(n.strip()) for n in req.numero.split(",") if n.strip())[:200]
    with contextlib.suppress(DatabaseUnavailable):
        await db.execute(
            "INSERT INTO refused_requests (origin, code, account_id, client, detail) VALUES ($1, $2, $3, "
            "$4, $5)",
            channel,
            code,
            account.id if account else None,
            client[:100],
            f"{detail}; ref={req.ref[:20]!r} numero={numero}"[:500],
        )
    log.info("compat.refused", channel=channel, code=code, reason=detail)
