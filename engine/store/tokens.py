"""API tokens of an account: created (the token is seen once), looked up by their SHA-256, listed, revoked.

The database keeps only a token's SHA-256: a token has 256 bits of entropy, so a fast hash is enough,
and a lookup by hash gives away nothing about the tokens it does not match.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final
from uuid import UUID

import asyncpg

from engine.domain.accounts import UnknownAccount
from engine.domain.tokens import PREFIX, ApiToken, NewToken, check_label
from engine.errors import NotFound
from engine.store.db import Executor, rows_affected

TOKEN_BYTES: Final = 32
# Longest text that can be a token (prefix + 43 base64 characters); longer input is refused unhashed.
TOKEN_MAX_LENGTH: Final = 64
# last_used_at is a hint for the customer, not an audit log: written at most once a minute per token,
# so that a busy script does not rewrite the row on every request.
LAST_USED_RESOLUTION_S: Final = 60

_COLUMNS: Final = "id, account_id, label, created_at, last_used_at, revoked_at"


def _token(row: asyncpg.Record) -> ApiToken:
    return ApiToken(
        id=row["id"],
        account_id=row["account_id"],
        label=row["label"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_token(db: Executor, account_id: UUID, *, label: str = "") -> NewToken:
    """A new token for the account; its secret is returned here and never again."""
    clean = check_label(label)
    secret = PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    try:
        row = await db.fetchrow(
            f"INSERT INTO api_tokens (account_id, token_sha256, label) VALUES ($1, $2, $3) "  # noqa: S608 - constant columns
            f"RETURNING {_COLUMNS}",
            account_id,
            digest(secret),
            clean,
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise UnknownAccount(f"no account {account_id}") from exc
    assert row is not None  # noqa: S101 - INSERT ... RETURNING always returns the row
    return NewToken(_token(row), secret)


async def authenticate(db: Executor, secret: str) -> ApiToken | None:
    """The live token whose secret this is, else None; notes when it was last used."""
    if not secret.startswith(PREFIX) or len(secret) > TOKEN_MAX_LENGTH or not secret.isascii():
        return None
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM api_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL",  # noqa: S608 - constant columns
        digest(secret),
    )
    if row is None:
        return None
    await db.execute(
        "UPDATE api_tokens SET last_used_at = now() WHERE id = $1 AND revoked_at IS NULL "
        "AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))",
        row["id"],
        LAST_USED_RESOLUTION_S,
    )
    return _token(row)


async def list_tokens(db: Executor, account_id: UUID) -> list[ApiToken]:
    """The account's tokens, revoked ones included, oldest first."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM api_tokens WHERE account_id = $1 ORDER BY id",  # noqa: S608 - constant columns
        account_id,
    )
    return [_token(r) for r in rows]


async def revoke_token(db: Executor, account_id: UUID, token_id: int) -> ApiToken:
    """Revoke the account's token (it stops working at once); revoking it again changes nothing.

    Another account's token is NotFound.
    """
    row = await db.fetchrow(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) "  # noqa: S608 - constant columns
        f"WHERE account_id = $1 AND id = $2 RETURNING {_COLUMNS}",
        account_id,
        token_id,
    )
    if row is None:
        raise NotFound(f"account {account_id} has no API token {token_id}", message_fr="Jeton introuvable.")
    return _token(row)


async def revoke_all(db: Executor, account_id: UUID) -> int:
    """Revoke every live token of the account (its password changed); returns how many."""
    status = await db.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL", account_id
    )
    return rows_affected(status)
