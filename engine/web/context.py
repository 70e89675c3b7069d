"""What every web handler reaches through its application: the services room."""

from __future__ import annotations

from aiohttp import web

from engine.services import Services

SERVICES: web.AppKey[Services] = web.AppKey("services", Services)


def services_of(request: web.Request) -> Services:
    return request.config_dict[SERVICES]
