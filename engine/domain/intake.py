"""The order in which http.php and e-mail requests are refused: when a request fails several checks, the
code answered is the first of CODE_PRECEDENCE that applies (issue 18).

    87, 88, 89, 90   a field is empty (email, pass, numero, ref), in the manual's order
    82               login refused
    91               unknown message reference
    86 / 84          numero: an empty group (86) or a bad number (84) — one field, one code; a bad
                     transfer number is 84 too and comes after an empty group
    85               bad deferred date
    94               a sender (emetteur) given but not usable for the account
    95               voicemail drop not allowed
    96               too many numbers (ours, where engine/services/intake.py answers it today)
    98               commercial send that does not identify its caller: no usable presented number, or
                     no company name on the account to announce (L221-16, L221-17)
    99               commercial send to numbers without recorded consent, or stop-listed
    83               not enough credits

97 (service unavailable) is not a refusal of the request and is not ranked. The http.php handler
(engine/services/intake.py) checks in this order; 98 and 99 are decided by engine/services/sends.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from engine.domain.commercial import Purpose

CODE_PRECEDENCE: Final = (
    "87", "88", "89", "90", "82", "91", "86", "84", "85", "94", "95", "96", "98", "99", "83",
)  # fmt: skip
_RANK: Final = {code: rank for rank, code in enumerate(CODE_PRECEDENCE)}

# Our codes' messages (the manual's 80–91 and our 92–97 are in engine/services/intake.py).
COMMERCIAL_CODES_FR: Final = {
    "98": (
        "Un envoi commercial doit identifier l'appelant : un numéro émetteur vérifié sur votre compte, "
        "autorisé pour les appels automatisés, et le nom de votre entreprise enregistré sur votre compte"
    ),
    "99": (
        "Un envoi commercial ne peut appeler que des contacts dont le consentement est enregistré "
        "et qui ne sont pas sur une liste d'opposition"
    ),
}


# The two ways a commercial send fails 98, told apart where the interface can say more than a code
# (the pages and the API).
NO_SENDER_FR: Final = (
    "Un envoi commercial doit présenter un numéro émetteur vérifié sur votre compte, "
    "autorisé pour les appels automatisés"
)
NO_COMPANY_FR: Final = (
    "Un envoi commercial doit annoncer qui appelle (article L221-16 du Code de la consommation) : "
    "le nom de votre entreprise n'est pas enregistré sur votre compte. Demandez à votre opérateur de "
    "l'enregistrer, ou choisissez l'objet « information » si l'envoi n'est pas commercial."
)


def first_refusal(failed: Iterable[str]) -> str | None:
    """The code to answer for a request that failed these checks (None: it failed none)."""
    codes = set(failed)
    unknown = codes - _RANK.keys()
    if unknown:
        raise ValueError(f"codes without a rank: {sorted(unknown)}")
    return min(codes, key=_RANK.__getitem__, default=None)


def commercial_refusals(
    purpose: Purpose,
    *,
    presents_usable_number: bool,
    every_recipient_callable: bool,
    names_company: bool = True,
) -> frozenset[str]:
    """The commercial-only codes a request fails: 98 (the call would not identify its caller: no usable
    presented number — none, hidden, or not allowed by ARCEP's plan — or no company name to announce) and
    99 (a recipient without consent or on a stop list). Information sends fail neither."""
    if purpose != "commercial":
        return frozenset()
    failed = set()
    if not presents_usable_number or not names_company:
        failed.add("98")
    if not every_recipient_callable:
        failed.add("99")
    return frozenset(failed)
