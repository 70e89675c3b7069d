"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json: its paths and responses.

Written by hand (the routes live in engine/web/api_*.py; a test checks both list the same paths and
methods). Every status a route can answer is listed; there is no catch-all ``default`` response.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Final

from aiohttp import web

from engine import __version__
from engine.domain.contacts import MAX_PAGE_SIZE, SEARCH_MAX_LENGTH
from engine.domain.sends import IDEMPOTENCY_KEY_MAX_LENGTH as KEY_MAX_LENGTH
from engine.web.api_common import INT32_MAX, INT64_MAX, PREFIX
from engine.web.api_contacts import CURSOR_MAX_LENGTH
from engine.web.openapi_schemas import (
    BINARY,
    BOOLEAN,
    DATETIME,
    EXAMPLES,
    INTEGER,
    SCHEMAS,
    STRING,
    UUID_,
    Schema,
    integer,
    ref,
    text,
)

# --- responses ------------------------------------------------------------------------------------------

_RETRY_AFTER: Final = {
    "Retry-After": {
        "description": "Secondes à attendre avant de réessayer.",
        "schema": INTEGER,
        "required": True,
    }
}
ERRORS: Final[dict[int, tuple[str, dict[str, Any]]]] = {
    400: ("Saisie invalide (corps, paramètre ou valeur refusée ; « code » dit laquelle).", {}),
    401: (
        "Jeton absent, inconnu ou révoqué.",
        {"WWW-Authenticate": {"schema": STRING, "required": True}},
    ),
    402: ("Crédits insuffisants : le compte doit être crédité.", {}),
    403: ("Jeton valable, mais le compte n'accepte pas de requêtes depuis cette adresse.", {}),
    404: ("Introuvable (y compris un élément d'un autre compte).", {}),
    409: ("Conflit avec l'état actuel (envoi déjà terminé, doublon, message utilisé…).", {}),
    413: ("Requête ou fichier trop volumineux.", {}),
    415: ("Le fichier doit être envoyé en multipart/form-data.", {}),
    422: ("Fichier reçu mais refusé (format, durée, silence, CSV illisible…).", {}),
    429: ("Trop d'échecs d'identification depuis cette adresse.", _RETRY_AFTER),
    503: ("Base de données momentanément indisponible.", _RETRY_AFTER),
}
SECURED_ERRORS: Final = (401, 403, 429, 503)


def _error_response(status: int) -> dict[str, Any]:
    description, headers = ERRORS[status]
    content: dict[str, Any] = {"application/json": {"schema": ref("Error")}}
    if status == 400:
        # A request line over 72 KiB or a header over 8 KiB is refused by the HTTP server, in plain text.
        content["text/plain"] = {"schema": STRING}
    out: dict[str, Any] = {"description": description, "content": content}
    if headers:
        out["headers"] = headers
    return out


def _json(schema: Schema, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# --- parameters -----------------------------------------------------------------------------------------


def _path(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def _query(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


REF = _path("ref", integer(1, INT32_MAX), "Référence du message (1, 2, 3…).")
SEND_ID = _path("send_id", UUID_, "Identifiant de l'envoi.")
CONTACT_ID = _path("contact_id", integer(1, INT64_MAX), "Identifiant du contact.")
GROUP_ID = _path("group_id", integer(1, INT64_MAX), "Identifiant du groupe.")
TOKEN_ID = _path("token_id", integer(1, INT64_MAX), "Identifiant du jeton.")
EVENT_ID = _path("event_id", UUID_, "Identifiant de l'événement.")
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": text(KEY_MAX_LENGTH, minLength=1, pattern="^[\\x21-\\x7e]([\\x20-\\x7e]*[\\x21-\\x7e])?$"),
    "description": (
        "Clé choisie par le client (un UUID par exemple) : une requête répétée avec la même clé renvoie "
        "l'envoi créé la première fois (200) au lieu d'en créer un second."
    ),
}


# --- operations -----------------------------------------------------------------------------------------


def op(
    operation_id: str,
    tag: str,
    summary: str,
    ok: dict[int, dict[str, Any]],
    *,
    errors: tuple[int, ...] = (),
    params: tuple[dict[str, Any], ...] = (),
    body: Schema | None = None,
    multipart: Schema | None = None,
    secured: bool = True,
) -> dict[str, Any]:
    statuses = set(errors)
    if secured:
        statuses |= set(SECURED_ERRORS)
    if body is not None or multipart is not None:
        statuses |= {400, 413}
    if multipart is not None:
        statuses.add(415)
    if any(p["in"] == "query" or p["in"] == "header" for p in params):
        statuses.add(400)
    if any(p["in"] == "path" for p in params):
        statuses.add(404)
    out: dict[str, Any] = {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        "responses": {
            **{str(status): response for status, response in ok.items()},
            **{str(status): _error_response(status) for status in sorted(statuses)},
        },
    }
    if params:
        out["parameters"] = list(params)
    if body is not None:
        media: dict[str, Any] = {"schema": body}
        example = EXAMPLES.get(str(body.get("$ref", "")).rsplit("/", 1)[-1])
        if example is not None:
            media["example"] = example
        out["requestBody"] = {"required": True, "content": {"application/json": media}}
    if multipart is not None:
        out["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": multipart}}}
    if not secured:
        out["security"] = []
    return out


NO_CONTENT: Final = {204: {"description": "Fait."}}
LIMIT = functools.partial(_query, "limit")

PATHS: Final[dict[str, dict[str, dict[str, Any]]]] = {
    "/openapi.json": {
        "get": op(
            "getOpenApi",
            "Documentation",
            "Ce document (OpenAPI 3.1).",
            {200: _json({"type": "object"}, "Le document OpenAPI.")},
            secured=False,
        )
    },
    "/account": {
        "get": op(
            "getAccount",
            "Compte",
            "Le compte : crédits disponibles et réservés, options.",
            {200: _json(ref("Account"), "Le compte.")},
        )
    },
    "/account/ledger": {
        "get": op(
            "getLedger",
            "Compte",
            "Les mouvements de crédits, du plus récent au plus ancien (pages : next_before_id).",
            {200: _json(ref("LedgerPage"), "Une page de mouvements.")},
            params=(
                LIMIT(integer(1, 200), "Mouvements par page (50 par défaut)."),
                _query("before_id", integer(1, INT64_MAX), "La page qui suit : next_before_id."),
            ),
        )
    },
    "/account/defaults": {
        "get": op(
            "getDefaults",
            "Compte",
            "Les options d'envoi par défaut (http.php, e-mail, et les envois API qui en omettent une).",
            {200: _json(ref("SendDefaults"), "Les options par défaut.")},
        ),
        "put": op(
            "putDefaults",
            "Compte",
            "Remplacer les options d'envoi par défaut (tous les champs).",
            {200: _json(ref("SendDefaults"), "Les nouvelles options.")},
            body=ref("SendDefaultsInput"),
        ),
    },
    "/account/code": {
        "post": op(
            "resetCode",
            "Compte",
            "Un nouveau code personnel (ligne d'enregistrement) ; l'ancien ne marche plus. Affiché une fois.",
            {200: _json(ref("PersonalCode"), "Le nouveau code.")},
        )
    },
    "/account/senders": {
        "get": op(
            "listSenders",
            "Compte",
            "Les numéros émetteurs déclarés (seuls les vérifiés sont présentés).",
            {200: _json(ref("SenderList"), "Les numéros émetteurs.")},
        ),
        "post": op(
            "declareSender",
            "Compte",
            "Déclarer un numéro émetteur (en attente jusqu'à sa vérification par nos services).",
            {
                200: _json(ref("Sender"), "Déjà déclaré."),
                201: _json(ref("Sender"), "Déclaré."),
            },
            body=ref("SenderInput"),
        ),
    },
    "/tokens": {
        "get": op(
            "listTokens",
            "Jetons",
            "Les jetons d'API du compte (jamais les jetons eux-mêmes).",
            {200: _json(ref("TokenList"), "Les jetons.")},
        )
    },
    "/tokens/{token_id}": {
        "delete": op(
            "revokeToken",
            "Jetons",
            "Révoquer un jeton : il cesse de marcher aussitôt.",
            NO_CONTENT,
            params=(TOKEN_ID,),
        )
    },
    "/messages": {
        "get": op(
            "listMessages",
            "Messages",
            "La bibliothèque de messages.",
            {200: _json(ref("MessageList"), "Les messages.")},
            params=(_query("greetings", BOOLEAN, "Seulement les messages d'accueil."),),
        ),
        "post": op(
            "uploadMessage",
            "Messages",
            "Déposer un fichier WAV ou MP3 : il est converti avant la réponse et reçoit sa référence.",
            {201: _json(ref("Message"), "Le message créé.")},
            multipart=ref("MessageUpload"),
            errors=(422,),
        ),
    },
    "/messages/{ref}": {
        "get": op(
            "getMessage",
            "Messages",
            "Un message.",
            {200: _json(ref("Message"), "Le message.")},
            params=(REF,),
        ),
        "patch": op(
            "renameMessage",
            "Messages",
            "Renommer un message.",
            {200: _json(ref("Message"), "Le message renommé.")},
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
            {200: _json(ref("RecipientsReport"), "Le rapport.")},
            body=ref("Targets"),
            errors=(404,),
        )
    },
    "/sends": {
        "get": op(
            "listSends",
            "Envois",
            "Les envois, du plus récent au plus ancien (pages : next_before).",
            {200: _json(ref("SendPage"), "Une page d'envois.")},
            params=(
                LIMIT(integer(1, 100), "Envois par page (20 par défaut)."),
                _query("before", DATETIME, "La page qui suit : next_before."),
            ),
        ),
        "post": op(
            "createSend",
            "Envois",
            "Créer un envoi vers des numéros, des contacts ou des groupes, avec toutes les options du "
            "manuel. Une option absente prend la valeur par défaut du compte ; null la désactive.",
            {
                201: _json(ref("SendDetail"), "L'envoi créé ; un crédit par numéro est réservé."),
                200: _json(ref("SendDetail"), "Déjà créé par une requête de même Idempotency-Key."),
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
            {200: _json(ref("SendDetail"), "L'envoi.")},
            params=(SEND_ID,),
        )
    },
    "/sends/{send_id}/recipients": {
        "get": op(
            "listRecipients",
            "Envois",
            "Le résultat de chaque numéro et ses appels (pages : next_after).",
            {200: _json(ref("RecipientPage"), "Une page de destinataires.")},
            params=(
                SEND_ID,
                LIMIT(integer(1, 1000), "Destinataires par page (100 par défaut)."),
                _query("after", integer(0, INT64_MAX), "La page qui suit : next_after."),
            ),
        )
    },
    **{
        f"/sends/{{send_id}}/{action}": {
            "post": op(
                f"{action}Send",
                "Envois",
                summary,
                {200: _json(ref("SendDetail"), "L'envoi.")},
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
    "/contacts": {
        "get": op(
            "listContacts",
            "Contacts",
            "Les contacts, par pages (next_cursor) ; recherche sur nom, prénom, société ou numéro.",
            {200: _json(ref("ContactPage"), "Une page de contacts.")},
            params=(
                _query("search", text(SEARCH_MAX_LENGTH), "Début d'un nom, ou d'un numéro."),
                _query("group_id", integer(1, INT64_MAX), "Seulement les membres de ce groupe."),
                _query("order", {"type": "string", "enum": ["name", "societe", "number"]}, "Tri."),
                _query(
                    "after",
                    text(CURSOR_MAX_LENGTH, pattern="^[A-Za-z0-9_-]*$"),
                    "La page qui suit : next_cursor.",
                ),
                LIMIT(integer(1, MAX_PAGE_SIZE), "Contacts par page (50 par défaut)."),
            ),
            errors=(404,),
        ),
        "post": op(
            "createContact",
            "Contacts",
            "Ajouter un contact.",
            {201: _json(ref("Contact"), "Le contact créé.")},
            body=ref("ContactInput"),
            errors=(404, 409),
        ),
    },
    "/contacts/import": {
        "post": op(
            "importContacts",
            "Contacts",
            "Importer un CSV Excel (Société;Nom;Prénom;Téléphone;Groupe) : rapport ligne par ligne.",
            {200: _json(ref("ImportReport"), "Le rapport d'import.")},
            multipart=ref("CsvUpload"),
            errors=(409, 422),
        )
    },
    "/contacts/{contact_id}": {
        "get": op(
            "getContact",
            "Contacts",
            "Un contact.",
            {200: _json(ref("Contact"), "Le contact.")},
            params=(CONTACT_ID,),
        ),
        "patch": op(
            "updateContact",
            "Contacts",
            "Modifier les champs donnés ; group_ids remplace les groupes du contact.",
            {200: _json(ref("Contact"), "Le contact modifié.")},
            params=(CONTACT_ID,),
            body=ref("ContactUpdate"),
            errors=(409,),
        ),
        "delete": op(
            "deleteContact",
            "Contacts",
            "Supprimer un contact.",
            NO_CONTENT,
            params=(CONTACT_ID,),
        ),
    },
    "/contacts/{contact_id}/consent": {
        "get": op(
            "getConsent",
            "Contacts",
            "Le consentement du contact aux appels commerciaux (loi : L34-5 CPCE, L223-1 code de la "
            "consommation).",
            {200: _json(ref("Consent"), "Le consentement enregistré (valid : utilisable aujourd'hui).")},
            params=(CONTACT_ID,),
        ),
        "put": op(
            "recordConsent",
            "Contacts",
            "Enregistrer le consentement : date (par défaut maintenant), source, preuve. Seuls les contacts "
            "dont le consentement est valide peuvent recevoir un envoi commercial.",
            {200: _json(ref("Consent"), "Le consentement enregistré.")},
            params=(CONTACT_ID,),
            body=ref("ConsentInput"),
        ),
        "delete": op(
            "withdrawConsent",
            "Contacts",
            "Le contact retire son consentement (conservé pour l'historique) : plus aucun envoi commercial.",
            {200: _json(ref("Consent"), "Le consentement retiré.")},
            params=(CONTACT_ID,),
        ),
    },
    "/groups": {
        "get": op(
            "listGroups",
            "Groupes",
            "Les groupes de contacts et leur nombre de membres.",
            {200: _json(ref("GroupList"), "Les groupes.")},
        ),
        "post": op(
            "createGroup",
            "Groupes",
            "Créer un groupe.",
            {201: _json(ref("Group"), "Le groupe créé.")},
            body=ref("GroupInput"),
            errors=(409,),
        ),
    },
    "/groups/{group_id}": {
        "get": op(
            "getGroup",
            "Groupes",
            "Un groupe.",
            {200: _json(ref("Group"), "Le groupe.")},
            params=(GROUP_ID,),
        ),
        "patch": op(
            "renameGroup",
            "Groupes",
            "Renommer un groupe.",
            {200: _json(ref("Group"), "Le groupe renommé.")},
            params=(GROUP_ID,),
            body=ref("GroupInput"),
            errors=(409,),
        ),
        "delete": op(
            "deleteGroup",
            "Groupes",
            "Supprimer un groupe (ses contacts restent).",
            NO_CONTENT,
            params=(GROUP_ID,),
        ),
    },
    "/groups/{group_id}/members": {
        "post": op(
            "addMembers",
            "Groupes",
            "Mettre des contacts dans le groupe.",
            {200: _json(ref("MembersAdded"), "Combien n'y étaient pas encore.")},
            params=(GROUP_ID,),
            body=ref("MembersInput"),
        )
    },
    "/groups/{group_id}/members/{contact_id}": {
        "delete": op(
            "removeMember",
            "Groupes",
            "Retirer un contact du groupe (il reste un contact).",
            NO_CONTENT,
            params=(GROUP_ID, CONTACT_ID),
        )
    },
    "/account/notifications": {
        "get": op(
            "getNotifications",
            "Compte",
            "Les notifications par e-mail du compte (un e-mail à la fin de chaque envoi).",
            {200: _json(ref("Notifications"), "Les notifications.")},
        ),
        "put": op(
            "putNotifications",
            "Compte",
            "Recevoir ou non un e-mail (résumé, lien vers le rapport) à la fin de chaque envoi.",
            {200: _json(ref("Notifications"), "Les notifications.")},
            body=ref("Notifications"),
        ),
    },
    "/webhook": {
        "get": op(
            "getWebhook",
            "Webhooks",
            "L'adresse où nous envoyons les événements (POST JSON signé), et lesquels.",
            {200: _json(ref("WebhookSettings"), "Le webhook du compte.")},
        ),
        "put": op(
            "putWebhook",
            "Webhooks",
            "Enregistrer l'adresse (null : aucune) et les événements voulus ; réactive une adresse "
            "désactivée. La première fois, la réponse contient le secret de signature (affiché une fois).",
            {200: _json(ref("WebhookSaved"), "Le webhook enregistré.")},
            body=ref("WebhookInput"),
        ),
    },
    "/webhook/secret": {
        "post": op(
            "rotateWebhookSecret",
            "Webhooks",
            "Un nouveau secret de signature (affiché une fois) ; l'ancien cesse aussitôt de signer.",
            {200: _json(ref("WebhookSecret"), "Le nouveau secret.")},
        )
    },
    "/webhook/test": {
        "post": op(
            "testWebhook",
            "Webhooks",
            "Envoyer un événement de test (webhook.test) à l'adresse du compte.",
            {202: _json(ref("WebhookDelivery"), "L'événement, en file d'envoi.")},
            errors=(409,),
        )
    },
    "/webhook/deliveries": {
        "get": op(
            "listWebhookDeliveries",
            "Webhooks",
            "Le journal des envois d'événements, du plus récent au plus ancien (pages : next_before).",
            {200: _json(ref("WebhookDeliveryPage"), "Une page du journal.")},
            params=(
                LIMIT(integer(1, 200), "Événements par page (50 par défaut)."),
                _query("before", DATETIME, "La page qui suit : next_before."),
            ),
        )
    },
    "/webhook/deliveries/{event_id}": {
        "get": op(
            "getWebhookDelivery",
            "Webhooks",
            "Un événement et chacun de ses essais (statut HTTP, erreur, durée).",
            {200: _json(ref("WebhookDeliveryDetail"), "L'événement.")},
            params=(EVENT_ID,),
        )
    },
    "/webhook/deliveries/{event_id}/replay": {
        "post": op(
            "replayWebhookDelivery",
            "Webhooks",
            "Renvoyer un événement (même identifiant, même contenu).",
            {202: _json(ref("WebhookDelivery"), "L'événement, de nouveau en file d'envoi.")},
            params=(EVENT_ID,),
        )
    },
    "/sends/{send_id}/webhook": {
        "get": op(
            "getSendWebhook",
            "Webhooks",
            "Le webhook propre à cet envoi (null : celui du compte).",
            {200: _json(ref("SendWebhook"), "Le webhook de l'envoi.")},
            params=(SEND_ID,),
        ),
        "put": op(
            "putSendWebhook",
            "Webhooks",
            "Un webhook propre à cet envoi, à la place de celui du compte (events [] : aucun).",
            {200: _json(ref("SendWebhook"), "Le webhook de l'envoi.")},
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


# --- personal data (RGPD) -------------------------------------------------------------------------------

NUMBER = _path("number", text(32, minLength=1), "Le numéro (+33612345678 ou 0612345678).")
_ARCHIVE: Final = {
    200: {
        "description": "Une archive ZIP : chaque table en CSV et en JSON, manifest.json (nombre de lignes).",
        "content": {"application/zip": {"schema": BINARY}},
    }
}
_COUNTS: Final[Schema] = {"type": "object", "additionalProperties": INTEGER}
PATHS.update(
    {
        "/account/export": {
            "get": op(
                "exportAccount",
                "Données personnelles",
                "Toutes les données du compte (profil, contacts, groupes, envois, appels, crédits, "
                "messages et leurs sons) en une archive.",
                _ARCHIVE,
            )
        },
        "/privacy/numbers/{number}": {
            "get": op(
                "findNumber",
                "Données personnelles",
                "Ce que le compte contient pour un numéro : nombre de lignes par sorte de données.",
                {
                    200: _json(
                        {
                            "type": "object",
                            "required": ["number", "counts"],
                            "properties": {"number": STRING, "counts": _COUNTS},
                        },
                        "Les nombres.",
                    )
                },
                params=(NUMBER,),
                errors=(400,),
            ),
            "delete": op(
                "eraseNumber",
                "Données personnelles",
                "Effacer un numéro du compte (contact supprimé, numéro remplacé par une empreinte chiffrée "
                "dans l'historique) ; un numéro de la liste d'opposition y reste, sous forme chiffrée.",
                {
                    200: _json(
                        {
                            "type": "object",
                            "required": ["number", "erased"],
                            "properties": {"number": STRING, "erased": _COUNTS},
                        },
                        "Les lignes effacées.",
                    )
                },
                params=(NUMBER,),
                errors=(400,),
            ),
        },
        "/privacy/numbers/{number}/export": {
            "get": op(
                "exportNumber",
                "Données personnelles",
                "Tout ce que le compte contient pour un numéro, en une archive.",
                _ARCHIVE,
                params=(NUMBER,),
                errors=(400,),
            )
        },
    }
)


@functools.cache
def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "vocalcast",
            "version": __version__,
            "description": (
                "API REST de diffusion de messages vocaux. Identification : en-tête "
                "« Authorization: Bearer <jeton> » (jeton créé par nos services). Erreurs : "
                '{"code": "...", "message": "..."} avec le statut HTTP qui convient.'
            ),
        },
        "servers": [{"url": PREFIX}],
        "security": [{"bearer": []}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


@functools.cache
def _document_bytes() -> bytes:
    return json.dumps(document(), ensure_ascii=False, indent=1).encode()


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(
        body=_document_bytes(),
        content_type="application/json",
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


def add_routes(api: web.Application) -> None:
    api.router.add_get("/openapi.json", get_openapi, allow_head=False)
