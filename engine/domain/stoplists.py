"""Stop lists ("listes d'opposition"): how a number is kept on them. A number is its SHA-256 over its
E.164 form, in lower-case hex, so that a list imported hashed by a customer (the hash of "+33612345678")
meets the numbers we stop in clear; the clear number is kept too when we know it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final, Literal

Source = Literal["dtmf", "import", "callback", "manual"]
SOURCES: Final[tuple[Source, ...]] = ("dtmf", "import", "callback", "manual")

_HASH: Final = re.compile(r"[0-9a-f]{64}")


def number_hash(e164: str) -> str:
    """The key of an E.164 number on a stop list."""
    if not e164.startswith("+"):
        raise ValueError(f"not an E.164 number: {e164!r}")
    return hashlib.sha256(e164.encode("ascii")).hexdigest()


def as_hash(value: str) -> str | None:
    """An entry given already hashed (64 hex digits, any case) → its key; None when it is not one."""
    text = value.strip().lower()
    return text if _HASH.fullmatch(text) else None
