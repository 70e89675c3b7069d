"""What an endpoint URL may be, checked when the customer sets it (where it points is checked again at
every connection, on the address actually used: engine/services/webhooks/guard.py)."""

from __future__ import annotations

from urllib.parse import urlsplit

from engine.domain.webhooks import URL_MAX_LENGTH
from engine.errors import InvalidInput


def check_url(raw: str) -> str:
    """An endpoint URL: http or https, a host, no user:password, at most URL_MAX_LENGTH characters."""
    url = raw.strip()
    refusal = InvalidInput(
        "webhook_url",
        f"bad webhook URL {url[:80]!r}",
        message_fr="L'adresse du webhook doit commencer par http:// ou https:// et nommer un serveur.",
    )
    if not url or len(url) > URL_MAX_LENGTH or not url.isascii() or not url.isprintable() or " " in url:
        raise refusal
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number or out of range
    except ValueError as exc:
        raise refusal from exc
    if parts.scheme not in {"http", "https"} or not parts.hostname or "@" in parts.netloc or port == 0:
        raise refusal
    return url
