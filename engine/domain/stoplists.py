"""Stop lists ("listes d'opposition"): how a number is kept on them. A number is its SHA-256 over its
E.164 form, in lower-case hex, so that a list imported hashed by a customer (the hash of "+33612345678")
meets the numbers we stop in clear; the clear number is kept too when we know it.

An erased number (RGPD) stays on the list by its keyed hash instead: HMAC-SHA256 under the server
secret (VOCALCAST_SECRET_KEY). A plain SHA-256 of a phone number is no protection (the billion French
numbers are hashed in seconds); without the key, the keyed one cannot be tested. Look-ups with the key
match both forms (lookup_hashes).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final, Literal

Source = Literal["dtmf", "import", "callback", "manual"]
SOURCES: Final[tuple[Source, ...]] = ("dtmf", "import", "callback", "manual")
# The called person objected themselves (the opt-out key during a call, a call-back): "opposition".
OBJECTIONS: Final[frozenset[Source]] = frozenset({"dtmf", "callback"})

_HASH: Final = re.compile(r"[0-9a-f]{64}")


def number_hash(e164: str) -> str:
    """The key of an E.164 number on a stop list."""
    if not e164.startswith("+"):
        raise ValueError(f"not an E.164 number: {e164!r}")
    return hashlib.sha256(e164.encode("ascii")).hexdigest()


def keyed_hash(e164: str, key: str) -> str:
    """The key of an erased number on a stop list: HMAC-SHA256 of its E.164 form under the server secret."""
    if not e164.startswith("+"):
        raise ValueError(f"not an E.164 number: {e164!r}")
    if not key:
        raise ValueError("the server secret is empty")
    return hmac.new(key.encode(), e164.encode("ascii"), hashlib.sha256).hexdigest()


def lookup_hashes(e164: str, key: str | None) -> tuple[str, ...]:
    """Every key the number may be on a stop list under: its SHA-256, and (with the server secret) its
    keyed hash, the form an erased number keeps."""
    plain = number_hash(e164)
    return (plain,) if key is None else (plain, keyed_hash(e164, key))


def as_hash(value: str) -> str | None:
    """An entry given already hashed (64 hex digits, any case) → its key; None when it is not one."""
    text = value.strip().lower()
    return text if _HASH.fullmatch(text) else None
