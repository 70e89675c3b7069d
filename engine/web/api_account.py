"""API: the calling account — credits and ledger, default send options, personal code, sender numbers,
and its own API tokens (listed and revoked here; created by an operator with `vocalcast token create`)."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from engine.domain.accounts import (
    Account,
    LedgerEntry,
    SendDefaults,
    SenderNumber,
    check_sender,
)
from engine.domain.numbers import Number, normalize
from engine.errors import InvalidInput, NotFound
from engine.store import accounts as accounts_store
from engine.store import messages as messages_store
from engine.store import tokens as tokens_store
from engine.store.db import Database
from engine.web.api_common import (
    INT32_MAX,
    INT64_MAX,
    Field,
    account_of,
    bad_request,
    db_of,
    iso,
    json_body,
    json_response,
    no_content,
    not_null,
    path_int,
    query_int,
)
from engine.web.context import services_of

LEDGER_PAGE_MAX: Final = 200
DEFAULTS_FIELDS: Final = frozenset(
    {"greeting_ref", "transfer_number", "sender_number", "retries", "retry_interval_s", "voicemail_drop"}
)


def account_json(account: Account) -> dict[str, Any]:
    return {
        "id": str(account.id),
        "email": account.email,
        "credits": {"available": account.balance, "reserved": account.reserved},
        "allow_international": account.allow_international,
        "allow_voicemail_drop": account.allow_voicemail_drop,
        "created_at": iso(account.created_at),
    }


def ledger_json(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": iso(entry.at),
        "kind": entry.kind,
        "amount": entry.amount,
        "held": entry.held,
        "reason": entry.reason,
        "send_id": None if entry.send_id is None else str(entry.send_id),
    }


def sender_json(sender: SenderNumber) -> dict[str, Any]:
    return {
        "id": sender.id,
        "number": sender.e164,
        "status": sender.status,
        "is_mobile": sender.is_mobile,
        "in_automated_range": sender.in_automated_range,
        "declared_at": iso(sender.declared_at),
        "verified_at": iso(sender.verified_at),
    }


async def defaults_json(db: Database, account: Account) -> dict[str, Any]:
    defaults = account.defaults
    greeting_ref = None
    if defaults.greeting_enabled and defaults.greeting_message_id is not None:
        try:
            greeting = await messages_store.get_message_by_id(db, account.id, defaults.greeting_message_id)
            greeting_ref = greeting.ref
        except NotFound:
            greeting_ref = None  # deleted meanwhile: no greeting is played
    sender = None
    if defaults.sender_number_id is not None:
        senders = await accounts_store.list_senders(db, account.id)
        sender = next((s.e164 for s in senders if s.id == defaults.sender_number_id), None)
    return {
        "greeting_ref": greeting_ref,
        "transfer_number": defaults.transfer_number,
        "sender_number": sender,
        "retries": defaults.retries,
        "retry_interval_s": defaults.retry_interval_s,
        "voicemail_drop": defaults.voicemail_drop,
    }


async def get_account(request: web.Request) -> web.Response:
    return json_response(account_json(account_of(request)))


async def get_ledger(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", default=50, lo=1, hi=LEDGER_PAGE_MAX)
    before_id = query_int(request, "before_id", default=None, lo=1, hi=INT64_MAX)
    assert limit is not None  # noqa: S101 - it has a default
    entries = await accounts_store.ledger(
        db_of(request), account_of(request).id, limit=limit + 1, before_id=before_id
    )
    more = len(entries) > limit
    entries = entries[:limit]
    return json_response(
        {
            "entries": [ledger_json(e) for e in entries],
            "next_before_id": entries[-1].id if more else None,
        }
    )


async def get_defaults(request: web.Request) -> web.Response:
    account = account_of(request)
    return json_response(await defaults_json(db_of(request), account))


async def put_defaults(request: web.Request) -> web.Response:
    """Replace the default send options (http.php and e-mail sends use them, and API sends that omit one)."""
    account = account_of(request)
    body = await json_body(request, DEFAULTS_FIELDS)
    greeting_ref = Field("greeting_ref").integer(body, lo=1, hi=INT32_MAX, required=True)
    transfer = Field("transfer_number").text(body, required=True, max_length=40)
    sender = Field("sender_number").text(body, required=True, max_length=40)
    retries = not_null(Field("retries").integer(body, lo=0, hi=100, required=True), "retries")
    interval = not_null(
        Field("retry_interval_s").integer(body, lo=0, hi=10**9, required=True), "retry_interval_s"
    )
    drop = not_null(Field("voicemail_drop").boolean(body, required=True), "voicemail_drop")
    greeting_id = None
    if greeting_ref is not None:
        try:
            greeting_id = (await messages_store.get_message(db_of(request), account.id, greeting_ref)).id
        except NotFound as exc:
            raise bad_request(
                "greeting_invalid", "Ce message n'est pas un message d'accueil de votre compte."
            ) from exc
    sender_id = None
    if sender is not None and sender.strip():
        sender_id = await _verified_sender_id(db_of(request), account, sender)
    defaults = SendDefaults(
        greeting_enabled=greeting_id is not None,
        greeting_message_id=greeting_id,
        transfer_number=(transfer.strip() or None) if transfer is not None else None,
        sender_number_id=sender_id,
        retries=retries,
        retry_interval_s=interval,
        voicemail_drop=drop,
    )
    updated = await accounts_store.set_defaults(db_of(request), account.id, defaults)
    return json_response(await defaults_json(db_of(request), updated))


async def _verified_sender_id(db: Database, account: Account, raw: str) -> int:
    number = normalize(raw)
    e164 = number.e164 if isinstance(number, Number) else None
    for sender in await accounts_store.list_senders(db, account.id):
        if sender.e164 == e164 and sender.status == "verified":
            return sender.id
    raise InvalidInput(
        "sender_not_verified",
        f"sender number {raw!r} is not a verified number of the account",
        message_fr="Ce numéro émetteur n'est pas déclaré et vérifié sur votre compte.",
    )


async def reset_code(request: web.Request) -> web.Response:
    """A new personal code (the recording line's login); the old one stops working. Shown once."""
    code = await accounts_store.regenerate_code(
        db_of(request), account_of(request).id, secret_key=services_of(request).settings.require("secret_key")
    )
    return json_response({"code": code})


async def list_senders(request: web.Request) -> web.Response:
    senders = await accounts_store.list_senders(db_of(request), account_of(request).id)
    return json_response({"senders": [sender_json(s) for s in senders]})


async def declare_sender(request: web.Request) -> web.Response:
    """Declare a sender number; it is shown to callees only once our staff has verified it."""
    account = account_of(request)
    body = await json_body(request, frozenset({"number"}))
    raw = not_null(Field("number").text(body, required=True, max_length=40), "number")
    e164 = check_sender(raw).e164
    known = any(s.e164 == e164 for s in await accounts_store.list_senders(db_of(request), account.id))
    sender = await accounts_store.declare_sender(db_of(request), account.id, raw)
    return json_response(sender_json(sender), status=200 if known else 201)


def token_json(token: tokens_store.ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "label": token.label,
        "created_at": iso(token.created_at),
        "last_used_at": iso(token.last_used_at),
        "revoked_at": iso(token.revoked_at),
    }


async def list_tokens(request: web.Request) -> web.Response:
    tokens = await tokens_store.list_tokens(db_of(request), account_of(request).id)
    return json_response({"tokens": [token_json(t) for t in tokens]})


async def revoke_token(request: web.Request) -> web.Response:
    token_id = path_int(request, "token_id")
    await tokens_store.revoke_token(db_of(request), account_of(request).id, token_id)
    return no_content()


def add_routes(api: web.Application) -> None:
    api.router.add_get("/account", get_account, allow_head=False)
    api.router.add_get("/account/ledger", get_ledger, allow_head=False)
    api.router.add_get("/account/defaults", get_defaults, allow_head=False)
    api.router.add_put("/account/defaults", put_defaults)
    api.router.add_post("/account/code", reset_code)
    api.router.add_get("/account/senders", list_senders, allow_head=False)
    api.router.add_post("/account/senders", declare_sender)
    api.router.add_get("/tokens", list_tokens, allow_head=False)
    api.router.add_delete("/tokens/{token_id}", revoke_token)
