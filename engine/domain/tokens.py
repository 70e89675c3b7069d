"""API tokens as the customer sees them: a label, dates, never the secret after its creation.

A token is 32 random bytes, URL-safe, behind a ``vc_`` prefix (so a leaked one is recognisable in a
scanner or a log); engine/store/tokens.py makes them and keeps only their SHA-256.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

from engine.errors import InvalidInput

PREFIX: Final = "vc_"
LABEL_MAX_LENGTH: Final = 100  # the CHECK of sql/0006


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token as listed: never the token itself, which only its creator saw."""

    id: int
    account_id: UUID
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class NewToken:
    """A created token and its secret: the only time the secret is seen in clear."""

    token: ApiToken
    secret: str


def check_label(raw: str) -> str:
    """A label as stored: control characters dropped, spaces collapsed, at most LABEL_MAX_LENGTH."""
    label = " ".join("".join(c for c in raw if not unicodedata.category(c).startswith("C")).split())
    if len(label) > LABEL_MAX_LENGTH:
        raise InvalidInput(
            "label_too_long",
            f"token label longer than {LABEL_MAX_LENGTH} characters",
            message_fr=f"Le libellé du jeton ne doit pas dépasser {LABEL_MAX_LENGTH} caractères.",
        )
    return label
