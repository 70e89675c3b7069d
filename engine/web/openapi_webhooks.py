"""The OpenAPI paths of e-mail notifications and webhooks (assembled in engine/web/openapi.py)."""

from __future__ import annotations

from typing import Any, Final

from engine.web.openapi_ops import EVENT_ID, LIMIT, NO_CONTENT, SEND_ID, op, query_param, reply
from engine.web.openapi_schemas import DATETIME, integer, ref

PATHS: Final[dict[str, dict[str, dict[str, Any]]]] = {
    "/account/notifications": {
        "get": op(
            "getNotifications",
            "Compte",
            "Les notifications par e-mail du compte (un e-mail à la fin de chaque envoi).",
            {200: reply(ref("Notifications"), "Les notifications.")},
        ),
        "put": op(
            "putNotifications",
            "Compte",
            "Recevoir ou non un e-mail (résumé, lien vers le rapport) à la fin de chaque envoi.",
            {200: reply(ref("Notifications"), "Les notifications.")},
            body=ref("Notifications"),
        ),
    },
    "/webhook": {
        "get": op(
            "getWebhook",
            "Webhooks",
            "L'adresse où nous envoyons les événements (POST JSON signé), et lesquels.",
            {200: reply(ref("WebhookSettings"), "Le webhook du compte.")},
        ),
        "put": op(
            "putWebhook",
            "Webhooks",
            "Enregistrer l'adresse (null : aucune) et les événements voulus ; réactive une adresse "
            "désactivée. La première fois, la réponse contient le secret de signature (affiché une fois).",
            {200: reply(ref("WebhookSaved"), "Le webhook enregistré.")},
            body=ref("WebhookInput"),
        ),
    },
    "/webhook/secret": {
        "post": op(
            "rotateWebhookSecret",
            "Webhooks",
            "Un nouveau secret de signature (affiché une fois) ; l'ancien cesse aussitôt de signer.",
            {200: reply(ref("WebhookSecret"), "Le nouveau secret.")},
        )
    },
    "/webhook/test": {
        "post": op(
            "testWebhook",
            "Webhooks",
            "Envoyer un événement de test (webhook.test) à l'adresse du compte.",
            {202: reply(ref("WebhookDelivery"), "L'événement, en file d'envoi.")},
            errors=(409,),
        )
    },
    "/webhook/deliveries": {
        "get": op(
            "listWebhookDeliveries",
            "Webhooks",
            "Le journal des envois d'événements, du plus récent au plus ancien (pages : next_before).",
            {200: reply(ref("WebhookDeliveryPage"), "Une page du journal.")},
            params=(
                LIMIT(integer(1, 200), "Événements par page (50 par défaut)."),
                query_param("before", DATETIME, "La page qui suit : next_before."),
            ),
        )
    },
    "/webhook/deliveries/{event_id}": {
        "get": op(
            "getWebhookDelivery",
            "Webhooks",
            "Un événement et chacun de ses essais (statut HTTP, erreur, durée).",
            {200: reply(ref("WebhookDeliveryDetail"), "L'événement.")},
            params=(EVENT_ID,),
        )
    },
    "/webhook/deliveries/{event_id}/replay": {
        "post": op(
            "replayWebhookDelivery",
            "Webhooks",
            "Renvoyer un événement (même identifiant, même contenu).",
            {202: reply(ref("WebhookDelivery"), "L'événement, de nouveau en file d'envoi.")},
            params=(EVENT_ID,),
        )
    },
    "/sends/{send_id}/webhook": {
        "get": op(
            "getSendWebhook",
            "Webhooks",
            "Le webhook propre à cet envoi (null : celui du compte).",
            {200: reply(ref("SendWebhook"), "Le webhook de l'envoi.")},
            params=(SEND_ID,),
        ),
        "put": op(
            "putSendWebhook",
            "Webhooks",
            "Un webhook propre à cet envoi, à la place de celui du compte (events [] : aucun).",
            {200: reply(ref("SendWebhook"), "Le webhook de l'envoi.")},
            params=(SEND_ID,),
            body=ref("SendWebhookInput"),
        ),
        "delete": op(
            "deleteSendWebhook",
            "Webhooks",
            "Revenir au webhook du compte pour cet envoi.",
            NO_CONTENT,
            params=(SEND_ID,),
        ),
    },
}
