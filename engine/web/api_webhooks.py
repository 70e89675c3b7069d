"""API: the account's webhook — its endpoint and events, its signing secret (shown once, rotatable), a
send's own endpoint, the delivery log, a test event and replays. Deliveries: engine/services/webhooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from engine.domain.webhooks import EVENT_TYPES, URL_MAX_LENGTH, Delivery, SendWebhook, WebhookSettings
from engine.errors import InvalidInput
from engine.services import Services
from engine.web.api_common import (
    MISSING,
    ApiError,
    Field,
    account_of,
    iso,
    json_body,
    json_response,
    no_content,
    path_uuid,
    query_datetime,
    query_int,
)
from engine.web.context import services_of

DELIVERIES_PAGE_MAX: Final = 200
WEBHOOK_FIELDS: Final = frozenset({"url", "events"})


def settings_json(settings: WebhookSettings | None) -> dict[str, Any]:
    if settings is None:
        return {
            "url": None,
            "events": list(EVENT_TYPES),
            "enabled": False,
            "disabled_at": None,
            "disabled_reason": None,
            "updated_at": None,
        }
    return {
        "url": settings.url,
        "events": list(settings.events),
        "enabled": settings.url is not None and settings.disabled_at is None,
        "disabled_at": iso(settings.disabled_at),
        "disabled_reason": settings.disabled_reason,
        "updated_at": iso(settings.updated_at),
    }


def send_webhook_json(hook: SendWebhook | None) -> dict[str, Any]:
    if hook is None:
        return {"url": None, "events": None, "disabled_at": None, "disabled_reason": None}
    return {
        "url": hook.url,
        "events": list(hook.events),
        "disabled_at": iso(hook.disabled_at),
        "disabled_reason": hook.disabled_reason,
    }


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "id": str(d.id),
        "type": d.type,
        "send_id": None if d.send_id is None else str(d.send_id),
        "sequence": d.sequence,
        "occurred_at": iso(d.occurred_at),
        "url": d.url,
        "status": d.status,
        "tries": d.tries,
        "next_try_at": iso(d.next_at),
        "last_status": d.last_status,
        "last_error": d.last_error,
        "last_latency_ms": d.last_latency_ms,
        "delivered_at": iso(d.delivered_at),
    }


@dataclass(frozen=True, slots=True)
class Override:
    """A send's own webhook, given with its creation (POST /sends, field ``webhook``)."""

    url: str
    events: tuple[str, ...]


def read_override(services: Services, body: dict[str, Any]) -> Override | None:
    """The ``webhook`` field of a send's creation, checked before anything is created (absent or null:
    the account's webhook)."""
    value = Field("webhook").raw(body)
    if value is MISSING or value is None:
        return None
    if not isinstance(value, dict) or not set(value) <= WEBHOOK_FIELDS:
        raise ApiError(400, "field_invalid", "Le champ « webhook » doit être un objet {url, events}.")
    url = Field("url").text(value, required=True, max_length=URL_MAX_LENGTH)
    if not isinstance(url, str):
        raise ApiError(400, "field_invalid", "Le champ « webhook.url » doit être un texte.")
    clean, events = services.webhooks.check_override(url, _events(value))
    return Override(clean, events)


def _events(body: dict[str, Any]) -> list[str] | None:
    value = Field("events").text_list(body, max_items=len(EVENT_TYPES) * 2, max_length=40)
    return None if value is MISSING or value is None else list(value)


async def get_webhook(request: web.Request) -> web.Response:
    settings = await services_of(request).webhooks.show(account_of(request).id)
    return json_response(settings_json(settings))


async def put_webhook(request: web.Request) -> web.Response:
    """Set the endpoint (url null: none) and the events; the secret is in the answer the first time only."""
    body = await json_body(request, WEBHOOK_FIELDS)
    url = Field("url").text(body, required=True, max_length=URL_MAX_LENGTH)
    settings, secret = await services_of(request).webhooks.configure(
        account_of(request).id, url=url, events=_events(body)
    )
    return json_response({**settings_json(settings), "secret": secret})


async def rotate_secret(request: web.Request) -> web.Response:
    """A new signing secret, shown once; the old one stops signing at once."""
    secret = await services_of(request).webhooks.rotate(account_of(request).id)
    return json_response({"secret": secret})


async def send_test(request: web.Request) -> web.Response:
    try:
        queued = await services_of(request).webhooks.test(account_of(request).id)
    except InvalidInput as exc:
        raise ApiError(409, exc.code, exc.message_fr) from exc
    return json_response(delivery_json(queued), status=202)


async def list_deliveries(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", default=50, lo=1, hi=DELIVERIES_PAGE_MAX)
    before = query_datetime(request, "before")
    assert limit is not None  # noqa: S101 - it has a default
    found = await services_of(request).webhooks.deliveries(
        account_of(request).id, limit=limit + 1, before=before
    )
    more = len(found) > limit
    found = found[:limit]
    return json_response(
        {
            "deliveries": [delivery_json(d) for d in found],
            "next_before": iso(found[-1].occurred_at) if more else None,
        }
    )


async def get_delivery(request: web.Request) -> web.Response:
    found, tries = await services_of(request).webhooks.delivery(
        account_of(request).id, path_uuid(request, "event_id")
    )
    return json_response(
        {
            **delivery_json(found),
            "attempts": [
                {"at": iso(t.at), "status": t.status, "error": t.error, "latency_ms": t.latency_ms}
                for t in tries
            ],
        }
    )


async def replay(request: web.Request) -> web.Response:
    """Deliver an event again, same id and body (a receiver that saw it already recognises it)."""
    again = await services_of(request).webhooks.replay(account_of(request).id, path_uuid(request, "event_id"))
    return json_response(delivery_json(again), status=202)


async def get_send_webhook(request: web.Request) -> web.Response:
    hook = await services_of(request).webhooks.for_send(account_of(request).id, path_uuid(request, "send_id"))
    return json_response(send_webhook_json(hook))


async def put_send_webhook(request: web.Request) -> web.Response:
    """This send's own endpoint and events, instead of the account's (events []: none for this send)."""
    body = await json_body(request, WEBHOOK_FIELDS)
    url = Field("url").text(body, required=True, max_length=URL_MAX_LENGTH)
    if url is None:
        raise ApiError(400, "field_invalid", "Le champ « url » ne peut pas être null.")
    hook = await services_of(request).webhooks.set_for_send(
        account_of(request).id, path_uuid(request, "send_id"), url=url, events=_events(body)
    )
    return json_response(send_webhook_json(hook))


async def delete_send_webhook(request: web.Request) -> web.Response:
    await services_of(request).webhooks.clear_for_send(account_of(request).id, path_uuid(request, "send_id"))
    return no_content()


async def get_notifications(request: web.Request) -> web.Response:
    on = await services_of(request).webhooks.completion_email(account_of(request).id)
    return json_response({"completion_email": on})


async def put_notifications(request: web.Request) -> web.Response:
    """Whether an e-mail (summary, link to the report) is sent when each send ends."""
    body = await json_body(request, frozenset({"completion_email"}))
    on = Field("completion_email").boolean(body, required=True)
    if not isinstance(on, bool):
        raise ApiError(400, "field_invalid", "Le champ « completion_email » doit être un booléen.")
    await services_of(request).webhooks.set_completion_email(account_of(request).id, on)
    return json_response({"completion_email": on})


def add_routes(api: web.Application) -> None:
    api.router.add_get("/account/notifications", get_notifications, allow_head=False)
    api.router.add_put("/account/notifications", put_notifications)
    api.router.add_get("/webhook", get_webhook, allow_head=False)
    api.router.add_put("/webhook", put_webhook)
    api.router.add_post("/webhook/secret", rotate_secret)
    api.router.add_post("/webhook/test", send_test)
    api.router.add_get("/webhook/deliveries", list_deliveries, allow_head=False)
    api.router.add_get("/webhook/deliveries/{event_id}", get_delivery, allow_head=False)
    api.router.add_post("/webhook/deliveries/{event_id}/replay", replay)
    api.router.add_get("/sends/{send_id}/webhook", get_send_webhook, allow_head=False)
    api.router.add_put("/sends/{send_id}/webhook", put_send_webhook)
    api.router.add_delete("/sends/{send_id}/webhook", delete_send_webhook)
