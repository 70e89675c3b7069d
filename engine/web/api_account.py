"""API: the calling account — credits and ledger, default send options, personal code, sender numbers,
and its own API tokens (listed and revoked here; created by an operator with `vocalcast token create`)."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from engine.domain.accounts import Account, LedgerEntry, SenderNumber
from engine.domain.commercial import PURPOSES
from engine.domain.tokens import ApiToken
from engine.services.accounts import COMPANY_NAME_MAX, KEEP, NamedDefaults
from engine.web.api_common import (
    INT32_MAX,
    INT64_MAX,
    MISSING,
    Field,
    account_of,
    bad_request,
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
    | {"purpose", "company_name"}  # issue 18: optional in a PUT (absent: unchanged)
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


def defaults_json(defaults: NamedDefaults) -> dict[str, Any]:
    return {
        # A greeting that is not played is not shown.
        "greeting_ref": defaults.greeting_ref if defaults.greeting_enabled else None,
        "transfer_number": defaults.transfer_number,
        "sender_number": defaults.sender_number,
        "retries": defaults.retries,
        "retry_interval_s": defaults.retry_interval_s,
        "voicemail_drop": defaults.voicemail_drop,
        "purpose": defaults.purpose,
        "company_name": defaults.company_name,
    }


async def get_account(request: web.Request) -> web.Response:
    return json_response(account_json(account_of(request)))


async def get_ledger(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", default=50, lo=1, hi=LEDGER_PAGE_MAX)
    before_id = query_int(request, "before_id", default=None, lo=1, hi=INT64_MAX)
    assert limit is not None  # noqa: S101 - it has a default
    entries = await services_of(request).accounts.ledger(
        account_of(request).id, limit=limit + 1, before_id=before_id
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
    defaults = await services_of(request).accounts.defaults(account_of(request))
    return json_response(defaults_json(defaults))


async def put_defaults(request: web.Request) -> web.Response:
    """Replace the default send options (http.php and e-mail sends use them, and API sends that omit one);
    the purpose and the company name only when given (issue 18)."""
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
    purpose = Field("purpose").text(body, max_length=20)
    if purpose is not MISSING and purpose not in PURPOSES:
        raise bad_request(
            "field_invalid", "Le champ « purpose » doit être « information » ou « commercial »."
        )
    company = Field("company_name").text(body, max_length=COMPANY_NAME_MAX)
    changed = await services_of(request).accounts.change_defaults(
        account.id,
        greeting_ref=greeting_ref,
        transfer_number=transfer,
        sender_number=sender,
        retries=retries,
        retry_interval_s=interval,
        voicemail_drop=drop,
        purpose=KEEP if purpose is MISSING else purpose,
        company_name=KEEP if company is MISSING else company,
    )
    return json_response(defaults_json(changed))


async def reset_code(request: web.Request) -> web.Response:
    """A new personal code (the recording line's login); the old one stops working. Shown once."""
    code = await services_of(request).accounts.new_code(account_of(request).id)
    return json_response({"code": code})


async def list_senders(request: web.Request) -> web.Response:
    senders = await services_of(request).accounts.senders(account_of(request).id)
    return json_response({"senders": [sender_json(s) for s in senders]})


async def declare_sender(request: web.Request) -> web.Response:
    """Declare a sender number; it is shown to callees only once our staff has verified it."""
    account = account_of(request)
    body = await json_body(request, frozenset({"number"}))
    raw = not_null(Field("number").text(body, required=True, max_length=40), "number")
    sender, new = await services_of(request).accounts.declare_sender(account.id, raw)
    return json_response(sender_json(sender), status=201 if new else 200)


def token_json(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "label": token.label,
        "created_at": iso(token.created_at),
        "last_used_at": iso(token.last_used_at),
        "revoked_at": iso(token.revoked_at),
    }


async def list_tokens(request: web.Request) -> web.Response:
    tokens = await services_of(request).accounts.tokens(account_of(request).id)
    return json_response({"tokens": [token_json(t) for t in tokens]})


async def revoke_token(request: web.Request) -> web.Response:
    token_id = path_int(request, "token_id")
    await services_of(request).accounts.revoke_token(account_of(request).id, token_id)
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
