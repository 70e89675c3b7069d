"""What « Paramètres » shows of the account's webhook: its address, events, state (a line when a 410
disabled it) and the last deliveries. The forms it posts to: engine/web/ui/webhooks.py."""

from __future__ import annotations

from typing import Any, Final

from engine.domain.webhooks import EVENT_TYPES
from engine.web.ui.core import Page

EVENT_LABELS_FR: Final = {
    "send.started": "Envoi démarré",
    "send.completed": "Envoi terminé ou annulé",
    "attempt.final": "Résultat de chaque appel",
    "recipient.final": "Résultat final de chaque numéro",
    "optout.added": "Numéro ajouté à la liste d'opposition",
    "webhook.test": "Test",
}
STATUS_LABELS_FR: Final = {
    "pending": "En attente",
    "delivered": "Remis",
    "failed": "Échec",
    "dropped": "Abandonné",
}
SHOWN_DELIVERIES: Final = 20


async def panel(p: Page) -> dict[str, Any]:
    hooks = p.services.webhooks
    settings = await hooks.show(p.account.id)
    return {
        "webhook": settings,
        "webhook_url": (settings.url if settings else None) or "",
        "webhook_events": list(settings.events if settings else EVENT_TYPES),
        "webhook_deliveries": await hooks.deliveries(p.account.id, limit=SHOWN_DELIVERIES),
        "webhook_secret": None,
        "completion_email": await hooks.completion_email(p.account.id),
        "event_labels": EVENT_LABELS_FR,
        "event_types": EVENT_TYPES,
        "delivery_labels": STATUS_LABELS_FR,
    }
