"""Logins: checking a password or a token under the shared failed-login throttle.

Failed logins of every interface (http.php, e-mail, API tokens, the pages) count in one window, so a
guesser gains nothing by switching interface: a failure counts for the account and for the client
address; while either has reached ``VOCALCAST_LOGIN_MAX_FAILURES`` in ``VOCALCAST_LOGIN_WINDOW_S``,
no password is even checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from engine.domain.accounts import Account
from engine.settings import Settings
from engine.store import rates
from engine.store.accounts import authenticate
from engine.store.db import Database

LOGIN_FAILURES: Final = "login"


def login_keys(email: str, client: str) -> list[str]:
    return [f"account:{email.strip().lower()}", f"client:{client}"]


@dataclass(frozen=True, slots=True)
class LoginResult:
    """The account when the password matched; else ``retry_after_s`` when throttled (nothing checked)."""

    account: Account | None = None
    retry_after_s: float | None = None

    @property
    def throttled(self) -> bool:
        return self.retry_after_s is not None


class Logins:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    async def password(self, email: str, password: str, *, client: str) -> LoginResult:
        """The account whose e-mail and password these are, under the throttle of (account, client)."""
        keys = login_keys(email, client)
        wait_s = await self._blocked_for_s(keys)
        if wait_s is not None:
            # No password check at all while throttled: a guesser learns nothing and costs us nothing.
            return LoginResult(retry_after_s=wait_s)
        account = await authenticate(self._db, email.strip(), password)
        if account is None:
            await rates.record(self._db, LOGIN_FAILURES, keys)
        return LoginResult(account=account)

    async def client_blocked_for_s(self, client: str) -> float | None:
        """Seconds a client address must wait (failed tokens count against the address only)."""
        return await self._blocked_for_s([f"client:{client}"])

    async def record_client_failure(self, client: str) -> None:
        await rates.record(self._db, LOGIN_FAILURES, [f"client:{client}"])

    async def forget_failures(self, email: str) -> None:
        """After a password reset, the account's own failures no longer count."""
        await rates.clear(self._db, LOGIN_FAILURES, login_keys(email, "")[:1])

    async def _blocked_for_s(self, keys: list[str]) -> float | None:
        limit, window_s = self._settings.login_max_failures, self._settings.login_window_s
        return await rates.blocked_for_s(self._db, LOGIN_FAILURES, keys, limit=limit, window_s=window_s)
