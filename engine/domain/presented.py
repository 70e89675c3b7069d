"""Whether a number may be presented (caller ID) on an automated call — every vocalcast call is one —
under ARCEP's numbering plan (decision 2022-1583; the ranges are in engine/domain/data/presented_ranges.py).

Usable: the multi-purpose blocks reserved to automated systems (0162, 0163, …, 0949; overseas
09475–09479), special numbers in 08 other than 089, and the 30PQ/31PQ short numbers. Refused with a reason:
mobiles, 089, every other French number (geographic, other 09), foreign numbers, and what is not a number.
That the number is the customer's, and that a trunk's carrier accepts it, are checked elsewhere.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final, Literal

from engine.domain.data.presented_ranges import (
    METROPOLITAN_BLOCKS,
    MOBILE_PREFIXES,
    OVERSEAS_BLOCKS,
    SHORT_PREFIXES,
    SPECIAL_EXCLUDED,
    SPECIAL_PREFIX,
)

Kind = Literal["automated_block", "special", "short"]
RefusalCode = Literal["invalid", "foreign", "mobile", "premium", "not_automated"]


@dataclass(frozen=True, slots=True)
class Usable:
    """A number an automated call may present: in national form (0…, or the short number) and its kind."""

    national: str
    kind: Kind

    @property
    def e164(self) -> str | None:
        """+33… for a ten-digit number; None for a short number (not reachable from abroad)."""
        return "+33" + self.national[1:] if len(self.national) == 10 else None


@dataclass(frozen=True, slots=True)
class Unusable:
    """Why a number may not be presented: a stable code and the customer's French message."""

    code: RefusalCode

    @property
    def message_fr(self) -> str:
        return MESSAGES_FR[self.code]


MESSAGES_FR: Final[dict[RefusalCode, str]] = {
    "invalid": "Ce numéro émetteur n'est pas un numéro valide.",
    "foreign": "Le numéro émetteur doit être un numéro français.",
    "mobile": (
        "Un numéro mobile (06, 07) ne peut pas être présenté par un système d'appels automatisés "
        "(décision Arcep n° 2022-1583)."
    ),
    "premium": "Un numéro surtaxé en 089 ne peut pas être présenté par un système d'appels automatisés.",
    "not_automated": (
        "Les appels automatisés doivent présenter un numéro des tranches réservées par l'Arcep (01 62, "
        "01 63, 02 70, 02 71, 03 77, 03 78, 04 24, 04 25, 05 68, 05 69, 09 48, 09 49 ; outre-mer 09 475 "
        "à 09 479), un numéro spécial en 08 (hors 089) ou un numéro court 30 ou 31 (décision n° 2022-1583)."
    ),
}

_SEPARATORS: Final = re.compile(r"[\s./()\-\u2010-\u2015\u2212]")
_DIGITS: Final = re.compile(r"\+?\d+")
_OVERSEAS_COUNTRY_CODES: Final = frozenset({"262", "590", "594", "596"})


def _national(raw: str) -> str | Unusable:
    """'+33 1 62 …', '0033162…', '33162…', '01.62…' → '0162…'; short numbers stay as they are."""
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw).strip())
    if not _DIGITS.fullmatch(text) or not text.isascii():
        return Unusable("invalid")
    if text.startswith("00"):
        text = "+" + text[2:]
    if text.startswith("+"):
        if text[1:4] in _OVERSEAS_COUNTRY_CODES:
            # 08 and 09 numbers exist under +33 only.
            return (
                Unusable("invalid") if text[4:5] in {"0", "8", "9"} else "0" + text[4:]
            )  # +262 262…, +590 690…: the overseas departments' own country codes
        if text.startswith("+508"):
            return Unusable("not_automated")  # Saint-Pierre-et-Miquelon: a six-digit plan of its own
        if not text.startswith("+33"):
            return Unusable("foreign")
        text = text[3:]
        if len(text) == 10 and text.startswith("0"):
            text = text[1:]  # "+33 0162…": the trunk 0 kept after the country code
        return "0" + text
    if len(text) == 11 and text.startswith("33"):
        return "0" + text[2:]  # +33… once a spreadsheet dropped the "+"
    return text


def check_presented(raw: str) -> Usable | Unusable:
    """May `raw` be presented on an automated call? (ARCEP 2022-1583)"""
    national = _national(raw)
    if isinstance(national, Unusable):
        return national
    if len(national) == 4 and national[0] == "3":
        return Usable(national, "short") if national.startswith(SHORT_PREFIXES) else Unusable("not_automated")
    if len(national) != 10 or national[0] != "0" or national[1] == "0":
        return Unusable("invalid")
    if national.startswith(MOBILE_PREFIXES):
        return Unusable("mobile")
    if national.startswith(SPECIAL_PREFIX):
        return Unusable("premium") if national.startswith(SPECIAL_EXCLUDED) else Usable(national, "special")
    if national.startswith(METROPOLITAN_BLOCKS) or national[:5] in OVERSEAS_BLOCKS:
        return Usable(national, "automated_block")
    return Unusable("not_automated")
