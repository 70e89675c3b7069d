"""An Asterisk still booting answers on its HTTP port before res_ari is loaded: its own HTML 404 page means
"ARI not there yet" (AriUnavailable: try later), not "that channel or module is gone" (AriNotFound, which
ARI says in JSON). Found by `make smoke`: the edge's `trunk apply` met a media server mid-boot and failed
instead of counting it as not running (its trunks are written; it reads them when it starts)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from engine.telephony.ari import AriClient, AriNotFound, AriUnavailable

HTML_404 = (
    '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n<title>404 Not Found</title>\n'
    "</head><body>\n<h1>Not Found</h1>\n<p>The requested URL was not found on this server.</p>\n"
    "<hr />\n<address>vocalcast</address>\n</body></html>\n"
)


@pytest.fixture
async def asterisk() -> AsyncIterator[int]:
    async def booting(_request: web.Request) -> web.Response:
        return web.Response(status=404, text=HTML_404, content_type="text/html")

    async def gone(_request: web.Request) -> web.Response:
        return web.json_response({"message": "Module could not be found in running modules"}, status=404)

    app = web.Application()
    app.router.add_put("/ari/asterisk/modules/res_pjsip.so", booting)
    app.router.add_put("/ari/asterisk/modules/res_gone.so", gone)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port
    finally:
        await runner.cleanup()


async def test_an_html_404_means_ari_is_not_there_yet_and_a_json_one_means_gone(asterisk: int) -> None:
    async with AriClient(host="127.0.0.1", port=asterisk, user="u", password="p", app="t") as ari:
        with pytest.raises(AriUnavailable, match="not mounted yet"):
            await ari.reload_module("res_pjsip.so")
        with pytest.raises(AriNotFound, match="Module could not be found"):
            await ari.reload_module("res_gone.so")
