"""`vocalcast migrate`: apply the sql/ migrations not yet applied (idempotent)."""

from __future__ import annotations

import argparse
import asyncio

from engine.settings import Settings
from engine.store import migrate


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("migrate", help="apply the database migrations in sql/")
    parser.set_defaults(func=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    applied = asyncio.run(migrate(settings.dsn))
    print("\n".join(f"applied {name}" for name in applied) or "database is up to date")
    return 0
