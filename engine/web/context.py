"""What every web handler reaches through its application: the services room (and, while the pages move
to the services, the database pool)."""

from __future__ import annotations

from aiohttp import web

from engine.services import Services
from engine.store.db import Database

SERVICES: web.AppKey[Services] = web.AppKey("services", Services)
# Transitional: pages not yet moved to the services still query the store through this pool.
DB: web.AppKey[Database] = web.AppKey("db", Database)


def services_of(request: web.Request) -> Services:
    return request.config_dict[SERVICES]
