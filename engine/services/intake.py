"""Intake: the manual's machine interfaces, http.php and e-mail, share this use case — the same fields,
the same checks in the same order, the same two-digit codes (80–91 exactly as the manual defines them,
ours above), and for e-mail the reply.

Sends are created through the sends service; no validation rule lives here that lives elsewhere too —
this module only orders the checks and maps errors to codes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal
from uuid import UUID

import structlog

from engine.domain.accounts import Account, InsufficientCredits, check_transfer
from engine.domain.intake import COMMERCIAL_CODES_FR
from engine.domain.numbers import Number, Refusal, mask_number, normalize
from engine.domain.schedule import parse_deferred
from engine.domain.sends import Target
from engine.errors import DatabaseUnavailable, InvalidInput, NotFound
from engine.mailer import compose
from engine.mailer import send as send_mail
from engine.services.logins import Logins
from engine.services.sends import DEFAULT, Sends
from engine.settings import Settings
from engine.store import groups as groups_store
from engine.store import messages as messages_store
from engine.store import rates
from engine.store import targets as targets_store
from engine.store.db import Database
from engine.store.refusals import record_refusal
from engine.store.sends import scheduled_matching

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
    "100": "La requête est trop volumineuse",
    **COMMERCIAL_CODES_FR,  # 98, 99: commercial sends (engine/domain/intake.py)
}
REPLIES: Final = "mail_reply"
_MAX_REF: Final = 2**31 - 1  # message references are PostgreSQL integers
# Refusals of clients that did not log in: a row costs them nothing, so their rows are rationed — per
# client per minute (VOCALCAST_REFUSALS_PER_CLIENT_PER_MIN), and this many a minute in all.
ANONYMOUS_REFUSALS_PER_MIN: Final = 600
_DATE: Final = re.compile(r"\d{12}s?")

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


def parse_subject(subject: str) -> CompatRequest | None:
    """The manual's e-mail subject ``mot_de_passe:numéro:référence:commentaire:HHMMDDMMYYYY:``, or None
    when it is not that shape at all.

    The last non-empty field after the reference is the date when it is 12 digits (optionally + `s`);
    any other text there is the comment (the manual's own example has a date and no comment).
    """
    fields = subject.strip().split(":")
    while fields and not fields[-1].strip():
        fields.pop()
    if len(fields) < 3:
        return None
    password, numero, ref, *rest = (f if i >= 3 else f.strip() for i, f in enumerate(fields))
    diff = ""
    if rest and _DATE.fullmatch(rest[-1].strip()):
        diff = rest.pop().strip()
    comment = ":".join(rest).strip()
    return CompatRequest(password=password, numero=numero, ref=ref, com=comment, diff=diff)


class RefusalRation:
    """Whether one more refusal of a client that did not log in may be written this minute: at most
    ``per_client`` per client and ``total`` in all (this process; the log line is written regardless)."""

    def __init__(self, per_client: int, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_client, self._total, self._clock = per_client, total, clock
        self._minute = -1
        self._counts: dict[str, int] = {}
        self._written = 0

    def allow(self, client: str) -> bool:
        minute = int(self._clock() // 60)
        if minute != self._minute:
            self._minute, self._counts, self._written = minute, {}, 0
        count = self._counts.get(client, 0)
        if count >= self._per_client or self._written >= self._total:
            return False
        self._counts[client] = count + 1
        self._written += 1
        return True


class Intake:
    """http.php requests and intake e-mails → their code (and the send, when one was created)."""

    def __init__(self, db: Database, settings: Settings, logins: Logins, sends: Sends) -> None:
        self._db = db
        self._settings = settings
        self._logins = logins
        self._sends = sends
        self._ration = RefusalRation(settings.refusals_per_client_per_min, ANONYMOUS_REFUSALS_PER_MIN)

    async def http(self, request: CompatRequest, *, client: str) -> CompatAnswer:
        """One http.php request (GET or POST form, already decoded) → its code."""
        return await self._submit(request, channel="http", client=client)

    async def mail(self, sender: str, subject: str, *, client: str) -> CompatAnswer | None:
        """One intake e-mail: its code, and the reply when sender and password matched (rate-limited);
        None when the subject is not the manual's shape at all (no reply: a forged From cannot make us
        a spam relay)."""
        parsed = parse_subject(subject)
        if parsed is None:
            log.info("mail.refused", reason="subject is not password:number:reference[:comment][:date]")
            if not self._ration.allow(client):
                return None
            with contextlib.suppress(DatabaseUnavailable):
                await record_refusal(
                    self._db, origin="email", code="subject", client=client, detail="malformed subject"
                )
            return None
        request = CompatRequest(
            email=sender,
            password=parsed.password,
            numero=parsed.numero,
            ref=parsed.ref,
            com=parsed.com,
            diff=parsed.diff,
        )
        answer = await self._submit(request, channel="email", client=client)
        log.info("mail.processed", code=answer.code)
        if answer.account is not None and sender:
            await self._reply(sender, answer)
        return answer

    async def _reply(self, sender: str, answer: CompatAnswer) -> None:
        settings = self._settings
        if not settings.smtp_relay:
            return
        try:
            wait = await rates.blocked_for_s(
                self._db, REPLIES, [sender.lower()], limit=settings.mail_replies_per_hour, window_s=3600
            )
            if wait is not None:
                log.info("mail.reply_rate_limited")
                return
            await rates.record(self._db, REPLIES, [sender.lower()])
        except DatabaseUnavailable:
            return
        reply = compose(
            settings,
            to=sender,
            subject=f"vocalcast : code {answer.code}",
            body=(
                f"Bonjour,\n\nVotre demande d'envoi a reçu le code {answer.code} : {CODES[answer.code]}.\n\n"
                "Ce message est envoyé automatiquement ; merci de ne pas y répondre.\n"
            ),
            auto_submitted="auto-replied",
        )
        await send_mail(settings, reply)

    async def _submit(self, request: CompatRequest, *, channel: Channel, client: str) -> CompatAnswer:
        # NUL cannot be stored in PostgreSQL text, and no field of the manual means one: dropped here.
        request = CompatRequest(
            **{f.name: getattr(request, f.name).replace("\x00", "") for f in dataclasses.fields(request)}
        )
        account: Account | None = None
        try:
            account = await self._check_login(request, client)
            if channel == "http" and not await self._logins.client_allowed(account.id, client):
                # The account's own servers only (vocalcast account clients): the same 82 as a wrong
                # password, so the address learns nothing; the refusal, kept, tells the customer why.
                raise _Refused("82", "client address not allowed for this account")
            answer = await self._create(request, account, channel)
        except _Refused as refused:
            answer = CompatAnswer(refused.code, account=account)
            if refused.code == "82" and isinstance(refused.__cause__, _Throttled):
                answer = CompatAnswer("82", retry_after_s=refused.__cause__.retry_after_s)
            await self._log_refusal(
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

    async def _check_login(self, req: CompatRequest, client: str) -> Account:
        # Missing values first, in the manual's order.
        for field, code in (("email", "87"), ("password", "88"), ("numero", "89"), ("ref", "90")):
            if not getattr(req, field).strip():
                raise _Refused(code, f"{field} empty")
        result = await self._logins.password(req.email, req.password, client=client)
        if result.retry_after_s is not None:
            raise _Refused("82", "throttled") from _Throttled(result.retry_after_s)
        if result.account is None:
            raise _Refused("82", "bad login")
        return result.account

    async def _create(self, req: CompatRequest, account: Account, channel: Channel) -> CompatAnswer:
        db = self._db
        ref = req.ref.strip()
        if not (ref.isascii() and ref.isdigit()) or int(ref) > _MAX_REF:
            raise _Refused("91", "reference not a number")
        try:
            await messages_store.get_message(db, account.id, int(ref))
        except NotFound as exc:
            raise _Refused("91", "unknown reference") from exc

        numbers = await self._numbers(account, req.numero)
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
            return CompatAnswer(await self._cancel(account, int(ref), numbers, at), account=account)

        # An e-mail subject carries no transfer, sender, retries or drop: the account's defaults apply.
        by_mail = channel == "email"
        try:
            send = await self._sends.create(
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
                transfer=DEFAULT if by_mail else transfer,
                sender=DEFAULT if by_mail else (req.emetteur.strip() or None),
                voicemail_drop=DEFAULT if by_mail else req.depot.strip() == "1",
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

    async def _numbers(self, account: Account, numero: str) -> list[Number]:
        """`numero` names one of the account's contact groups, or is one number or a comma-separated list."""
        db = self._db
        with contextlib.suppress(NotFound):
            group = await groups_store.group_by_name(db, account.id, numero)
            try:
                targets = await targets_store.numbers_for_targets(db, account.id, group_ids=[group.id])
            except InvalidInput as exc:
                raise _Refused("86", "group empty") from exc
            return [
                n
                for n in (normalize(t.e164, allow_international=True) for t in targets)
                if isinstance(n, Number)
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

    async def _cancel(self, account: Account, ref: int, numbers: list[Number], at: datetime) -> str:
        """`diff` + `s`: cancel the account's deferred send(s) of that message, at that time, to exactly
        those numbers."""
        message = await messages_store.get_message(self._db, account.id, ref)
        matching = await scheduled_matching(self._db, account.id, message.id, at, [n.e164 for n in numbers])
        cancelled = 0
        for send_id in matching:
            with contextlib.suppress(InvalidInput):  # started in the meantime: nothing to cancel any more
                await self._sends.steer(send_id, "cancel", account_id=account.id)
                cancelled += 1
        return "92" if cancelled else "93"

    async def _log_refusal(
        self,
        *,
        channel: Channel,
        code: str,
        account: Account | None,
        client: str,
        req: CompatRequest,
        detail: str,
    ) -> None:
        """Refused requests are kept (never the password; numbers masked) so a customer can be helped —
        those of clients that did not log in as far as their ration allows."""
        log.info("compat.refused", channel=channel, code=code, reason=detail)
        if account is None and not self._ration.allow(client):
            return
        numero = ",".join(mask_number(n.strip()) for n in req.numero.split(",") if n.strip())[:200]
        with contextlib.suppress(DatabaseUnavailable):
            await record_refusal(
                self._db,
                origin=channel,
                code=code,
                account_id=account.id if account else None,
                client=client,
                detail=f"{detail}; ref={req.ref[:20]!r} numero={numero}",
            )


class _Throttled(Exception):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"throttled for {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


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
    "all_stop_listed": "84",
    "commercial_no_sender": "98",
    # A commercial default purpose needs a company name (engine/store/accounts.py); if the name went
    # away anyway, 98 is the code closest in meaning: the call would not identify who calls (README).
    "commercial_no_company": "98",
    "commercial_no_consent": "99",
}


def _code_of(exc: InvalidInput) -> str:
    return _CODE_OF.get(exc.code, "84")
