"""The OpenAPI paths of personal data (RGPD): the account's archive, one number found, exported, erased
(assembled in engine/web/openapi.py)."""

from __future__ import annotations

from typing import Any, Final

from engine.web.openapi_ops import op, path_param, reply
from engine.web.openapi_schemas import BINARY, INTEGER, STRING, Schema, ref, text

NUMBER = path_param("number", text(32, minLength=1), "Le numéro (+33612345678 ou 0612345678).")
_ARCHIVE: Final = {
    200: {
        "description": "Une archive ZIP : chaque table en CSV et en JSON, manifest.json (nombre de lignes).",
        "content": {"application/zip": {"schema": BINARY}},
    }
}
_COUNTS: Final[Schema] = {"type": "object", "additionalProperties": INTEGER}
_STOP_LIST_IMPORT: Final[Schema] = {
    "type": "object",
    "required": ["read", "added", "refused"],
    "additionalProperties": False,
    "properties": {
        "read": INTEGER,
        "added": INTEGER,
        "refused": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["line", "input"],
                "additionalProperties": False,
                "properties": {"line": INTEGER, "input": STRING},
            },
        },
    },
}
PATHS: Final[dict[str, dict[str, dict[str, Any]]]] = {
    "/account/stoplist": {
        "post": op(
            "importStopList",
            "Données personnelles",
            "Ajouter à la liste d'opposition du compte les numéros d'un fichier (CSV : première colonne, "
            "ou un numéro par ligne ; en clair ou SHA-256 de la forme +33…) : aucun envoi du compte ne "
            "les appelle plus, quel que soit son objet. Rapport : lignes lues, numéros ajoutés, lignes "
            "refusées.",
            {200: reply(_STOP_LIST_IMPORT, "Le rapport d'import.")},
            multipart=ref("CsvUpload"),
            errors=(422,),
        )
    },
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
