"""API: sends — the recipients check shown before confirming, creation from numbers, contacts and groups
with every option of the manual (Idempotency-Key: a retried POST never creates a second send), listing,
progress, per-recipient outcomes, pause, resume, cancel. Creation goes through the sends service."""

from __future__ import annotations

import asyncio
import json
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from aiohttp import web

from engine.domain.accounts import Account, SendDefaults
from engine.domain.areas import METROPOLE
from engine.domain.callhours import after_calling_time
from engine.domain.contacts import MAX_GROUPS
from engine.domain.outcomes import Outcome
from engine.domain.recipients import PasteReport
from engine.domain.schedule import parse_deferred
from engine.domain.sends import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
    LABELS_FR,
    LAW_REASONS_FR,
    MAX_COMMENT,
    IdempotencyKeyUsed,
    Send,
    Target,
    recipient_note_fr,
    unique_targets,
    window_wait,
    window_wait_fr,
)
from engine.errors import InvalidInput
from engine.services import Services
from engine.services.sends import DEFAULT
from engine.web import api_webhooks
from engine.web.api_common import (
    INT32_MAX,
    INT64_MAX,
    MISSING,
    ApiError,
    Field,
    account_of,
    bad_request,
    iso,
    json_body,
    json_response,
    not_null,
    parse_datetime,
    path_uuid,
    query_datetime,
    query_int,
)
from engine.web.context import services_of
from engine.web.paste import parse_pasted

SENDS_PAGE_MAX: Final = 100
RECIPIENTS_PAGE_MAX: Final = 1000
MAX_LIST_ITEMS: Final = 100_000
MAX_TEXT: Final = 2 * 1024 * 1024
TARGET_FIELDS: Final = frozenset({"numbers", "text", "contact_ids", "group_ids", "subset_contact_ids"})
SEND_FIELDS: Final = TARGET_FIELDS | frozenset(
    {
        "message_ref",
        "greeting_ref",
        "transfer_number",
        "sender_number",
        "retries",
        "retry_interval_s",
        "voicemail_drop",
        "at",
        "deferred",
        "comment",
        "skip_refused",
        "webhook",
        "purpose",
    }
)
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"


# --- targets ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Targets:
    """What a request asks to call: the pasted numbers' report and the numbers of contacts and groups."""

    paste: PasteReport
    from_contacts: tuple[Target, ...]

    @property
    def unique(self) -> tuple[Target, ...]:
        """Each number once; a number that is also a contact keeps its contact."""
        return unique_targets([*self.from_contacts, *(Target(n) for n in self.paste.numbers)])


async def read_targets(services: Services, account: Account, body: dict[str, Any]) -> Targets:
    numbers = _listed(Field("numbers").text_list(body, max_items=MAX_LIST_ITEMS, max_length=100))
    text = Field("text").text(body, max_length=MAX_TEXT)
    contact_ids = _listed(Field("contact_ids").int_list(body, hi=INT64_MAX, max_items=MAX_LIST_ITEMS))
    group_ids = _listed(Field("group_ids").int_list(body, hi=INT64_MAX, max_items=MAX_GROUPS))
    subset = Field("subset_contact_ids").int_list(body, hi=INT64_MAX, max_items=MAX_LIST_ITEMS)
    pasted = "\n".join([*numbers, *([text] if isinstance(text, str) else [])])
    if not pasted.strip() and not contact_ids and not group_ids:
        raise bad_request(
            "no_targets", "Indiquez des numéros (numbers ou text), des contacts ou des groupes à appeler."
        )
    paste = await parse_pasted(pasted, services.settings, allow_international=account.allow_international)
    from_contacts: list[Target] = []
    if contact_ids or group_ids:
        from_contacts = await services.contacts.targets(
            account.id,
            contact_ids=contact_ids,
            group_ids=group_ids,
            subset_contact_ids=subset if isinstance(subset, list) else None,
        )
    return Targets(paste, tuple(from_contacts))


def _listed(value: Any) -> list[Any]:
    """A list field's items; absent or null: none."""
    return value if isinstance(value, list) else []


def paste_json(paste: PasteReport) -> dict[str, list[dict[str, Any]]]:
    return {
        "accepted": [
            {
                "line": line.line,
                "input": line.input,
                "number": line.number.e164,
                "type": line.number.type,
                "is_mobile": line.number.is_mobile,
            }
            for line in paste.lines
            if line.number is not None and line.accepted
        ],
        "refused": [
            {
                "line": line.line,
                "input": line.input,
                "code": line.refusal.code,
                "message": line.refusal.message_fr,
            }
            for line in paste.lines
            if line.refusal is not None
        ],
        "duplicates": [
            {
                "line": line.line,
                "input": line.input,
                "number": line.number.e164,
                "duplicate_of": line.duplicate_of,
            }
            for line in paste.lines
            if line.number is not None and line.duplicate_of is not None
        ],
    }


async def check_recipients(request: web.Request) -> web.Response:
    """The report shown before a send is confirmed: nothing is created, no credit is reserved."""
    account = account_of(request)
    body = await json_body(request, TARGET_FIELDS)
    targets = await read_targets(services_of(request), account, body)
    credits = len(targets.unique)
    return json_response(
        {
            **paste_json(targets.paste),
            "from_contacts": len(targets.from_contacts),
            "recipients": credits,
            "credits": credits,
            "available": account.balance,
            "enough_credits": credits <= account.balance,
        }
    )


# --- creation -----------------------------------------------------------------------------------------


def _idempotency_key(request: web.Request) -> str | None:
    raw = request.headers.get(IDEMPOTENCY_HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > IDEMPOTENCY_KEY_MAX_LENGTH or not key.isascii() or not key.isprintable():
        raise bad_request(
            "idempotency_key_invalid",
            f"L'en-tête Idempotency-Key doit compter de 1 à {IDEMPOTENCY_KEY_MAX_LENGTH} caractères ASCII.",
        )
    return key


def _start_at(body: dict[str, Any]) -> datetime | None:
    at = Field("at").text(body, max_length=64)
    deferred = Field("deferred").text(body, max_length=64)
    if isinstance(at, str) and isinstance(deferred, str):
        raise bad_request("at_and_deferred", "Indiquez « at » ou « deferred », pas les deux.")
    if isinstance(at, str):
        return parse_datetime(at, "at")
    if isinstance(deferred, str):
        parsed = parse_deferred(deferred, datetime.now(UTC))
        if parsed.cancel:
            raise bad_request(
                "bad_deferred",
                "Pour annuler un envoi différé, utilisez POST /api/v1/sends/{id}/cancel.",
            )
        return parsed.at_utc
    return None


def _purpose(body: dict[str, Any]) -> str:
    """Every API send states its purpose (issue 18): no account default stands in for it here."""
    purpose = Field("purpose").text(body, max_length=20)
    if purpose is MISSING or purpose is None:
        raise bad_request(
            "field_missing",
            "Le champ « purpose » est obligatoire : indiquez l'objet de l'envoi, « information » "
            "(rappel, alerte, message interne) ou « commercial » (prospection, offre).",
        )
    return str(purpose)


def _option(value: Any) -> Any:
    """Absent: the account's default; null: none; else the value."""
    return DEFAULT if value is MISSING else value


# Requests with the same key wait for each other here, so that the second one finds the first one's send
# and answers 200. Across engine processes the database's UNIQUE key still allows only one send.
_KEY_LOCKS: Final[weakref.WeakValueDictionary[tuple[UUID, str], asyncio.Lock]] = weakref.WeakValueDictionary()


async def create(request: web.Request) -> web.Response:
    account = account_of(request)
    key = _idempotency_key(request)
    if key is None:
        return await _create(request, account, None)
    lock = _KEY_LOCKS.setdefault((account.id, key), asyncio.Lock())
    async with lock:
        earlier = await services_of(request).sends.by_key(account.id, key)
        if earlier is not None:
            return await _send_answer(services_of(request), account, earlier, status=200)
        return await _create(request, account, key)


async def _create(request: web.Request, account: Account, key: str | None) -> web.Response:
    body = await json_body(request, SEND_FIELDS)
    message_ref = not_null(
        Field("message_ref").integer(body, lo=1, hi=INT32_MAX, required=True), "message_ref"
    )
    greeting_ref = Field("greeting_ref").integer(body, lo=1, hi=INT32_MAX)
    transfer = Field("transfer_number").text(body, max_length=40)
    sender = Field("sender_number").text(body, max_length=40)
    retries = Field("retries").integer(body, lo=0, hi=1000)
    interval = Field("retry_interval_s").integer(body, lo=0, hi=10**9)
    drop = Field("voicemail_drop").boolean(body)
    comment = not_null(Field("comment").text(body, max_length=MAX_COMMENT), "comment")
    skip_refused = not_null(Field("skip_refused").boolean(body), "skip_refused")
    purpose = _purpose(body)
    for name, value in (("retries", retries), ("retry_interval_s", interval), ("voicemail_drop", drop)):
        not_null(value, name)
    # The same bounds as the account's default options (retries, and calling back no sooner than a minute).
    SendDefaults(
        retries=account.defaults.retries if retries is MISSING else retries,
        retry_interval_s=account.defaults.retry_interval_s if interval is MISSING else interval,
    )
    at = _start_at(body)
    services = services_of(request)
    webhook = api_webhooks.read_override(services, body)
    targets = await read_targets(services, account, body)
    refused = paste_json(targets.paste)["refused"]
    if refused and skip_refused is not True:
        first = refused[0]
        raise bad_request(
            "number_refused",
            f"Numéro refusé ligne {first['line']} (« {first['input'][:40]} ») : {first['message']} "
            "Rien n'a été créé ; corrigez la liste ou envoyez skip_refused: true.",
            details=refused,
        )
    options: dict[str, Any] = {
        "greeting_ref": _option(greeting_ref),
        "transfer": _option(transfer),
        "sender": _option(sender),
        "retries": _option(retries),
        "retry_interval_s": _option(interval),
        "voicemail_drop": _option(drop),
        "purpose": purpose,
    }
    try:
        send = await services.sends.create(
            account,
            message_ref=message_ref,
            targets=targets.unique,
            origin="api",
            comment="" if comment is MISSING else comment,
            at=at,
            idempotency_key=key,
            webhook=None if webhook is None else (webhook.url, webhook.events),
            **options,
        )
    except IdempotencyKeyUsed as exc:
        # A twin request with the same key committed between our look-up and our insert: its send is ours.
        return await _send_answer(services, account, exc.send, status=200)
    return await _send_answer(services, account, send, status=201, refused=refused)


async def _send_answer(
    services: Services,
    account: Account,
    send: Send,
    *,
    status: int,
    refused: list[dict[str, Any]] | None = None,
) -> web.Response:
    send = await services.sends.get(send.id, account_id=account.id)  # as stored now, counters included
    out = await send_detail(services, account, send)
    out["refused"] = refused or []
    return json_response(out, status=status)


# --- reading --------------------------------------------------------------------------------------------


def send_json(send: Send, refs: dict[UUID, int]) -> dict[str, Any]:
    return {
        "id": str(send.id),
        "origin": send.origin,
        "status": send.status.value,
        "status_label": LABELS_FR[send.status],
        "code": send.code,
        "comment": send.comment,
        "message_ref": refs.get(send.message_id),
        "greeting_ref": None if send.greeting_message_id is None else refs.get(send.greeting_message_id),
        "transfer_number": send.transfer_number,
        "sender_number": send.sender_e164,
        "retries": send.retry.extra_attempts,
        "retry_interval_s": round(send.retry.interval_s),
        "voicemail_drop": send.voicemail_drop,
        "scheduled_at": iso(send.start_at),
        "deferred": send.deferred,
        "recipients": send.recipients_total,
        "credits_held": send.credits_held,
        "credits_used": send.credits_used,
        "demo": send.demo,
        "created_at": iso(send.created_at),
        "started_at": iso(send.started_at),
        "ended_at": iso(send.ended_at),
        "purpose": send.purpose,
        "stop_listed_skipped": send.stop_listed_skipped,
    }


async def send_detail(services: Services, account: Account, send: Send) -> dict[str, Any]:
    progress = await services.sends.progress(send)
    now = datetime.now(UTC)
    estimated_end = None
    if send.status.value == "running" and send.started_at is not None:
        remaining_s = progress.estimated_end_s((now - send.started_at).total_seconds())
        if remaining_s is not None and send.purpose == "commercial":
            # Calls only within the legal hours: the estimate counts calling time (metropolitan hours
            # and holidays; an overseas recipient may end later).
            estimated_end = iso(after_calling_time(METROPOLE, now, remaining_s))
        elif remaining_s is not None:
            estimated_end = iso(now + timedelta(seconds=remaining_s))
    wait = window_wait(send.purpose, send.status, progress.pending, now)
    out = send_json(send, await services.messages.refs(account.id))
    out["progress"] = {
        "total": progress.total,
        "done": progress.done,
        "calling": progress.calling,
        "pending": progress.pending,
        "cancelled": progress.cancelled,
        "attempts": progress.attempts,
        "credits_used": progress.credits_used,
        "outcomes": progress.outcomes,
        "estimated_end_at": estimated_end,
        "window_wait": None
        if wait is None
        else {
            "reason": wait.reason.value,
            "label": wait.label_fr,
            "until": iso(wait.until),
            "note": window_wait_fr(wait, now),
        },
    }
    usage = await services.sends.transfer_usage(send)
    out["transfers"] = {"answered": usage.transfers, "minutes": usage.minutes, "credits": usage.credits}
    return out


async def list_sends(request: web.Request) -> web.Response:
    account = account_of(request)
    limit = query_int(request, "limit", default=20, lo=1, hi=SENDS_PAGE_MAX)
    before = query_datetime(request, "before")
    assert limit is not None  # noqa: S101 - it has a default
    services = services_of(request)
    sends = await services.sends.history(account.id, limit=limit + 1, before=before)
    more = len(sends) > limit
    sends = sends[:limit]
    refs = await services.messages.refs(account.id)
    outcomes = await services.sends.outcomes(sends)
    out = []
    for send in sends:
        row = send_json(send, refs)
        row["outcomes"] = outcomes[send.id]
        out.append(row)
    return json_response({"sends": out, "next_before": iso(sends[-1].created_at) if more else None})


async def get_send(request: web.Request) -> web.Response:
    account = account_of(request)
    services = services_of(request)
    send = await services.sends.get(path_uuid(request, "send_id"), account_id=account.id)
    return json_response(await send_detail(services, account, send))


_ATTEMPT_FIELDS: Final = (
    "attempt_no", "outcome", "sip_code", "cause", "created_at", "ended_at", "ring_s", "talk_s",
    "transfer_outcome", "transfer_s",
)  # fmt: skip


def _label(outcome: str | None) -> str | None:
    try:
        return None if outcome is None else Outcome(outcome).label_fr
    except ValueError:
        return None


def recipient_json(row: dict[str, Any]) -> dict[str, Any]:
    detail = row["attempts_detail"]
    attempts = json.loads(detail) if isinstance(detail, str) else detail
    return {
        "id": row["id"],
        "number": row["e164"],
        "state": row["state"],
        "outcome": row["outcome"],
        "outcome_label": _label(row["outcome"]),
        "attempts": row["attempts"],
        "final_at": iso(row["final_at"]),
        "waiting": row["wait_reason"],
        # A retry's time, or when the law lets a commercial send call (hours, holidays, caps).
        "next_attempt_at": iso(row["next_attempt_at"])
        if row["state"] == "pending" and (row["attempts"] or row["wait_reason"] in LAW_REASONS_FR)
        else None,
        "note": recipient_note_fr(
            state=row["state"],
            outcome=row["outcome"],
            attempts=row["attempts"],
            wait_reason=row["wait_reason"],
            next_attempt_at=row["next_attempt_at"],
            last_outcome=attempts[-1].get("outcome") if attempts else None,
            now=datetime.now(UTC),
        ),
        "calls": [{name: a.get(name) for name in _ATTEMPT_FIELDS} for a in attempts],
    }


async def list_recipients(request: web.Request) -> web.Response:
    account = account_of(request)
    send_id = path_uuid(request, "send_id")
    limit = query_int(request, "limit", default=100, lo=1, hi=RECIPIENTS_PAGE_MAX)
    after = query_int(request, "after", default=0, lo=0, hi=INT64_MAX)
    assert limit is not None and after is not None  # noqa: S101 - both have defaults
    sends = services_of(request).sends
    send = await sends.get(send_id, account_id=account.id)
    rows = await sends.recipients(send, limit=limit + 1, after_id=after)
    more = len(rows) > limit
    rows = rows[:limit]
    return json_response(
        {"recipients": [recipient_json(r) for r in rows], "next_after": rows[-1]["id"] if more else None}
    )


# --- steering --------------------------------------------------------------------------------------------


def _steer(action: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        account = account_of(request)
        try:
            send = await services_of(request).sends.steer(
                path_uuid(request, "send_id"), action, account_id=account.id
            )
        except InvalidInput as exc:
            raise ApiError(409, exc.code, exc.message_fr) from exc
        return json_response(await send_detail(services_of(request), account, send))

    handler.__name__ = f"{action}_send"
    return handler


def add_routes(api: web.Application) -> None:
    api.router.add_post("/recipients/check", check_recipients)
    api.router.add_get("/sends", list_sends, allow_head=False)
    api.router.add_post("/sends", create)
    api.router.add_get("/sends/{send_id}", get_send, allow_head=False)
    api.router.add_get("/sends/{send_id}/recipients", list_recipients, allow_head=False)
    for action in ("pause", "resume", "cancel"):
        api.router.add_post(f"/sends/{{send_id}}/{action}", _steer(action))
