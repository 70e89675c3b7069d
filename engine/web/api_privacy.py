"""API: personal data (RGPD) — the account's archive, and everything the account holds about one phone
number (find, download, erase); the account's stop list import (issue 18). The use cases:
engine/services/privacy.py, engine/services/stoplists.py."""

from __future__ import annotations

from aiohttp import web

from engine.errors import InvalidInput
from engine.services.contacts_import import MAX_IMPORT_BYTES
from engine.services.privacy import check_number
from engine.web.api_common import ApiError, account_of, json_response, read_upload
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


async def import_stop_list(request: web.Request) -> web.Response:
    """The account's own stop list ("liste d'opposition", issue 18): a file of clear numbers or SHA-256
    hashes of their E.164 form; no send of the account calls them again, whatever its purpose."""
    account = account_of(request)
    too_large_fr = f"Fichier trop volumineux ({MAX_IMPORT_BYTES // (1024 * 1024)} Mo au plus)."
    upload = await read_upload(
        request, fields=frozenset(), max_bytes=MAX_IMPORT_BYTES, too_large_fr=too_large_fr
    )
    try:
        done = await services_of(request).stoplists.import_file(account.id, upload.data)
    except InvalidInput as exc:
        if exc.code == "not_csv":
            raise ApiError(422, exc.code, exc.message_fr) from exc
        raise
    return json_response(
        {
            "read": done.read,
            "added": done.added,
            "refused": [{"line": line, "input": value} for line, value in done.refused],
        }
    )


def add_routes(api: web.Application) -> None:
    api.router.add_post("/account/stoplist", import_stop_list)
    api.router.add_get("/account/export", export_account, allow_head=False)
    api.router.add_get("/privacy/numbers/{number}", find_number, allow_head=False)
    api.router.add_delete("/privacy/numbers/{number}", erase_number)
    api.router.add_get("/privacy/numbers/{number}/export", export_number, allow_head=False)
