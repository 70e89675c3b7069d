"""Contacts' fields as stored (société, nom, prénom, group names), the keys names are searched and
sorted by, and the limits of an account's contacts: pure rules, shared by the store, the CSV import and the
pages that check a form before saving it; and a contact, a group and a page of contacts as every
interface shows them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from engine.domain.numbers import Number, NumberType, Refusal, normalize
from engine.errors import InvalidInput

FIELD_MAX_LENGTH: Final = 100  # société, nom, prénom (the CHECKs of sql/0004)
GROUP_NAME_MAX_LENGTH: Final = 60
# Soft cap (checked without a lock): a mis-mapped CSV column must not make 100,000 groups.
MAX_GROUPS: Final = 1000
# Listings: pages of contacts, and how long a search may be.
DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 500
MAX_SEARCH_WORDS: Final = 4
SEARCH_MAX_LENGTH: Final = 100

ContactOrder = Literal["name", "societe", "number"]

_CONTROLS: Final = re.compile(r"[\x00-\x1f\x7f]")
_SPACES: Final = re.compile(r"\s+")
# Letters Unicode does not decompose into a base letter and an accent.
_LIGATURES: Final = {
    "œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae", "ß": "ss",
    "ø": "o", "Ø": "o", "ł": "l", "Ł": "l", "đ": "d", "Đ": "d",
}  # fmt: skip
FIELD_LABELS_FR: Final = {"societe": "Société", "nom": "Nom", "prenom": "Prénom"}


def tidy(raw: str) -> str:
    """NFC, control characters and runs of spaces made one space, trimmed."""
    text = raw.strip()
    if text.isprintable() and "  " not in text and unicodedata.is_normalized("NFC", text):
        return text  # the common case, 100,000 times per import: no regex
    return _SPACES.sub(" ", _CONTROLS.sub(" ", unicodedata.normalize("NFC", text))).strip()


_LIGATURE_TABLE: Final = str.maketrans(_LIGATURES)
# The marks NFKD splits off a letter (accents, cedilla, tilde...): the Combining Diacritical Marks blocks.
_COMBINING: Final = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")


def search_key(text: str) -> str:
    """What names are sorted and searched by: lower case, accents and ligatures removed ("Œuvre" → "oeuvre").

    Stored beside each field (sql/0004); search words go through it too, so both sides always agree.
    """
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURE_TABLE).lower())
    return _COMBINING.sub("", decomposed) or text.lower()  # lone combining marks still get a key


def clean_field(raw: str, field: str) -> str:
    """A société, nom or prénom as stored: NFC, single spaces, trimmed; InvalidInput when too long."""
    text = tidy(raw)
    if len(text) > FIELD_MAX_LENGTH:
        label = FIELD_LABELS_FR.get(field, field)
        raise InvalidInput(
            "field_too_long",
            f"{field} longer than {FIELD_MAX_LENGTH} characters",
            message_fr=f"Champ « {label} » trop long ({FIELD_MAX_LENGTH} caractères au plus).",
        )
    return text


def clean_group_name(raw: str) -> str:
    """A group name as stored; InvalidInput when empty or too long."""
    name = tidy(raw)
    if not name or len(name) > GROUP_NAME_MAX_LENGTH:
        raise InvalidInput(
            "group_name_invalid",
            f"group name must have 1 to {GROUP_NAME_MAX_LENGTH} characters",
            message_fr=f"Le nom du groupe doit compter de 1 à {GROUP_NAME_MAX_LENGTH} caractères.",
        )
    return name


def check_phone(raw: str, *, allow_international: bool) -> Number:
    """The normalised number, or InvalidInput carrying the refusal's code and French reason."""
    result = normalize(raw, allow_international=allow_international)
    if isinstance(result, Refusal):
        raise InvalidInput(result.code, f"phone number refused ({result.code})", message_fr=result.message_fr)
    return result


def too_many_groups() -> InvalidInput:
    """The error for an account that would exceed MAX_GROUPS."""
    return InvalidInput(
        "too_many_groups",
        f"an account has at most {MAX_GROUPS} contact groups",
        message_fr=f"Vous ne pouvez pas avoir plus de {MAX_GROUPS} groupes de contacts.",
    )


@dataclass(frozen=True, slots=True)
class GroupRef:
    """A group a contact belongs to."""

    id: int
    name: str


@dataclass(frozen=True, slots=True)
class Contact:
    """A contact: the number is stored normalised; société, nom, prénom are '' when unknown."""

    id: int
    societe: str
    nom: str
    prenom: str
    e164: str
    number_type: NumberType
    is_mobile: bool
    groups: tuple[GroupRef, ...]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Group:
    """A contact group and how many contacts it holds."""

    id: int
    name: str
    member_count: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ContactPage:
    """One page of a listing; pass ``next_cursor`` back as ``after`` for the next page (None: last page)."""

    contacts: tuple[Contact, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class NewContact:
    """A contact as typed in a form, before its rules are checked (société, nom, prénom may be '')."""

    phone: str
    societe: str = ""
    nom: str = ""
    prenom: str = ""


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """A contact's consent as recorded (None fields: not given, or not withdrawn)."""

    given_at: datetime | None
    source: str | None
    proof: str | None
    withdrawn_at: datetime | None
