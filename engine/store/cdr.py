"""Asterisk's CDR role on a database the engine does not administer (VOCALCAST_DATABASE_URL): what
Asterisk's cdr_pgsql may do there, granted by the owner of the tables (the engine's role, which ran
the migrations). The project-owned cluster grants the same as its superuser (engine/stack/postgres.py)."""

from __future__ import annotations

from typing import Final

from engine.store.db import Database

CDR_ROLE: Final = "asterisk_cdr"


async def grant_cdr_insert(db: Database) -> bool:
    """INSERT on asterisk_cdr (and its id sequence) for the CDR role, and nothing else; False when the
    role does not exist on that server (the operator creates it, with its password)."""
    async with db.transaction() as conn:
        if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", CDR_ROLE) is None:
            return False
        await conn.execute(f"GRANT USAGE ON SCHEMA public TO {CDR_ROLE}")
        await conn.execute(f"GRANT INSERT ON asterisk_cdr TO {CDR_ROLE}")
        await conn.execute(f"GRANT USAGE ON SEQUENCE asterisk_cdr_id_seq TO {CDR_ROLE}")
    return True
