"""PostgreSQL access: the asyncpg pool, migrations and every SQL query of the engine."""

from engine.store.db import Database, migrate

__all__ = ["Database", "migrate"]
