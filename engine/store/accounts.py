"""Account rows: creation, credentials (password, personal code), options and default send options.

Credits and their ledger are in engine/store/credits.py, sender numbers in engine/store/senders.py.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, TypeVar
from uuid import UUID

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from engine.domain import accounts as domain
from engine.domain.accounts import Account, NewAccount, SendDefaults, UnknownAccount
from engine.domain.commercial import PURPOSES, Purpose
from engine.errors import InvalidInput
from engine.store.credits import record_movement
from engine.store.db import Database, Executor, in_transaction, rows_affected

# argon2id with the library's defaults (RFC 9106's second recommendation: 64 MiB, 3 passes): ≈ 0.1 s
# of CPU per hash, which is why every hash and verification runs in a thread.
_HASHER: Final = PasswordHasher()
_CODE_ATTEMPTS: Final = 8  # draws before giving up on a unique personal code (one collision is rare)

_ACCOUNT_COLUMNS: Final = (
    "id, email, allow_international, allow_voicemail_drop, balance, reserved, created_at, "
    "default_greeting_enabled, default_greeting_message_id, default_transfer_number, "
    "default_sender_number_id, default_retries, default_retry_interval_s, default_voicemail_drop, "
    "default_purpose"
)


def _account(row: asyncpg.Record) -> Account:
    return Account(
        id=row["id"],
        email=row["email"],
        allow_international=row["allow_international"],
        allow_voicemail_drop=row["allow_voicemail_drop"],
        balance=row["balance"],
        reserved=row["reserved"],
        created_at=row["created_at"],
        defaults=SendDefaults(
            greeting_enabled=row["default_greeting_enabled"],
            greeting_message_id=row["default_greeting_message_id"],
            transfer_number=row["default_transfer_number"],
            sender_number_id=row["default_sender_number_id"],
            retries=row["default_retries"],
            retry_interval_s=row["default_retry_interval_s"],
            voicemail_drop=row["default_voicemail_drop"],
        ),
        default_purpose=row["default_purpose"],
    )


def _no_account(account_id: UUID | str) -> UnknownAccount:
    return UnknownAccount(f"no account {account_id}")


# --- passwords (CPU-heavy: always in the bounded pool) --------------------------------------------------

_T = TypeVar("_T")
_pools: dict[int, ThreadPoolExecutor] = {}
_pool_size = [2]


def set_password_workers(workers: int) -> None:
    """At most ``workers`` argon2 hashes or checks at once (VOCALCAST_PASSWORD_WORKERS): a burst of logins
    queues here instead of taking every core and the default executor's threads."""
    _pool_size[0] = workers


def _pool() -> ThreadPoolExecutor:
    workers = _pool_size[0]
    if workers not in _pools:
        _pools[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
    return _pools[workers]


async def _in_pool(fn: Callable[..., _T], *args: object) -> _T:
    """Run ``fn`` off the event loop in the password pool."""
    return await asyncio.get_running_loop().run_in_executor(_pool(), functools.partial(fn, *args))


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    return _HASHER.hash("vocalcast-dummy-password")


def _verify_dummy(password: str) -> None:
    """Spend what a real verification costs, so an unknown e-mail answers no faster than a known one."""
    _verify(_dummy_hash(), password)


# --- accounts -------------------------------------------------------------------------------------------


async def create_account(
    db: Database,
    email: str,
    *,
    secret_key: str,
    password: str | None = None,
    credits: int = 0,
    reason: str = "crédit initial",
    default_purpose: Purpose = "information",
    company_name: str | None = None,
) -> NewAccount:
    """Create an account; the password (generated unless given) and the personal code are returned once.
    A commercial default purpose needs the company its calls name (``company_required``, issue 18)."""
    login = domain.normalize_email(email)
    if password is None:
        password = domain.generate_password()
    else:
        domain.check_password(password)
    if credits:
        domain.check_credit_amount(credits)
    if default_purpose not in PURPOSES:
        raise ValueError(f"unknown send purpose {default_purpose!r}")
    if default_purpose == "commercial" and company_name is None:
        raise _company_required()
    password_hash = await _in_pool(_HASHER.hash, password)
    for _ in range(_CODE_ATTEMPTS):
        code = domain.generate_code()
        try:
            async with db.transaction() as conn:
                account_id = await conn.fetchval(
                    "INSERT INTO accounts (email, password_hash, code_digest, default_purpose, company_name) "
                    "VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    login,
                    password_hash,
                    domain.code_digest(code, secret_key),
                    default_purpose,
                    company_name,
                )
                if credits:
                    await record_movement(
                        conn, account_id, kind="credit", amount=credits, held=0, reason=reason, send_id=None
                    )
                account = await _get(conn, account_id)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "accounts_code_digest":
                continue
            if exc.constraint_name == "accounts_email":
                raise InvalidInput(
                    "email_taken",
                    f"an account already uses {login}",
                    message_fr="Un compte existe déjà avec cette adresse e-mail.",
                ) from exc
            raise
        return NewAccount(account=account, password=password, code=code)
    raise RuntimeError(f"no unique personal code after {_CODE_ATTEMPTS} draws")


async def _get(conn: Executor, account_id: UUID, *, lock: bool = False) -> Account:
    query = f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = $1{' FOR UPDATE' if lock else ''}"  # noqa: S608 - constant columns
    row = await conn.fetchrow(query, account_id)
    if row is None:
        raise _no_account(account_id)
    return _account(row)


async def get_account(db: Executor, account_id: UUID) -> Account:
    return await _get(db, account_id)


async def account_by_email(db: Executor, email: str) -> Account:
    """The account whose login is ``email`` (any case), else NotFound."""
    login = domain.normalize_email(email)
    row = await db.fetchrow(
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE lower(email) = lower($1)",  # noqa: S608 - constant columns
        login,
    )
    if row is None:
        raise _no_account(login)
    return _account(row)


async def authenticate(db: Database, email: str, password: str) -> Account | None:
    """The account if ``password`` is its password, else None (same cost whether the e-mail exists or not)."""
    if len(password) > domain.PASSWORD_MAX_LENGTH:
        return None  # no stored password is that long; refusing early bounds the hashing work
    try:
        login: str | None = domain.normalize_email(email)
    except InvalidInput:
        login = None
    row = None
    if login is not None:
        row = await db.fetchrow(
            "SELECT id, password_hash FROM accounts WHERE lower(email) = lower($1)", login
        )
    if row is None:
        await _in_pool(_verify_dummy, password)
        return None
    if not await _in_pool(_verify, row["password_hash"], password):
        return None
    if _HASHER.check_needs_rehash(row["password_hash"]):
        # Parameters were raised since this hash was made: upgrade it while we hold the password.
        new_hash = await _in_pool(_HASHER.hash, password)
        await db.execute(
            "UPDATE accounts SET password_hash = $2 WHERE id = $1 AND password_hash = $3",
            row["id"],
            new_hash,
            row["password_hash"],
        )
    return await _get(db, row["id"])


async def hash_password(password: str | None = None) -> tuple[str, str]:
    """A new password (generated unless given, else checked) and its argon2 hash: (password, hash)."""
    if password is None:
        password = domain.generate_password()
    else:
        domain.check_password(password)
    return password, await _in_pool(_HASHER.hash, password)


async def store_password_hash(db: Executor, account_id: UUID, password_hash: str) -> None:
    status = await db.execute(
        "UPDATE accounts SET password_hash = $2 WHERE id = $1", account_id, password_hash
    )
    if rows_affected(status) == 0:
        raise _no_account(account_id)


async def set_password(db: Database, account_id: UUID, password: str | None = None) -> str:
    """Replace the password (generated unless given); returns it, the only time it is seen. Only the
    hash changes: the logins service also ends the sessions and revokes the tokens."""
    password, password_hash = await hash_password(password)
    await store_password_hash(db, account_id, password_hash)
    return password


async def find_by_code(db: Executor, code: str, *, secret_key: str) -> Account | None:
    """The account whose personal code is ``code`` (the recording IVR's lookup), else None."""
    if not domain.is_code(code):
        return None
    row = await db.fetchrow(
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE code_digest = $1",  # noqa: S608 - constant columns
        domain.code_digest(code, secret_key),
    )
    return _account(row) if row is not None else None


async def regenerate_code(db: Database, account_id: UUID, *, secret_key: str) -> str:
    """Give the account a new personal code (the old one stops working); returns it, seen only now."""
    for _ in range(_CODE_ATTEMPTS):
        code = domain.generate_code()
        digest = domain.code_digest(code, secret_key)
        try:
            # "<> $2": drawing the current code again would leave the old code working.
            changed = await db.fetchval(
                "UPDATE accounts SET code_digest = $2 WHERE id = $1 AND code_digest <> $2 RETURNING id",
                account_id,
                digest,
            )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "accounts_code_digest":
                continue
            raise
        if changed is not None:
            return code
        if await db.fetchval("SELECT 1 FROM accounts WHERE id = $1", account_id) is None:
            raise _no_account(account_id)
    raise RuntimeError(f"no unique personal code after {_CODE_ATTEMPTS} draws")


async def set_options(
    db: Database,
    account_id: UUID,
    *,
    allow_international: bool | None = None,
    allow_voicemail_drop: bool | None = None,
) -> Account:
    """Change the account's options; defaults they no longer allow are switched off with them."""
    async with db.transaction() as conn:
        account = await _get(conn, account_id)
        international = account.allow_international if allow_international is None else allow_international
        drop = account.allow_voicemail_drop if allow_voicemail_drop is None else allow_voicemail_drop
        transfer = account.defaults.transfer_number
        if transfer is not None:
            try:
                domain.check_transfer(transfer, allow_international=international)
            except InvalidInput:
                transfer = None
        await conn.execute(
            "UPDATE accounts SET allow_international = $2, allow_voicemail_drop = $3, "
            "default_voicemail_drop = default_voicemail_drop AND $3, default_transfer_number = $4 "
            "WHERE id = $1",
            account_id,
            international,
            drop,
            transfer,
        )
        return await _get(conn, account_id)


# --- default send options -------------------------------------------------------------------------------


async def set_defaults(db: Executor, account_id: UUID, defaults: SendDefaults) -> Account:
    """Store the default send options after checking they are the account's own and usable.

    The greeting must be a live greeting message of the account, the sender number one of its verified
    numbers, the transfer number valid for its options, voicemail drop allowed by its options.
    """
    async with in_transaction(db) as conn:
        account = await conn.fetchrow(
            "SELECT allow_international, allow_voicemail_drop FROM accounts WHERE id = $1 FOR UPDATE",
            account_id,
        )
        if account is None:
            raise _no_account(account_id)
        if defaults.greeting_message_id is not None:
            greeting = await conn.fetchrow(
                "SELECT is_greeting FROM messages WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL "
                "FOR SHARE",
                defaults.greeting_message_id,
                account_id,
            )
            if greeting is None or not greeting["is_greeting"]:
                raise InvalidInput(
                    "greeting_invalid",
                    f"message {defaults.greeting_message_id} is not a greeting of account {account_id}",
                    message_fr="Ce message n'est pas un message d'accueil de votre compte.",
                )
        if defaults.sender_number_id is not None:
            status = await conn.fetchval(
                "SELECT status FROM sender_numbers WHERE id = $1 AND account_id = $2 FOR SHARE",
                defaults.sender_number_id,
                account_id,
            )
            if status != "verified":
                raise InvalidInput(
                    "sender_not_verified",
                    f"sender number {defaults.sender_number_id} is not a verified number of {account_id}",
                    message_fr="Ce numéro émetteur n'a pas encore été vérifié par nos services.",
                )
        transfer = defaults.transfer_number
        if transfer is not None:
            transfer = domain.check_transfer(transfer, allow_international=account["allow_international"])
        if defaults.voicemail_drop and not account["allow_voicemail_drop"]:
            raise InvalidInput(
                "voicemail_drop_disabled",
                "voicemail drop is not enabled on this account",
                message_fr="Le dépôt sur répondeur n'est pas activé sur ce compte.",
            )
        await conn.execute(
            "UPDATE accounts SET default_greeting_enabled = $2, default_greeting_message_id = $3, "
            "default_transfer_number = $4, default_sender_number_id = $5, default_retries = $6, "
            "default_retry_interval_s = $7, default_voicemail_drop = $8 WHERE id = $1",
            account_id,
            defaults.greeting_enabled,
            defaults.greeting_message_id,
            transfer,
            defaults.sender_number_id,
            defaults.retries,
            defaults.retry_interval_s,
            defaults.voicemail_drop,
        )
        if defaults.greeting_message_id is not None:  # chosen by the customer: it waits no more
            await conn.execute(
                "UPDATE messages SET greeting_pending = false WHERE id = $1 AND greeting_pending",
                defaults.greeting_message_id,
            )
        return await _get(conn, account_id)


# Why a company name is required (code company_required), as the customer reads it (issue 18).
_COMPANY_REQUIRED_FR: Final = {
    "create": (
        "Un compte dont les envois sont commerciaux par défaut doit porter le nom de l'entreprise que ses "
        "appels annoncent."
    ),
    "purpose": (
        "Indiquez d'abord le nom de votre entreprise : un appel commercial doit annoncer pour le compte de "
        "qui il appelle."
    ),
    "default": (
        "Le nom de l'entreprise ne peut pas être retiré tant que vos envois sont commerciaux par défaut : "
        "passez-les d'abord en information."
    ),
    "sends": (
        "Le nom de l'entreprise ne peut pas être retiré tant qu'un envoi commercial n'est pas terminé : ses "
        "appels l'annoncent."
    ),
}


def _company_required(why: str = "create") -> InvalidInput:
    return InvalidInput(
        "company_required",
        "an account whose default purpose is commercial, or with commercial sends not finished, must have "
        f"a company name (article L221-16): {why}",
        message_fr=_COMPANY_REQUIRED_FR[why],
    )


async def set_company_name(db: Executor, account_id: UUID, name: str | None) -> None:
    """The company a commercial call of the account names in its preamble (issue 18); None: none, refused
    (``company_required``) while the account's default purpose is commercial or a commercial send of it is
    not finished (its calls would name nobody).

    The account's row is locked first, and the check is a later statement: a send whose credits were
    reserved (which locks that row) is committed by then and seen; a send reserving after this commits
    reads the name again once it holds the row (engine/services/sends.py), and is refused."""
    async with in_transaction(db) as conn:
        await _get(conn, account_id, lock=True)  # no such account: UnknownAccount
        status = await conn.execute(
            "UPDATE accounts a SET company_name = $2::text WHERE a.id = $1 AND ($2::text IS NOT NULL OR "
            "(a.default_purpose <> 'commercial' AND NOT EXISTS (SELECT 1 FROM sends s WHERE "
            "s.account_id = a.id AND s.purpose = 'commercial' "
            "AND s.status IN ('scheduled', 'running', 'paused'))))",
            account_id,
            name,
        )
        if not rows_affected(status):
            purpose = await conn.fetchval("SELECT default_purpose FROM accounts WHERE id = $1", account_id)
            raise _company_required("default" if purpose == "commercial" else "sends")


async def company_name(db: Executor, account_id: UUID) -> str | None:
    name: str | None = await db.fetchval("SELECT company_name FROM accounts WHERE id = $1", account_id)
    return name


async def set_default_purpose(db: Executor, account_id: UUID, purpose: Purpose) -> None:
    """The purpose of the account's http.php and e-mail sends (information or commercial); commercial only
    for an account with a company name (``company_required``, issue 18), decided in one statement."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown send purpose {purpose!r}")
    status = await db.execute(
        "UPDATE accounts SET default_purpose = $2::text WHERE id = $1 "
        "AND ($2::text <> 'commercial' OR company_name IS NOT NULL)",
        account_id,
        purpose,
    )
    if not rows_affected(status):
        await _get(db, account_id)  # no such account: UnknownAccount
        raise _company_required("purpose")
