"""Logins: checking a password or a token under the shared failed-login throttle, the web sessions that
a login opens, password changes and the one-time links of « mot de passe oublié ».

Failed logins of every interface (http.php, e-mail, the pages; API tokens for the address) count in
one throttle (engine/domain/throttle.py, sql/0015): an attempt takes its slot before the password is
checked, so parallel guesses get no more than the budget; it counts for its (login, address) pair, and —
unless that pair logged in successfully lately — for the login across addresses and for the address
across logins. While one of those budgets is spent, no password is even checked.

Web sessions live in PostgreSQL (sql/0008) rather than in stateless signed tokens: logging out, a
password change and a password reset end a session at once, everywhere. The cookie that names a
session, and CSRF, are the web's (engine/web/sessions.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import random
import secrets
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final
from uuid import UUID

import structlog

from engine import mailer
from engine.domain.accounts import EMAIL_MAX_LENGTH, Account, check_password, normalize_email
from engine.domain.throttle import BUSY, MAX_STRIKES, Budget, span_s
from engine.errors import InvalidInput, NotFound, VocalcastError
from engine.services.background import Background
from engine.settings import Settings
from engine.store import accounts as accounts_store
from engine.store import clients as clients_store
from engine.store import rates, throttle, webspace
from engine.store import refusals as refusals_store
from engine.store import tokens as tokens_store
from engine.store.db import Database

log = structlog.get_logger(__name__)

RESET_REQUESTS: Final = "password_reset"
RESET_REQUESTS_PER_HOUR: Final = 3
PURGE_EVERY_S: Final = 3600.0
# Waiting for checks that hold a budget's slots: polled at a random pace in this range, at most this long
# (then answered as throttled, to retry in BUSY_RETRY_AFTER_S).
BUSY_POLL_S: Final = (0.02, 0.08)
BUSY_WAIT_S: Final = 10.0
BUSY_RETRY_AFTER_S: Final = 5.0
_TOKEN_BYTES: Final = 32  # web session and reset-link tokens
THROTTLED_FR: Final = "Trop de tentatives. Réessayez plus tard, ou utilisez « mot de passe oublié »."


def login_name(email: str) -> str:
    """The login an e-mail field names, spelled as the accounts table compares it (NFKC, trimmed,
    lower-cased: ``normalize_email``), even when it is no valid address: every spelling of one login
    shares its throttle counters."""
    try:
        return normalize_email(email)
    except InvalidInput:
        return unicodedata.normalize("NFKC", email).strip().lower().replace("\x00", "")[:EMAIL_MAX_LENGTH]


def login_budgets(settings: Settings, login: str, client: str, *, trusted: bool) -> list[Budget]:
    """What one login attempt counts against: always its (login, address) pair; unless that pair logged
    in successfully lately, also the login across addresses and the address across logins."""
    window, client = settings.login_window_s, client[:100]
    pair = Budget(f"pair:{login}|{client}", settings.login_max_failures, window)
    if trusted:
        return [pair]
    return [
        pair,
        Budget(f"account:{login}", settings.login_account_max_failures, window),
        Budget(f"client:{client}", settings.login_client_max_failures, window),
    ]


@dataclass(frozen=True, slots=True)
class LoginResult:
    """The account when the password matched; else ``retry_after_s`` when throttled (nothing checked)."""

    account: Account | None = None
    retry_after_s: float | None = None

    @property
    def throttled(self) -> bool:
        return self.retry_after_s is not None


@dataclass(frozen=True, slots=True)
class PasswordChange:
    """A password changed — every web session ended, every API token revoked, counted here — or refused:
    ``refusals`` maps what was refused — "current", "new" or "confirmation" — to its French reason, and
    nothing changed."""

    refusals: Mapping[str, str] = field(default_factory=dict)
    ended_sessions: int = 0
    revoked_tokens: int = 0
    session: str | None = None  # the changer's new session (every old one ended)

    @property
    def done(self) -> bool:
        return not self.refusals


def _new_password_refusals(new: str, confirmation: str) -> dict[str, str]:
    try:
        check_password(new)
    except InvalidInput as exc:
        return {"new": exc.message_fr}
    if new != confirmation:
        return {"confirmation": "Les deux mots de passe ne sont pas identiques."}
    return {}


class Logins:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._background = Background()  # reset work and e-mails on their way
        self._resets = asyncio.Lock()
        accounts_store.set_password_workers(settings.password_workers)

    # --- the throttle -----------------------------------------------------------------------------------

    async def password(self, email: str, password: str, *, client: str) -> LoginResult:
        """The account whose e-mail and password these are, under the throttle.

        The attempt takes its slot in every budget it counts against *before* the password is checked
        (under a row lock): parallel guesses cannot all pass, at most the budget is ever checked. A
        success gives the slot back and makes the (account, address) pair trusted, so that a stranger's
        guesses from elsewhere never lock the customer out of their usual address.
        """
        login = login_name(email)
        days = self._settings.login_trusted_days
        trusted = await throttle.trusted(self._db, login, client, days=days)
        budgets = login_budgets(self._settings, login, client, trusted=trusted)
        wait_s = await self._take(budgets)
        if wait_s is not None:
            # No password check at all while throttled: a guesser learns nothing and costs us nothing.
            return LoginResult(retry_after_s=wait_s)
        keys = [b.key for b in budgets]
        try:
            account = await accounts_store.authenticate(self._db, email.strip(), password)
        except BaseException:
            with contextlib.suppress(Exception):  # a check that never ended gives its slots back
                await throttle.settle(self._db, keys, failed=False)
            raise
        # A failure keeps its slots; a success gives them back.
        await throttle.settle(self._db, keys, failed=account is None)
        if account is None:
            return LoginResult()
        await throttle.trust(self._db, account.id, client)
        return LoginResult(account=account)

    async def _take(self, budgets: list[Budget]) -> float | None:
        """Slots in ``budgets`` (None), or the seconds to wait. While checks still running hold the
        slots, wait for them — they may succeed and give their slots back — up to BUSY_WAIT_S."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BUSY_WAIT_S
        while True:
            verdict = await throttle.take(self._db, budgets)
            if verdict != BUSY:
                return None if verdict is None else float(verdict)
            if loop.time() >= deadline:
                return BUSY_RETRY_AFTER_S
            await asyncio.sleep(random.uniform(*BUSY_POLL_S))  # noqa: S311 - spreading retries, no secret

    async def token_failure(self, client: str) -> float | None:
        """A request with an unknown API token: counted against the client address (the same counter as
        its failed passwords); the seconds to wait once that budget is spent, else None."""
        settings = self._settings
        budget = Budget(f"client:{client[:100]}", settings.login_client_max_failures, settings.login_window_s)
        wait_s = await self._take([budget])
        if wait_s is None:
            await throttle.settle(self._db, [budget.key], failed=True)
        return wait_s

    # --- the addresses of the machine interfaces ---------------------------------------------------------

    async def client_allowed(self, account_id: UUID, client: str) -> bool:
        """Whether ``client`` may use http.php and the API for the account: always when the account has
        no list of networks; else only from one of them."""
        networks = await clients_store.allowed_networks(self._db, account_id)
        if not networks:
            return True
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in network for network in networks)

    async def allowed_networks(self, account_id: UUID) -> list[str]:
        return [str(n) for n in await clients_store.allowed_networks(self._db, account_id)]

    async def set_allowed_networks(self, account_id: UUID, networks: list[str]) -> list[str]:
        """Limit http.php and the API of the account to ``networks`` (addresses or CIDR blocks; none:
        from anywhere). InvalidInput names the first that is not one."""
        parsed = []
        for raw in networks:
            try:
                parsed.append(ipaddress.ip_network(raw.strip(), strict=False))
            except ValueError as exc:
                raise InvalidInput(
                    "network_invalid",
                    f"not an address or network: {raw!r}",
                    message_fr=f"« {raw.strip()[:50]} » n'est ni une adresse ni un réseau IP.",
                ) from exc
        await clients_store.set_allowed_networks(self._db, account_id, sorted(set(parsed), key=str))
        return await self.allowed_networks(account_id)

    async def forget_failures(self, email: str) -> None:
        """After a password reset, the account's own failures no longer count (on any address)."""
        login = login_name(email)
        await throttle.clear(self._db, [f"account:{login}"], [f"pair:{login}|"])

    # --- housekeeping -----------------------------------------------------------------------------------

    async def purge(self) -> dict[str, int]:
        """Delete what unauthenticated traffic left behind and no rule needs any more: rate events older
        than a day (the longest window is an hour), throttle counters whose longest window is over,
        trusted pairs gone quiet, refusals older than VOCALCAST_REFUSALS_KEEP_DAYS, expired web sessions and
        password reset links (anyone may ask for a reset: not only a login may clear them)."""
        settings = self._settings
        longest_window_s = span_s(Budget("", 1, settings.login_window_s), MAX_STRIKES) * 2
        return {
            "rate_events": await rates.prune(self._db, 86400.0),
            "throttle": await throttle.prune(
                self._db,
                counters_older_than_s=longest_window_s,
                trusted_older_than_s=settings.login_trusted_days * 86400.0,
            ),
            "refusals": await refusals_store.prune(self._db, settings.refusals_keep_days * 86400.0),
            **await webspace.prune(self._db),
        }

    async def housekeeping(self) -> None:
        """Purge now and every PURGE_EVERY_S, for as long as the engine runs."""
        while True:
            try:
                purged = await self.purge()
                if any(purged.values()):
                    log.info("logins.purged", **purged)
            except VocalcastError as exc:
                log.warning("logins.purge_failed", error=str(exc))
            await asyncio.sleep(PURGE_EVERY_S)

    # --- web sessions -----------------------------------------------------------------------------------

    async def open_session(self, account_id: UUID, *, client: str) -> str:
        """A new web session of the account (never an old one reused: no fixation); returns its token,
        which only the customer's cookie keeps (the database has its SHA-256)."""
        await webspace.prune(self._db)  # now and then, on a login: expired sessions and reset links
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        await webspace.open_session(self._db, account_id, token, client=client)
        return token

    async def session_account(self, token: str) -> Account | None:
        """The account of a live session (its idle expiry pushed back); None once it has ended."""
        session = await webspace.find_session(self._db, token)
        if session is None:
            return None
        try:
            return await accounts_store.get_account(self._db, session.account_id)
        except NotFound:
            return None

    async def close_session(self, token: str) -> None:
        await webspace.close_session(self._db, token)

    # --- passwords --------------------------------------------------------------------------------------

    async def set_password(self, account_id: UUID, password: str | None = None) -> str:
        """An operator sets the password (generated unless given); returns it, the only time it is seen.
        Like every password change, it ends the web sessions and revokes the API tokens."""
        password, _ = await self._new_password(account_id, password)
        return password

    async def _new_password(self, account_id: UUID, password: str | None) -> tuple[str, PasswordChange]:
        """Store a new password and, in the same transaction, end every web session and revoke every API
        token of the account: whoever held the old password or anything it opened holds nothing now.
        The owner is told by e-mail (in the background)."""
        password, password_hash = await accounts_store.hash_password(password)
        async with self._db.transaction() as conn:
            await accounts_store.store_password_hash(conn, account_id, password_hash)
            ended = await webspace.close_other_sessions(conn, account_id)
            revoked = await tokens_store.revoke_all(conn, account_id)
        owner = await accounts_store.get_account(self._db, account_id)
        log.info("logins.password_changed", account_id=str(account_id), sessions=ended, tokens=revoked)
        self._background.start(self._mail_password_changed(owner.email, revoked))
        return password, PasswordChange(ended_sessions=ended, revoked_tokens=revoked)

    async def change_password(
        self,
        account: Account,
        *,
        current: str,
        new: str,
        confirmation: str,
        client: str,
    ) -> PasswordChange:
        """A logged-in customer changes their password: the current one is checked under the login
        throttle, the new one typed twice; then every session ends (the changer gets a new one, in
        ``session``) and every API token is revoked."""
        refusals = _new_password_refusals(new, confirmation)
        # A borrowed session must not become a way round the login throttle: same counters, same limit.
        checked = await self.password(account.email, current, client=client)
        if checked.throttled:
            refusals["current"] = THROTTLED_FR
        elif checked.account is None or checked.account.id != account.id:
            refusals["current"] = "Mot de passe actuel incorrect."
        if refusals:
            return PasswordChange(refusals)
        _, change = await self._new_password(account.id, new)
        session = await self.open_session(account.id, client=client)
        return dataclasses.replace(change, session=session)

    async def settled(self) -> None:
        """Wait for the background work (reset links, e-mails) started so far."""
        await self._background.settled()

    async def _mail_password_changed(self, to: str, revoked_tokens: int) -> None:
        tokens = ""
        renew = (
            "les scripts qui s'en servaient doivent recevoir un nouveau jeton, à créer dans « Paramètres »."
        )
        if revoked_tokens == 1:
            tokens = f" Votre jeton d'API a été révoqué : {renew}"
        elif revoked_tokens > 1:
            tokens = f" Vos {revoked_tokens} jetons d'API ont été révoqués : {renew}"
        message = mailer.compose(
            self._settings,
            to=to,
            subject="Votre mot de passe a été changé",
            body=(
                "Bonjour,\n\n"
                f"Le mot de passe de votre compte ({to}) vient d'être changé.\n\n"
                "Par sécurité, toutes les sessions ouvertes sur votre espace privé ont été fermées."
                f"{tokens} Les envois par http.php et par e-mail se font désormais avec le nouveau mot de "
                "passe.\n\n"
                "Si vous n'êtes pas à l'origine de ce changement, utilisez tout de suite « mot de passe "
                "oublié » sur la page de connexion, puis contactez-nous.\n"
            ),
        )
        if await mailer.send(self._settings, message):
            log.info("logins.password_changed_mail_sent")

    # --- « mot de passe oublié » ------------------------------------------------------------------------

    async def request_reset(self, email: str, *, client: str, link: Callable[[str], str]) -> None:
        """E-mail a one-time link (``link(token)``) to choose a new password, when ``email`` is a
        customer's login; at most RESET_REQUESTS_PER_HOUR an hour per address and per client.

        Says nothing of who is a customer, not even by its timing: the request does the same work for
        every address (the rate limit), and the lookup, the link and the e-mail happen in the
        background. InvalidInput when ``email`` is not an e-mail address.
        """
        login = normalize_email(email)
        keys = [f"account:{login}", f"client:{client}"]
        blocked = await rates.blocked_for_s(
            self._db, RESET_REQUESTS, keys, limit=RESET_REQUESTS_PER_HOUR, window_s=3600
        )
        if blocked is not None:
            log.info("logins.reset_rate_limited")
            return
        await rates.record(self._db, RESET_REQUESTS, keys)
        self._background.start(self._send_reset(login, link))

    async def _send_reset(self, login: str, link: Callable[[str], str]) -> None:
        async with self._resets:  # in the order they were asked: the latest link is the one that works
            try:
                account = await accounts_store.account_by_email(self._db, login)
            except NotFound:
                log.info("logins.reset_unknown_email")
                return
            token = secrets.token_urlsafe(_TOKEN_BYTES)
            await webspace.create_reset(self._db, account.id, token)
            mail = self._mail_reset(account.email, link(token))
        await mail

    async def _mail_reset(self, to: str, link: str) -> None:
        minutes = int(webspace.RESET_VALIDITY.total_seconds() // 60)
        message = mailer.compose(
            self._settings,
            to=to,
            subject="Votre nouveau mot de passe",
            body=(
                "Bonjour,\n\n"
                "Vous avez demandé à changer le mot de passe de votre espace privé. Ouvrez ce lien pour en "
                f"choisir un nouveau (il est valable {minutes} minutes et ne sert qu'une fois) :"
                f"\n\n{link}\n\n"
                "Si vous n'êtes pas à l'origine de cette demande, ignorez ce message : votre mot de passe "
                "actuel reste valable.\n"
            ),
        )
        if await mailer.send(self._settings, message):
            log.info("logins.reset_mail_sent")

    async def reset_link_alive(self, token: str) -> bool:
        """Whether a reset link still works (looking does not use it up)."""
        return await webspace.reset_account(self._db, token) is not None

    async def reset_password(self, token: str, *, new: str, confirmation: str) -> PasswordChange | None:
        """Choose a new password through a reset link; None when the link is dead (used, expired,
        unknown). The link works once; every session of the account ends, every API token is revoked,
        and its failed logins no longer count (its owner proved they read the mailbox)."""
        if not await self.reset_link_alive(token):
            return None
        refusals = _new_password_refusals(new, confirmation)
        if refusals:
            return PasswordChange(refusals)
        account_id = await webspace.use_reset(self._db, token)
        if account_id is None:
            return None  # used by a concurrent request since we looked
        _, change = await self._new_password(account_id, new)
        owner = await accounts_store.get_account(self._db, account_id)
        await self.forget_failures(owner.email)
        log.info("logins.password_reset", account_id=str(account_id))
        return change
