"""The OpenAPI paths of messages, the recipients' check and sends (assembled in engine/web/openapi.py)."""

from __future__ import annotations

from typing import Any, Final

from engine.web.api_common import INT64_MAX
from engine.web.openapi_ops import IDEMPOTENCY_KEY, LIMIT, NO_CONTENT, REF, SEND_ID, op, query_param, reply
from engine.web.openapi_schemas import BINARY, BOOLEAN, DATETIME, integer, ref

PATHS: Final[dict[str, dict[str, dict[str, Any]]]] = {
    "/messages": {
        "get": op(
            "listMessages",
            "Messages",
            "La bibliothèque de messages.",
            {200: reply(ref("MessageList"), "Les messages.")},
            params=(query_param("greetings", BOOLEAN, "Seulement les messages d'accueil."),),
        ),
        "post": op(
            "uploadMessage",
            "Messages",
            "Déposer un fichier WAV ou MP3 : il est converti avant la réponse et reçoit sa référence.",
            {201: reply(ref("Message"), "Le message créé.")},
            multipart=ref("MessageUpload"),
            errors=(422,),
        ),
    },
    "/messages/{ref}": {
        "get": op(
            "getMessage",
            "Messages",
            "Un message.",
            {200: reply(ref("Message"), "Le message.")},
            params=(REF,),
        ),
        "patch": op(
            "renameMessage",
            "Messages",
            "Renommer un message.",
            {200: reply(ref("Message"), "Le message renommé.")},
            params=(REF,),
            body=ref("MessageRename"),
        ),
        "delete": op(
            "deleteMessage",
            "Messages",
            "Supprimer un message (refusé tant qu'un envoi programmé ou en cours l'utilise).",
            NO_CONTENT,
            params=(REF,),
            errors=(409,),
        ),
    },
    "/messages/{ref}/confirm-greeting": {
        "post": op(
            "confirmGreeting",
            "Messages",
            "Faire d'un message d'accueil enregistré par téléphone (greeting_pending) le message d'accueil "
            "par défaut du compte : il ne l'est qu'après cette confirmation.",
            {200: reply(ref("Message"), "Le message, qui n'attend plus.")},
            params=(REF,),
        )
    },
    "/messages/{ref}/dismiss-greeting": {
        "post": op(
            "dismissGreeting",
            "Messages",
            "Ignorer un message d'accueil enregistré par téléphone (greeting_pending) : il reste dans la "
            "bibliothèque, le message d'accueil par défaut ne change pas.",
            {200: reply(ref("Message"), "Le message, qui n'attend plus.")},
            params=(REF,),
        )
    },
    "/messages/{ref}/audio": {
        "get": op(
            "downloadAudio",
            "Messages",
            "Le son tel que l'entendent les appelés (WAV 8 kHz mono).",
            {
                200: {
                    "description": "Le fichier WAV.",
                    "content": {"audio/wav": {"schema": BINARY}},
                }
            },
            params=(REF,),
        )
    },
    "/messages/{ref}/original": {
        "get": op(
            "downloadOriginal",
            "Messages",
            "Le fichier tel qu'il a été déposé ou enregistré.",
            {
                200: {
                    "description": "Le fichier d'origine.",
                    "content": {
                        "audio/mpeg": {"schema": BINARY},
                        "audio/wav": {"schema": BINARY},
                        "application/octet-stream": {"schema": BINARY},
                    },
                }
            },
            params=(REF,),
        )
    },
    "/recipients/check": {
        "post": op(
            "checkRecipients",
            "Envois",
            "Le rapport à montrer avant de confirmer : numéros acceptés, refusés (avec la raison), doublons, "
            "crédits qui seront réservés. Rien n'est créé.",
            {200: reply(ref("RecipientsReport"), "Le rapport.")},
            body=ref("Targets"),
            errors=(404,),
        )
    },
    "/sends": {
        "get": op(
            "listSends",
            "Envois",
            "Les envois, du plus récent au plus ancien (pages : next_before).",
            {200: reply(ref("SendPage"), "Une page d'envois.")},
            params=(
                LIMIT(integer(1, 100), "Envois par page (20 par défaut)."),
                query_param("before", DATETIME, "La page qui suit : next_before."),
            ),
        ),
        "post": op(
            "createSend",
            "Envois",
            "Créer un envoi vers des numéros, des contacts ou des groupes, avec toutes les options du "
            "manuel. Une option absente prend la valeur par défaut du compte ; null la désactive. "
            "L'objet de l'envoi (purpose : information ou commercial) est obligatoire.",
            {
                201: reply(ref("SendDetail"), "L'envoi créé ; un crédit par numéro est réservé."),
                200: reply(ref("SendDetail"), "Déjà créé par une requête de même Idempotency-Key."),
            },
            params=(IDEMPOTENCY_KEY,),
            body=ref("SendCreate"),
            errors=(402, 404),
        ),
    },
    "/sends/{send_id}": {
        "get": op(
            "getSend",
            "Envois",
            "Un envoi et sa progression : résultats par issue, appels en cours, crédits, fin estimée.",
            {200: reply(ref("SendDetail"), "L'envoi.")},
            params=(SEND_ID,),
        )
    },
    "/sends/{send_id}/recipients": {
        "get": op(
            "listRecipients",
            "Envois",
            "Le résultat de chaque numéro et ses appels (pages : next_after).",
            {200: reply(ref("RecipientPage"), "Une page de destinataires.")},
            params=(
                SEND_ID,
                LIMIT(integer(1, 1000), "Destinataires par page (100 par défaut)."),
                query_param("after", integer(0, INT64_MAX), "La page qui suit : next_after."),
            ),
        )
    },
    **{
        f"/sends/{{send_id}}/{action}": {
            "post": op(
                f"{action}Send",
                "Envois",
                summary,
                {200: reply(ref("SendDetail"), "L'envoi.")},
                params=(SEND_ID,),
                errors=(409,),
            )
        }
        for action, summary in (
            ("pause", "Mettre en pause (les appels en cours se terminent)."),
            ("resume", "Reprendre un envoi en pause."),
            ("cancel", "Annuler (programmé, en cours ou en pause) ; les crédits non utilisés sont rendus."),
        )
    },
}
