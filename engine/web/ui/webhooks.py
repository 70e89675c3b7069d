"""« Paramètres » → Webhooks: save the address and events, a new signing secret (shown once, on the
page itself), a test event, and a replay from the delivery log."""

from __future__ import annotations

import uuid

from aiohttp import web

from engine.errors import InvalidInput
from engine.web.ui.account import _render
from engine.web.ui.core import Page, page


@page
async def save(p: Page) -> web.StreamResponse:
    url = p.text("url").strip()
    events = p.texts("events")
    try:
        _, secret = await p.services.webhooks.configure(p.account.id, url=url or None, events=events)
    except InvalidInput as exc:
        return await _render(
            p, status=400, errors={"url": exc.message_fr}, webhook_url=url, webhook_events=events
        )
    if secret is not None:
        # Rendered, not redirected: the secret must not travel in a cookie or a URL.
        return await _render(p, webhook_secret=secret)
    return p.redirect("/parametres#webhook", "Webhook enregistré." if url else "Webhook supprimé.")


@page
async def rotate(p: Page) -> web.StreamResponse:
    return await _render(p, webhook_secret=await p.services.webhooks.rotate(p.account.id))


@page
async def test(p: Page) -> web.StreamResponse:
    try:
        await p.services.webhooks.test(p.account.id)
    except InvalidInput as exc:
        return await _render(p, status=400, errors={"url": exc.message_fr})
    return p.redirect(
        "/parametres#webhook", "Événement de test envoyé : son résultat apparaît dans le journal."
    )


@page
async def replay(p: Page) -> web.StreamResponse:
    try:
        event_id = uuid.UUID(p.request.match_info["event_id"])
    except ValueError as exc:
        raise web.HTTPNotFound() from exc
    await p.services.webhooks.replay(p.account.id, event_id)
    return p.redirect("/parametres#webhook", "Événement renvoyé.")


@page
async def notifications(p: Page) -> web.StreamResponse:
    on = bool(p.text("completion_email"))
    await p.services.webhooks.set_completion_email(p.account.id, on)
    return p.redirect(
        "/parametres#fin-envoi",
        "Vous recevrez un e-mail à la fin de chaque envoi." if on else "Plus d'e-mail à la fin des envois.",
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/parametres/notifications", notifications)
    app.router.add_post("/parametres/webhook", save)
    app.router.add_post("/parametres/webhook/secret", rotate)
    app.router.add_post("/parametres/webhook/test", test)
    app.router.add_post("/parametres/webhook/{event_id}/renvoyer", replay)
