"""The OpenAPI document's building blocks: error responses, parameters, and `op`, which lists every status
an operation can answer from what it takes (a body, a path parameter, a token...).

The paths themselves are in engine/web/openapi_{account,sends,contacts,webhooks}.py; engine/web/openapi.py
assembles the document.
"""

from __future__ import annotations

import functools
from typing import Any, Final

from engine.domain.sends import IDEMPOTENCY_KEY_MAX_LENGTH as KEY_MAX_LENGTH
from engine.web.api_common import INT32_MAX, INT64_MAX
from engine.web.openapi_schemas import EXAMPLES, INTEGER, STRING, UUID_, Schema, integer, ref, text

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


def error_response(status: int) -> dict[str, Any]:
    description, headers = ERRORS[status]
    content: dict[str, Any] = {"application/json": {"schema": ref("Error")}}
    if status == 400:
        # A request line over 72 KiB or a header over 8 KiB is refused by the HTTP server, in plain text.
        content["text/plain"] = {"schema": STRING}
    out: dict[str, Any] = {"description": description, "content": content}
    if headers:
        out["headers"] = headers
    return out


def reply(schema: Schema, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# --- parameters -----------------------------------------------------------------------------------------


def path_param(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def query_param(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


REF = path_param("ref", integer(1, INT32_MAX), "Référence du message (1, 2, 3…).")
SEND_ID = path_param("send_id", UUID_, "Identifiant de l'envoi.")
CONTACT_ID = path_param("contact_id", integer(1, INT64_MAX), "Identifiant du contact.")
GROUP_ID = path_param("group_id", integer(1, INT64_MAX), "Identifiant du groupe.")
TOKEN_ID = path_param("token_id", integer(1, INT64_MAX), "Identifiant du jeton.")
EVENT_ID = path_param("event_id", UUID_, "Identifiant de l'événement.")
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
            **{str(status): error_response(status) for status in sorted(statuses)},
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
LIMIT = functools.partial(query_param, "limit")
