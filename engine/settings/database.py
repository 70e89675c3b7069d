"""PostgreSQL and the server's keyed-hash secret."""

from __future__ import annotations

from dataclasses import dataclass

from engine.settings.fields import boolean, port, positive_int, setting, text


@dataclass(frozen=True)
class DatabaseSettings:
    """PostgreSQL and the server's keyed-hash secret."""

    # --- PostgreSQL ------------------------------------------------------------------------------
    database_url: str = setting(
        "VOCALCAST_DATABASE_URL",
        text,
        "",
        "PostgreSQL DSN; empty: the project-owned cluster in the state dir.",
    )
    pg_port: int = setting(
        "VOCALCAST_PG_PORT", port, "15432", "Port of the project-owned PostgreSQL cluster (127.0.0.1)."
    )
    pg_fsync: bool = setting(
        "VOCALCAST_PG_FSYNC", boolean, "1", "fsync in the project-owned cluster (tests turn it off)."
    )
    db_password: str = setting(
        "VOCALCAST_DB_PASSWORD",
        text,
        None,
        "Password of the engine's role in the project-owned cluster (generated).",
        secret=True,
    )
    cdr_db_password: str = setting(
        "VOCALCAST_CDR_DB_PASSWORD",
        text,
        None,
        "Password of Asterisk's CDR role, INSERT-only on asterisk_cdr (generated).",
        secret=True,
    )
    # Issue 19, fencing at the edge: Kamailio checks each originate's node epoch in PostgreSQL.
    edge_db_password: str = setting(
        "VOCALCAST_EDGE_DB_PASSWORD",
        text,
        None,
        "Password of the Kamailio edge's role, SELECT-only on the nodes table (generated; a cluster).",
        secret=True,
    )
    db_pool_max: int = setting("VOCALCAST_DB_POOL_MAX", positive_int, "20", "Database pool size.")
    secret_key: str = setting(
        "VOCALCAST_SECRET_KEY",
        text,
        None,
        "Server secret for keyed hashes (personal codes) and sessions (generated on first stack up).",
        secret=True,
    )
