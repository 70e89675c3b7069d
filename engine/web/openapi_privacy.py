"""The OpenAPI paths of personal data (RGPD): the account's archive, one number found, exported, erased
(assembled in engine/web/openapi.py)."""

from __future__ import annotations

from typing import Any, Final

from engine.web.openapi_ops import op, path_param, reply
from engine.web.openapi_schemas import BINARY, INTEGER, STRING, Schema, text

NUMBER = path_param("number", text(32, minLength=1), "Le numéro (+33612345678 ou 0612345678).")
_ARCHIVE: Final = {
    200: {
        "description": "Une archive ZIP : chaque table en CSV et en JSON, manifest.json (nombre de lignes).",
        "content": {"application/zip": {"schema": BINARY}},
    }
}
_COUNTS: Final[Schema] = {"type": "object", "additionalProperties": INTEGER}
PATHS: Final[dict[str, dict[str, dict[str, Any]]]] = {
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
                200: reply(
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
                200: reply(
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
