"""« Tableau de bord »: credits and recent movements, the recording number and the personal code, the
sends in progress (their progress is refreshed by static/app.js from /historique/progression.json)."""

from __future__ import annotations

from aiohttp import web

from engine.web.ui.core import Page, page

LEDGER_SHOWN = 10
UNFINISHED_SHOWN = 20


async def _render(p: Page, *, new_code: str = "") -> web.Response:
    account = p.account
    services = p.services
    ledger = await services.accounts.ledger(account.id, limit=LEDGER_SHOWN)
    unfinished = await services.sends.unfinished(account.id, limit=UNFINISHED_SHOWN)
    counters = {c.id: c for c in await services.sends.counters(account.id, [s.id for s in unfinished])}
    return p.render(
        "dashboard.html",
        ledger=ledger,
        unfinished=[(s, counters[s.id]) for s in unfinished if s.id in counters],
        recording_number=p.settings.recording_number,
        new_code=new_code,
    )


@page
async def dashboard(p: Page) -> web.StreamResponse:
    return await _render(p)


@page
async def new_code(p: Page) -> web.StreamResponse:
    """The code is kept only as a keyed hash (nobody can read it back): "showing" it means giving a new
    one, shown on this response only — never redirected through a cookie or a URL."""
    code = await p.services.accounts.new_code(p.account.id)
    return await _render(p, new_code=code)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/tableau-de-bord", dashboard)
    app.router.add_post("/tableau-de-bord/code", new_code)
