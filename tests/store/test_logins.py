"""The logins service on a real PostgreSQL: web sessions, password change, « mot de passe oublié »."""

from __future__ import annotations

import dataclasses

import pytest

from engine.domain.accounts import Account
from engine.services import Services, build
from engine.services.logins import PasswordChange
from engine.settings import Settings
from engine.store import Database
from engine.store import accounts as accounts_store

PASSWORD = "un-mot-de-passe-solide"
NEW_PASSWORD = "tout-nouveau-mot-de-passe"


@pytest.fixture
def services(stack_settings: Settings, db: Database) -> Services:
    # No relay: reset e-mails are composed and dropped (logged); the links are caught by the tests.
    settings = dataclasses.replace(
        stack_settings, smtp_relay="", login_max_failures=3, login_account_max_failures=3
    )
    return build(settings, db)


async def _account(db: Database, settings: Settings, email: str = "client@example.fr") -> Account:
    new = await accounts_store.create_account(
        db, email, secret_key=settings.require("secret_key"), password=PASSWORD
    )
    return new.account


async def _change(
    services: Services,
    account: Account,
    current: str,
    new: str,
    confirmation: str | None = None,
    *,
    client: str = "10.0.0.1",
) -> PasswordChange:
    confirmed = new if confirmation is None else confirmation
    return await services.logins.change_password(
        account, current=current, new=new, confirmation=confirmed, client=client
    )


async def test_a_session_names_its_account_until_it_is_closed(services: Services, db: Database) -> None:
    account = await _account(db, services.settings)
    first = await services.logins.open_session(account.id, client="127.0.0.1")
    second = await services.logins.open_session(account.id, client="127.0.0.1")
    assert first != second  # a login never reuses a session
    assert (await services.logins.session_account(first)) == account
    await services.logins.close_session(first)
    assert await services.logins.session_account(first) is None
    assert (await services.logins.session_account(second)) == account
    assert await services.logins.session_account("not-a-session") is None


async def test_password_change_checks_the_current_one_ends_every_session_and_revokes_every_token(
    services: Services, db: Database
) -> None:
    logins = services.logins
    account = await _account(db, services.settings)
    sessions = [await logins.open_session(account.id, client="10.0.0.1") for _ in range(3)]
    for label in ("cron", "crm"):
        await services.accounts.create_token(account.id, label=label)

    refused = await _change(services, account, "faux", "court")
    assert not refused.done and set(refused.refusals) == {"current", "new"}
    refused = await _change(services, account, PASSWORD, NEW_PASSWORD, "autre")
    assert set(refused.refusals) == {"confirmation"}
    # Nothing changed: the old password works, every session and token lives.
    assert (await logins.password(account.email, PASSWORD, client="10.0.0.2")).account == account
    assert all([await logins.session_account(t) for t in sessions])
    assert await db.fetchval("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL") == 2

    done = await _change(services, account, PASSWORD, NEW_PASSWORD)
    assert done.done and (done.ended_sessions, done.revoked_tokens) == (3, 2)
    assert [await logins.session_account(t) for t in sessions] == [None, None, None]
    assert await db.fetchval("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL") == 0
    # The changer's browser gets a new session.
    assert done.session is not None and (await logins.session_account(done.session)) == account
    assert (await logins.password(account.email, NEW_PASSWORD, client="10.0.0.2")).account == account


async def test_password_change_counts_in_the_login_throttle(services: Services, db: Database) -> None:
    account = await _account(db, services.settings)
    for _ in range(services.settings.login_account_max_failures):
        await _change(services, account, "faux", NEW_PASSWORD, client="10.0.0.3")
    # Even the right password is not checked now: a borrowed session is no way round the throttle.
    blocked = await _change(services, account, PASSWORD, NEW_PASSWORD, client="10.0.0.4")
    assert blocked.refusals["current"].startswith("Trop de tentatives")
    assert await accounts_store.authenticate(db, account.email, PASSWORD) == account


async def test_a_reset_link_works_once_ends_every_session_and_clears_the_failures(
    services: Services, db: Database
) -> None:
    logins = services.logins
    account = await _account(db, services.settings)
    links: list[str] = []
    await logins.request_reset(
        account.email.upper(), client="10.0.0.5", link=lambda t: links.append(t) or f"https://x/{t}"
    )
    await logins.settled()  # the reset links are made in the background
    [token] = links
    assert await logins.reset_link_alive(token)
    session = await logins.open_session(account.id, client="10.0.0.5")
    for _ in range(services.settings.login_account_max_failures):
        await logins.password(account.email, "faux", client="10.0.0.6")
    assert (await logins.password(account.email, PASSWORD, client="10.0.0.7")).throttled

    weak = await logins.reset_password(token, new="court", confirmation="court")
    assert weak is not None and set(weak.refusals) == {"new"}
    assert await logins.reset_link_alive(token)  # a refused password does not use the link up

    done = await logins.reset_password(token, new=NEW_PASSWORD, confirmation=NEW_PASSWORD)
    assert done is not None and done.done
    assert not await logins.reset_link_alive(token)
    again = "encore-un-autre-mot"
    assert await logins.reset_password(token, new=again, confirmation=again) is None
    assert await logins.session_account(session) is None
    # The owner read the mailbox: the account's failures no longer lock it (another client address).
    assert (await logins.password(account.email, NEW_PASSWORD, client="10.0.0.8")).account == account
    assert await logins.reset_password("unknown", new=NEW_PASSWORD, confirmation=NEW_PASSWORD) is None


async def test_reset_requests_tell_nothing_and_are_throttled(services: Services, db: Database) -> None:
    logins = services.logins
    account = await _account(db, services.settings)
    links: list[str] = []

    def link(token: str) -> str:
        links.append(token)
        return f"https://x/{token}"

    await logins.request_reset("personne@example.fr", client="10.0.0.9", link=link)
    assert links == [] and await db.fetchval("SELECT count(*) FROM password_resets") == 0
    for _ in range(3):
        await logins.request_reset(account.email, client="10.0.0.9", link=link)
    await logins.request_reset(account.email, client="10.0.0.10", link=link)  # the account's own limit
    await logins.settled()  # the reset links are made in the background
    assert len(links) == 3
    # Only the latest e-mail counts.
    assert [await logins.reset_link_alive(t) for t in links] == [False, False, True]
