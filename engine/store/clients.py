"""The networks an account's machine interfaces (http.php, the API) are limited to (sql/0015)."""

from __future__ import annotations

import ipaddress
from uuid import UUID

from engine.store.db import Database, Executor

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


async def allowed_networks(db: Executor, account_id: UUID) -> list[Network]:
    """The account's networks, in order; empty when it may be used from anywhere."""
    rows = await db.fetch(
        "SELECT network FROM account_clients WHERE account_id = $1 ORDER BY network", account_id
    )
    return [ipaddress.ip_network(r["network"]) for r in rows]


async def set_allowed_networks(db: Database, account_id: UUID, networks: list[Network]) -> None:
    """Replace the account's networks (an empty list: from anywhere again)."""
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM account_clients WHERE account_id = $1", account_id)
        await conn.execute(
            "INSERT INTO account_clients (account_id, network) SELECT $1, unnest($2::cidr[])",
            account_id,
            [str(n) for n in networks],
        )
