"""API: personal data (RGPD) — the account's archive, and everything the account holds about one phone
number (find, download, erase). The use cases: engine/services/privacy.py."""

from __future__ import annotations

from aiohttp import web

from engine.services.privacy import check_number
from engine.web.api_common import account_of, json_response
from engine.web.context import services_of
from engine.web.downloads import export_path, send_archive


async def export_account(request: web.Request) -> web.StreamResponse:
    services = services_of(request)
    done = await services.privacy.export_account(account_of(request).id, export_path(services.settings))
    return await send_archive(request, done, "vocalcast-mes-donnees.zip")


async def find_number(request: web.Request) -> web.Response:
    raw = request.match_info["number"]
    counts = await services_of(request).privacy.find_number(account_of(request).id, raw)
    return json_response({"number": check_number(raw), "counts": counts})


async def export_number(request: web.Request) -> web.StreamResponse:
    services = services_of(request)
    raw = request.match_info["number"]
    done = await services.privacy.export_number(account_of(request).id, raw, export_path(services.settings))
    return await send_archive(request, done, "vocalcast-numero.zip")


async def erase_number(request: web.Request) -> web.Response:
    raw = request.match_info["number"]
    erased = await services_of(request).privacy.erase_number(account_of(request).id, raw)
    return json_response({"number": check_number(raw), "erased": erased})


def add_routes(api: web.Application) -> None:
    api.router.add_get("/account/export", export_account, allow_head=False)
    api.router.add_get("/privacy/numbers/{number}", find_number, allow_head=False)
    api.router.add_delete("/privacy/numbers/{number}", erase_number)
    api.router.add_get("/privacy/numbers/{number}/export", export_number, allow_head=False)
