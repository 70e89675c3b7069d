"""French phone-number normalisation: cleaning, refusals with stable codes, E.164 output, trunk formats.

``normalize`` takes a fast path for the common French shapes (ranges compiled once from phonenumbers'
own metadata, engine/domain/numberranges.py) and falls back to ``normalize_reference``, the full
phonenumbers path; tests prove both agree.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Final, Literal

import phonenumbers
from phonenumbers import PhoneNumberType, ValidationResult, shortnumberinfo

from engine.domain.numberranges import country_ranges, region_country_code

NumberType = Literal["mobile", "fixed", "voip", "overseas", "international"]
TrunkStyle = Literal["e164", "national", "international00", "digits"]


@dataclass(frozen=True, slots=True)
class Number:
    """An accepted number: E.164, our type, whether it is a mobile (voicemail drop), its region."""

    e164: str
    type: NumberType
    is_mobile: bool
    region: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused input: a stable code and the French reason shown to the customer."""

    code: str
    message_fr: str


REFUSAL_MESSAGES_FR: Final[dict[str, str]] = {
    "letters": "Le numéro contient des lettres.",
    "too_short": "Numéro trop court.",
    "too_long": "Numéro trop long.",
    "invalid": "Numéro invalide : il ne correspond à aucune plage de numéros attribuée.",
    "premium": "Numéro surtaxé (08 9x) : les appels vers ces numéros ne sont pas autorisés.",
    "shared_cost": "Numéro à coût partagé (08 1x, 08 2x) : les appels vers ces numéros sont interdits.",
    "special": "Numéro spécial (numéro vert 08 0x, numéro court, renseignements 118) : non autorisé.",
    "emergency": "Numéro d'urgence : les appels automatiques vers ce numéro sont interdits.",
    "international": "Numéro étranger : les appels vers l'international ne sont pas activés sur ce compte.",
}
# One shared instance per code: refusals are values, and building them costs time on 100k-row imports.
_REFUSED: Final = {code: Refusal(code, message) for code, message in REFUSAL_MESSAGES_FR.items()}

# Country codes of the French overseas departments and Saint-Pierre-et-Miquelon: French numbers, allowed
# without the international option, typed "overseas".
OVERSEAS_COUNTRY_CODES: Final = frozenset({262, 508, 590, 594, 596})

# National significant number prefix → region, for overseas numbers dialled nationally (0262…). ARCEP
# gives these blocks of the ten-digit plan to the overseas departments; phonenumbers only validates them
# under the department's own region (under FR they are invalid, or, for 0263 and 0269, wrongly valid as
# metropolitan fixed lines), so the region is picked from this table before parsing.
# 0508 (Saint-Pierre-et-Miquelon) is followed by a six-digit number: 0508 41 23 45 → +508 412345.
# Checked with phonenumbers 9.0.43: every prefix below has valid ranges, but not every block in it is
# allocated (0639 12…, 0691 12…, 0596 12… are invalid and are refused as `invalid`, which is right).
_OVERSEAS_PREFIXES: Final[dict[str, str]] = {
    "262": "RE",
    "263": "RE",
    "692": "RE",
    "693": "RE",
    "269": "YT",
    "639": "YT",
    "590": "GP",
    "690": "GP",
    "691": "GP",
    "594": "GF",
    "694": "GF",
    "596": "MQ",
    "696": "MQ",
    "697": "MQ",
    "508": "PM",
    # Not in the issue's list; taken from phonenumbers' metadata, which places these blocks overseas and
    # leaves them invalid (07 09) or wrongly metropolitan (0268) under FR: 0268 8x fixed lines in
    # Réunion, 0268 9x in Mayotte, and the 07 09 overseas mobile blocks.
    "2688": "RE",
    "2689": "YT",
    "7090": "GP",
    "7091": "MQ",
    "7092": "RE",
    **{f"7093{d}": "GF" for d in "01234"},
    **{f"7093{d}": "YT" for d in "56789"},
}
_OVERSEAS_HEADS: Final = frozenset(prefix[:3] for prefix in _OVERSEAS_PREFIXES)

# Emergency short numbers named by the issue; shortnumberinfo only knows 15, 17, 18 and 112 as emergency.
EMERGENCY_NUMBERS: Final = frozenset({"15", "17", "18", "112", "114", "115", "119", "191", "196", "197"})

_ACCEPTED_TYPES: Final = frozenset(
    {
        PhoneNumberType.FIXED_LINE,
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
        PhoneNumberType.VOIP,
    }
)
_FRENCH_TYPES: Final[dict[int, NumberType]] = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.FIXED_LINE: "fixed",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed",
}


def normalize(raw: str, *, allow_international: bool = False) -> Number | Refusal:
    """Normalise one typed or pasted number to E.164, or say why it is refused."""
    fast = _normalize_fast(raw, allow_international)
    if fast is not None:
        return fast
    return normalize_reference(raw, allow_international=allow_international)


def normalize_reference(raw: str, *, allow_international: bool = False) -> Number | Refusal:
    """The full phonenumbers path: slow (~30 µs), handles every shape; the fast path must agree with it."""
    cleaned = _clean(raw)
    if isinstance(cleaned, Refusal):
        return cleaned
    if cleaned.startswith("+"):
        return _international_reference(cleaned, allow_international)
    digits, length = cleaned, len(cleaned)
    if digits[0] == "0":
        if length != 10:
            return _REFUSED["too_short" if length < 10 else "too_long"]
        return _french_reference(digits[1:], allow_international)
    if length <= 6:
        return _short_number(digits)
    if length == 9:
        return _french_reference(digits, allow_international)
    if digits.startswith("33") and length >= 10:
        # +33… once Excel has dropped the "+" (it stores the number as an integer).
        return _international_reference("+" + digits, allow_international)
    if length == 12 and int(digits[:3]) in OVERSEAS_COUNTRY_CODES and digits[:3] != "508":
        return _international_reference("+" + digits, allow_international)
    return _REFUSED["too_short" if length < 9 else "too_long"]


def format_for_trunk(e164: str, style: TrunkStyle) -> str:
    """Write an E.164 number the way a trunk wants it dialled.

    "national" is how a French line dials it: 0… for France and the overseas departments (0262…, 0508
    plus six digits), 00… for any other country.
    """
    if not _E164.fullmatch(e164):
        raise ValueError(f"not an E.164 number: {e164!r}")
    digits = e164[1:]
    if style == "e164":
        return e164
    if style == "digits":
        return digits
    if style == "international00":
        return "00" + digits
    if style == "national":
        if digits.startswith("33"):
            return "0" + digits[2:]
        if digits[:3] in {"262", "590", "594", "596"}:
            return "0" + digits[3:]
        if digits.startswith("508") and len(digits) == 9:
            return "0" + digits
        return "00" + digits
    raise ValueError(f"unknown trunk number style: {style!r}")


_E164: Final = re.compile(r"\+[1-9]\d{1,14}")


# --- Full path --------------------------------------------------------------------------------------

_EDGE_JUNK: Final = " \t\r\n\u00a0\u202f\"';,"
# "(0)" written after a country code, as in "+33 (0)6 12 34 56 78".
_TRUNK_ZERO: Final = re.compile(r"^((?:\+|00)\s*\d{1,3}|33)\s*\(\s*0\s*\)")
# Spaces of every kind, dots, slashes, parentheses and every dash Unicode has.
_SEPARATORS: Final = re.compile(r"[\s./()\-\u2010-\u2015\u2212]")
_COMPACT: Final = re.compile(r"\+?\d+")


def _clean(raw: str) -> str | Refusal:
    """Reduce a raw entry to ``+digits`` or ``digits`` (ASCII), or refuse it."""
    text = unicodedata.normalize("NFKC", raw).strip(_EDGE_JUNK)
    # phonenumbers maps letters to keypad digits (0800 FLOWERS, "poste 12"): refuse them first.
    if any(char.isalpha() for char in text):
        return _REFUSED["letters"]
    text = _SEPARATORS.sub("", _TRUNK_ZERO.sub(r"\1", text))
    if not text.isascii():
        text = "".join(str(unicodedata.decimal(char)) if char.isdecimal() else char for char in text)
    if text.startswith("00"):
        text = "+" + text[2:]
    if not _COMPACT.fullmatch(text):
        return _REFUSED["invalid"]
    return text


def _short_number(digits: str) -> Refusal:
    if digits in EMERGENCY_NUMBERS or shortnumberinfo.is_emergency_number(digits, "FR"):
        return _REFUSED["emergency"]
    try:
        parsed = phonenumbers.parse(digits, "FR")
    except phonenumbers.NumberParseException:
        return _REFUSED["too_short"]
    if shortnumberinfo.is_valid_short_number_for_region(parsed, "FR"):
        return _REFUSED["special"]
    return _REFUSED["too_short"]


def _international_reference(plus_digits: str, allow_international: bool) -> Number | Refusal:
    if plus_digits.startswith("+33"):
        nsn = plus_digits[3:]
        if len(nsn) == 10 and nsn[0] == "0":
            nsn = nsn[1:]  # "+33 06 12 34 56 78": the trunk 0 kept after the country code
        if len(nsn) != 9:
            return _REFUSED["too_short" if len(nsn) < 9 else "too_long"]
        return _french_reference(nsn, allow_international)
    try:
        parsed = phonenumbers.parse(plus_digits, None)
    except phonenumbers.NumberParseException as exc:
        return _REFUSED[_PARSE_ERRORS.get(exc.error_type, "invalid")]
    if not phonenumbers.is_valid_number(parsed):
        reason = phonenumbers.is_possible_number_with_reason(parsed)
        return _REFUSED[_LENGTH_REASONS.get(reason, "invalid")]
    return _finish_reference(parsed, allow_international)


_PARSE_ERRORS: Final = {
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too_short",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too_short",
    phonenumbers.NumberParseException.TOO_LONG: "too_long",
}
_LENGTH_REASONS: Final = {
    ValidationResult.TOO_SHORT: "too_short",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "too_short",
    ValidationResult.TOO_LONG: "too_long",
}


def _french_reference(nsn: str, allow_international: bool) -> Number | Refusal:
    """Classify a nine-digit French national significant number with phonenumbers."""
    if nsn[0] == "0":
        return _REFUSED["invalid"]
    region = _overseas_region(nsn)
    try:
        if region == "PM":
            parsed = phonenumbers.parse(nsn[3:], "PM")
        else:
            parsed = phonenumbers.parse("0" + nsn, region or "FR")
    except phonenumbers.NumberParseException:
        return _REFUSED["invalid"]
    if not phonenumbers.is_valid_number(parsed):
        return _REFUSED["invalid"]
    return _finish_reference(parsed, allow_international)


def _finish_reference(parsed: phonenumbers.PhoneNumber, allow_international: bool) -> Number | Refusal:
    """Apply our policy to a number phonenumbers says is valid."""
    region = phonenumbers.region_code_for_number(parsed)
    if parsed.country_code is None or region is None:
        return _REFUSED["invalid"]
    return _decide(
        parsed.country_code,
        region,
        phonenumbers.number_type(parsed),
        phonenumbers.national_significant_number(parsed),
        e164=phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        allow_international=allow_international,
    )


def _overseas_region(nsn: str) -> str | None:
    if nsn[:3] not in _OVERSEAS_HEADS:
        return None
    return (
        _OVERSEAS_PREFIXES.get(nsn[:3]) or _OVERSEAS_PREFIXES.get(nsn[:4]) or _OVERSEAS_PREFIXES.get(nsn[:5])
    )


def _decide(
    country_code: int,
    region: str,
    number_type: int,
    nsn: str,
    *,
    e164: str,
    allow_international: bool,
) -> Number | Refusal:
    """Policy shared by both paths: which valid numbers we call, and how we type them."""
    if country_code == 33:
        if nsn[0] == "8":
            # The tariff families for 08 numbers, whatever phonenumbers calls the block.
            family = {"0": "special", "1": "shared_cost", "2": "shared_cost", "9": "premium"}.get(nsn[1])
            if family is not None:
                return _REFUSED[family]
        if number_type in _ACCEPTED_TYPES:
            return Number(e164, _FRENCH_TYPES[number_type], number_type == PhoneNumberType.MOBILE, region)
    elif country_code in OVERSEAS_COUNTRY_CODES:
        if number_type in _ACCEPTED_TYPES:
            return Number(e164, "overseas", number_type == PhoneNumberType.MOBILE, region)
    else:
        if not allow_international:
            return _REFUSED["international"]
        if number_type in _ACCEPTED_TYPES:
            return Number(e164, "international", number_type == PhoneNumberType.MOBILE, region)
    if number_type == PhoneNumberType.PREMIUM_RATE:
        return _REFUSED["premium"]
    if number_type == PhoneNumberType.SHARED_COST:
        return _REFUSED["shared_cost"]
    # Toll free, UAN, personal numbers, pagers, voicemail access.
    return _REFUSED["special"]


# --- Fast path --------------------------------------------------------------------------------------

_FAST_DELETE: Final = str.maketrans("", "", " \t\r\n\x0b\x0c.-/")
_FAST_OVERSEAS_PLUS: Final = frozenset({"+262", "+590", "+594", "+596"})


def _normalize_fast(raw: str, allow_international: bool) -> Number | Refusal | None:
    """Handle the common French shapes with plain string work; None means "take the full path"."""
    if not raw.isascii():
        return None
    text = raw.translate(_FAST_DELETE)
    length = len(text)
    if text.isdigit():
        if length == 10 and text[0] == "0" and text[1] != "0":
            return _french_fast(text[1:], allow_international)
        if length == 9 and text[0] != "0":
            return _french_fast(text, allow_international)
        if length == 11 and text.startswith("33"):
            return _french_fast(text[2:], allow_international)
        if not text.startswith("00"):
            return None
        text = "+" + text[2:]
        length -= 1
    if text[:1] != "+" or not text[1:].isdigit():
        return None
    if length == 12 and text.startswith("+33"):
        return _french_fast(text[3:], allow_international)
    if length == 13 and text[:4] in _FAST_OVERSEAS_PLUS and text[4] != "0":
        country_code = int(text[1:4])
        return _classify_fast(country_code, text[4:], text, allow_international)
    return None


def _french_fast(nsn: str, allow_international: bool) -> Number | Refusal:
    if nsn[0] == "0":
        return _REFUSED["invalid"]
    if nsn[:3] in _OVERSEAS_HEADS:
        region = _overseas_region(nsn)
        if region is not None:
            country_code = region_country_code(region)
            national = nsn[3:] if region == "PM" else nsn
            return _classify_fast(country_code, national, f"+{country_code}{national}", allow_international)
    france = _france_nine_digits()
    if france is None:
        return _classify_fast(33, nsn, "+33" + nsn, allow_international)
    # The hot path of every import: one regex match, no function call per range family.
    pattern, types = france
    match = pattern.fullmatch(nsn)
    if match is None or match.lastgroup is None:
        return _REFUSED["invalid"]
    return _decide(
        33, "FR", types[match.lastgroup], nsn, e164="+33" + nsn, allow_international=allow_international
    )


@functools.cache
def _france_nine_digits() -> tuple[re.Pattern[str], dict[str, int]] | None:
    """FR's compiled nine-digit ranges, when +33 maps to FR alone (else the generic region search)."""
    (france, *others) = country_ranges(33)
    return france.for_length(9) if not others and france.without_leading_digits else None


def _classify_fast(country_code: int, nsn: str, e164: str, allow_international: bool) -> Number | Refusal:
    for ranges in country_ranges(country_code):
        number_type = ranges.resolve(nsn)
        if number_type is not None:
            if number_type == PhoneNumberType.UNKNOWN:
                break
            return _decide(
                country_code,
                ranges.region,
                number_type,
                nsn,
                e164=e164,
                allow_international=allow_international,
            )
    return _REFUSED["invalid"]


def national_forms(national: str) -> list[str]:
    """A French national number in every form a trunk may send it: 0X…, +33X…, 0033X…, 33X…, X…
    (the recording number is matched in the dialplan in each of them)."""
    digits = national.lstrip("0")
    return [national, f"+33{digits}", f"0033{digits}", f"33{digits}", digits]


def mask_number(number: str) -> str:
    """+33612345678 -> +336…5678 (for logs): enough to tell calls apart, not enough to call anyone."""
    if len(number) <= 6:
        return "…" + number[-2:]
    return number[:4] + "…" + number[-4:]
