"""The OpenAPI paths of contacts and groups (assembled in engine/web/openapi.py)."""

from __future__ import annotations

from typing import Any, Final

from engine.domain.contacts import MAX_PAGE_SIZE, SEARCH_MAX_LENGTH
from engine.web.api_common import INT64_MAX
from engine.web.api_contacts import CURSOR_MAX_LENGTH
from engine.web.openapi_ops import CONTACT_ID, GROUP_ID, LIMIT, NO_CONTENT, op, query_param, reply
from engine.web.openapi_schemas import integer, ref, text

PATHS: Final[dict[str, dict[str, dict[str, Any]]]] = {
    "/contacts": {
        "get": op(
            "listContacts",
            "Contacts",
            "Les contacts, par pages (next_cursor) ; recherche sur nom, prénom, société ou numéro.",
            {200: reply(ref("ContactPage"), "Une page de contacts.")},
            params=(
                query_param("search", text(SEARCH_MAX_LENGTH), "Début d'un nom, ou d'un numéro."),
                query_param("group_id", integer(1, INT64_MAX), "Seulement les membres de ce groupe."),
                query_param("order", {"type": "string", "enum": ["name", "societe", "number"]}, "Tri."),
                query_param(
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
            {201: reply(ref("Contact"), "Le contact créé.")},
            body=ref("ContactInput"),
            errors=(404, 409),
        ),
    },
    "/contacts/import": {
        "post": op(
            "importContacts",
            "Contacts",
            "Importer un CSV Excel (Société;Nom;Prénom;Téléphone;Groupe) : rapport ligne par ligne.",
            {200: reply(ref("ImportReport"), "Le rapport d'import.")},
            multipart=ref("CsvUpload"),
            errors=(409, 422),
        )
    },
    "/contacts/{contact_id}": {
        "get": op(
            "getContact",
            "Contacts",
            "Un contact.",
            {200: reply(ref("Contact"), "Le contact.")},
            params=(CONTACT_ID,),
        ),
        "patch": op(
            "updateContact",
            "Contacts",
            "Modifier les champs donnés ; group_ids remplace les groupes du contact.",
            {200: reply(ref("Contact"), "Le contact modifié.")},
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
            {200: reply(ref("Consent"), "Le consentement enregistré (valid : utilisable aujourd'hui).")},
            params=(CONTACT_ID,),
        ),
        "put": op(
            "recordConsent",
            "Contacts",
            "Enregistrer le consentement : date (par défaut maintenant), source, preuve. Seuls les contacts "
            "dont le consentement est valide peuvent recevoir un envoi commercial.",
            {200: reply(ref("Consent"), "Le consentement enregistré.")},
            params=(CONTACT_ID,),
            body=ref("ConsentInput"),
        ),
        "delete": op(
            "withdrawConsent",
            "Contacts",
            "Le contact retire son consentement (conservé pour l'historique) : plus aucun envoi commercial.",
            {200: reply(ref("Consent"), "Le consentement retiré.")},
            params=(CONTACT_ID,),
        ),
    },
    "/groups": {
        "get": op(
            "listGroups",
            "Groupes",
            "Les groupes de contacts et leur nombre de membres.",
            {200: reply(ref("GroupList"), "Les groupes.")},
        ),
        "post": op(
            "createGroup",
            "Groupes",
            "Créer un groupe.",
            {201: reply(ref("Group"), "Le groupe créé.")},
            body=ref("GroupInput"),
            errors=(409,),
        ),
    },
    "/groups/{group_id}": {
        "get": op(
            "getGroup",
            "Groupes",
            "Un groupe.",
            {200: reply(ref("Group"), "Le groupe.")},
            params=(GROUP_ID,),
        ),
        "patch": op(
            "renameGroup",
            "Groupes",
            "Renommer un groupe.",
            {200: reply(ref("Group"), "Le groupe renommé.")},
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
            {200: reply(ref("MembersAdded"), "Combien n'y étaient pas encore.")},
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
}
