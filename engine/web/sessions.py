"""Web sessions of the customer's space: a signed cookie naming a server-side session, and CSRF tokens.

Why server-side sessions (kept by the logins service) rather than stateless signed tokens: logging out,
a password change and a password reset must end a session at once, everywhere, even one whose cookie was
copied. The cookie holds the session's 32 random bytes and their HMAC with the server secret (a forged
or truncated cookie is refused without a query); the database holds only their SHA-256.

CSRF: every POST carries a token that is the HMAC of the session token (logged in) or of a random
"pre-session" cookie (login and password forms), so it cannot be made without reading our pages.
Cookies are HttpOnly and SameSite=Lax, and Secure when VOCALCAST_PUBLIC_URL is https.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from engine.domain.accounts import Account
from engine.services import Services
from engine.settings import Settings
from engine.web.remote import client_address

SESSION_COOKIE: Final = "vocalcast_session"
PRE_COOKIE: Final = "vocalcast_pre"
NOTICE_COOKIE: Final = "vocalcast_notice"
_MAC_CHARS: Final = 43  # a whole SHA-256 in unpadded base64url


def _mac(secret: str, label: str, value: str) -> str:
    digest = hmac.new(secret.encode(), f"vocalcast.web.{label}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:_MAC_CHARS]


def sign(secret: str, token: str) -> str:
    return f"{token}.{_mac(secret, 'cookie', token)}"


def unsign(secret: str, value: str | None) -> str | None:
    """The token of a cookie value we signed, else None."""
    if not value or value.count(".") != 1:
        return None
    token, mac = value.split(".")
    if not token or not hmac.compare_digest(mac, _mac(secret, "cookie", token)):
        return None
    return token


def new_token() -> str:
    return secrets.token_urlsafe(32)


def cookie_options(settings: Settings) -> dict[str, object]:
    return {
        "httponly": True,
        "samesite": "Lax",
        "secure": settings.public_url.lower().startswith("https://"),
        "path": "/",
    }


@dataclass(slots=True)
class Visitor:
    """Who is asking: the account behind a live session (or None), and the CSRF token for our forms."""

    account: Account | None
    session_token: str | None
    pre_token: str | None
    csrf: str
    set_pre_cookie: bool = False


_VISITOR: Final = web.RequestKey("vocalcast.visitor", Visitor)


async def visitor(request: web.Request, services: Services) -> Visitor:
    """The request's visitor, looked up once per request (one or two queries when logged in)."""
    if _VISITOR in request:
        return request[_VISITOR]
    secret = services.settings.require("secret_key")
    token = unsign(secret, request.cookies.get(SESSION_COOKIE))
    account = None
    if token is not None:
        account = await services.logins.session_account(token)
        if account is None:
            token = None
    if account is not None and token is not None:
        found = Visitor(account, token, None, _mac(secret, "csrf", token))
    else:
        pre = unsign(secret, request.cookies.get(PRE_COOKIE))
        fresh = pre is None
        pre = pre or new_token()
        found = Visitor(None, None, pre, _mac(secret, "csrf-pre", pre), set_pre_cookie=fresh)
    request[_VISITOR] = found
    return found


def csrf_ok(found: Visitor, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(found.csrf, str(submitted))


def finish(response: web.StreamResponse, found: Visitor, settings: Settings) -> None:
    """Give an anonymous visitor its pre-session cookie, the anchor of the login form's CSRF token."""
    if found.set_pre_cookie and found.pre_token is not None:
        response.set_cookie(
            PRE_COOKIE,
            sign(settings.require("secret_key"), found.pre_token),
            **cookie_options(settings),  # type: ignore[arg-type]
        )


async def log_in(
    request: web.Request, response: web.StreamResponse, services: Services, account: Account
) -> None:
    """Open a new session (never reuse one: no fixation) and set its cookie on ``response``."""
    token = await services.logins.open_session(account.id, client=client_address(request))
    set_session(response, services.settings, token)


def set_session(response: web.StreamResponse, settings: Settings, token: str) -> None:
    """The browser's session is now ``token``'s (a login, or the new session after a password change)."""
    response.set_cookie(
        SESSION_COOKIE,
        sign(settings.require("secret_key"), token),
        **cookie_options(settings),  # type: ignore[arg-type]
    )
    response.del_cookie(PRE_COOKIE, path="/")


async def log_out(response: web.StreamResponse, services: Services, found: Visitor) -> None:
    if found.session_token is not None:
        await services.logins.close_session(found.session_token)
    response.del_cookie(SESSION_COOKIE, path="/")
