"""The OpenAPI paths of the account, its tokens and this document (assembled in engine/web/openapi.py)."""

from __future__ import annotations

from typing import Any, Final

from engine.web.api_common import INT64_MAX
from engine.web.openapi_ops import LIMIT, NO_CONTENT, TOKEN_ID, op, query_param, reply
from engine.web.openapi_schemas import integer, ref

PATHS: Final[dict[str, dict[str, dict[str, Any]]]] = {
    "/openapi.json": {
        "get": op(
            "getOpenApi",
            "Documentation",
            "Ce document (OpenAPI 3.1).",
            {200: reply({"type": "object"}, "Le document OpenAPI.")},
            secured=False,
        )
    },
    "/account": {
        "get": op(
            "getAccount",
            "Compte",
            "Le compte : crédits disponibles et réservés, options.",
            {200: reply(ref("Account"), "Le compte.")},
        )
    },
    "/account/ledger": {
        "get": op(
            "getLedger",
            "Compte",
            "Les mouvements de crédits, du plus récent au plus ancien (pages : next_before_id).",
            {200: reply(ref("LedgerPage"), "Une page de mouvements.")},
            params=(
                LIMIT(integer(1, 200), "Mouvements par page (50 par défaut)."),
                query_param("before_id", integer(1, INT64_MAX), "La page qui suit : next_before_id."),
            ),
        )
    },
    "/account/defaults": {
        "get": op(
            "getDefaults",
            "Compte",
            "Les options d'envoi par défaut (http.php, e-mail, et les envois API qui en omettent une), "
            "l'objet des envois par http.php et e-mail et le nom de l'entreprise annoncé par les appels "
            "commerciaux.",
            {200: reply(ref("SendDefaults"), "Les options par défaut.")},
        ),
        "put": op(
            "putDefaults",
            "Compte",
            "Remplacer les options d'envoi par défaut (tous les champs ; purpose et company_name "
            "seulement s'ils sont donnés). Un objet commercial exige le nom de l'entreprise, qui ne peut "
            "être retiré tant que l'objet est commercial ou qu'un envoi commercial n'est pas terminé "
            "(400 company_required) ; rien n'est changé quand un champ est refusé.",
            {200: reply(ref("SendDefaults"), "Les nouvelles options.")},
            body=ref("SendDefaultsInput"),
        ),
    },
    "/account/code": {
        "post": op(
            "resetCode",
            "Compte",
            "Un nouveau code personnel (ligne d'enregistrement) ; l'ancien ne marche plus. Affiché une fois.",
            {200: reply(ref("PersonalCode"), "Le nouveau code.")},
        )
    },
    "/account/senders": {
        "get": op(
            "listSenders",
            "Compte",
            "Les numéros émetteurs déclarés (seuls les vérifiés sont présentés).",
            {200: reply(ref("SenderList"), "Les numéros émetteurs.")},
        ),
        "post": op(
            "declareSender",
            "Compte",
            "Déclarer un numéro émetteur (en attente jusqu'à sa vérification par nos services).",
            {
                200: reply(ref("Sender"), "Déjà déclaré."),
                201: reply(ref("Sender"), "Déclaré."),
            },
            body=ref("SenderInput"),
        ),
    },
    "/tokens": {
        "get": op(
            "listTokens",
            "Jetons",
            "Les jetons d'API du compte (jamais les jetons eux-mêmes).",
            {200: reply(ref("TokenList"), "Les jetons.")},
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
}
