"""Numbers an automated calling system may present (caller ID), vendored from ARCEP's numbering plan.

Source: ARCEP, décision n° 2022-1583 du 1er septembre 2022 modifiant la décision n° 2018-0881 établissant
le plan national de numérotation et ses règles de gestion (JORF; Légifrance JORFARTI000046830295), in force
since 1 January 2023; the Conseil d'État upheld its reach (CE, 6 June 2024, Syntec Conseil; ARCEP's
notice of 13 June 2024). The overseas blocks per department are as ARCEP announced them
(Guadeloupe/Saint-Martin/Saint-Barthélemy 09475, Guyane 09476, Martinique 09477, La Réunion and Mayotte
09478–09479). Special numbers and short numbers as issue 18 states the rule: 08 numbers other than 089
(premium rate), and the 30PQ/31PQ short numbers. Mobile numbers (06, 07) are reserved to interpersonal
communications and may never be presented by an automated system.
"""

from typing import Final

# "Numéros polyvalents verrouillés" for automated systems, metropolitan France: ten-digit numbers
# starting with these four digits.
METROPOLITAN_BLOCKS: Final = (
    "0162", "0163", "0270", "0271", "0377", "0378", "0424", "0425", "0568", "0569", "0948", "0949",
)  # fmt: skip

# The same, overseas: ten-digit numbers starting with these five digits.
OVERSEAS_BLOCKS: Final[dict[str, str]] = {
    "09475": "Guadeloupe, Saint-Martin, Saint-Barthélemy",
    "09476": "Guyane",
    "09477": "Martinique",
    "09478": "La Réunion, Mayotte",
    "09479": "La Réunion, Mayotte",
}

# Special numbers: ten digits starting 08, except the premium-rate 089.
SPECIAL_PREFIX: Final = "08"
SPECIAL_EXCLUDED: Final = ("089",)

# Short numbers of the form 3BPQ with B = 0 or 1.
SHORT_PREFIXES: Final = ("30", "31")

# Mobile numbers (ten digits): never presented by an automated system.
MOBILE_PREFIXES: Final = ("06", "07")
