"""CSRF on every state-changing request of the pages, whatever the body's encoding, and redirects after
login only to our own paths — on the real engine over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from engine.app import Engine
from engine.store import Database
from engine.store.tokens import create_token
from engine.web import routes
from tests.integration.dialing import Customer
from tests.integration.uiclient import UiClient
from tests.security.conftest import PASSWORD

pytestmark = pytest.mark.integration


def multipart(fields: dict[str, str], *, with_file: bool = False) -> aiohttp.MultipartWriter:
    writer = aiohttp.MultipartWriter("form-data")
    for name, value in fields.items():
        part = writer.append(value)
        part.set_content_disposition("form-data", name=name)
    if with_file:
        part = writer.append(b"RIFF....WAVE", {"Content-Type": "audio/wav"})
        part.set_content_disposition("form-data", name="file", filename="x.wav")
    return writer


def bodies(csrf_wrong: str) -> dict[str, dict[str, Any]]:
    """One forged request body per encoding a browser (or a script) can send cross-site."""
    fields = {"label": "pirate", "title": "pirate", "email": "x@example.fr", "password": "x"}
    return {
        "urlencoded, no token": {"data": fields},
        "urlencoded, wrong token": {"data": {**fields, "csrf": csrf_wrong}},
        "multipart, no token": {"data": multipart(fields)},
        "multipart with a file, no token": {"data": multipart(fields, with_file=True)},
        "multipart, wrong token": {"data": multipart({"csrf": csrf_wrong, **fields})},
        "text/plain": {"data": "csrf=x&label=pirate", "headers": {"Content-Type": "text/plain"}},
        "json": {"json": fields},
        "empty": {},
    }


def post_routes(engine: Engine, values: dict[str, str]) -> list[str]:
    """Every POST path of the pages (the API authenticates by bearer token, http.php by password)."""
    app = routes.build(engine.services)
    paths = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if route.method != "POST" or not path or path.startswith("/api/") or path == "/http.php":
            continue
        for name, value in values.items():
            path = path.replace("{" + name + "}", value)
        paths.append(path)
    return sorted(set(paths))


async def state(db: Database, customer: Customer) -> dict[str, object]:
    account_id = customer.account.id
    return {
        "messages": await db.fetchval(
            "SELECT count(*) FROM messages WHERE account_id = $1 AND deleted_at IS NULL", account_id
        ),
        "titles": await db.fetchval("SELECT array_agg(title ORDER BY id) FROM messages"),
        "tokens": await db.fetchval("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL"),
        "all tokens": await db.fetchval("SELECT count(*) FROM api_tokens"),
        "code": await db.fetchval("SELECT code_digest FROM accounts WHERE id = $1", account_id),
        "password": await db.fetchval("SELECT password_hash FROM accounts WHERE id = $1", account_id),
        "sessions": await db.fetchval("SELECT count(*) FROM web_sessions"),
        "sends": await db.fetchval("SELECT count(*) FROM sends"),
        "contacts": await db.fetchval("SELECT count(*) FROM contacts"),
        "groups": await db.fetchval("SELECT count(*) FROM contact_groups"),
        "senders": await db.fetchval("SELECT count(*) FROM sender_numbers"),
        "resets": await db.fetchval("SELECT count(*) FROM password_resets"),
    }


async def test_every_state_changing_page_refuses_a_forged_request_in_every_encoding(
    engine: Engine, client: Customer, db: Database
) -> None:
    token = await create_token(db, client.account.id, label="script")
    browser = UiClient(engine)
    try:
        assert (await browser.login(client.account.email, PASSWORD)).status == 200
        await browser.get("/parametres")
        values = {
            "ref": str(client.message.ref),
            "token_id": str(token.token.id),
            "send_id": str(uuid.uuid4()),
            "event_id": str(uuid.uuid4()),
            "group_id": "1",
            "contact_id": "1",
            "token": "x" * 43,
        }
        paths = post_routes(engine, values)
        # Logout, message delete, token create/revoke, both code regenerations among them.
        for needed in ("/deconnexion", f"/messages/{client.message.ref}/supprimer", "/parametres/jetons",
                       f"/parametres/jetons/{token.token.id}/revoquer", "/parametres/code",
                       "/tableau-de-bord/code", "/messages/nouveau", "/contacts/transfert"):  # fmt: skip
            assert needed in paths
        before = await state(db, client)
        wrong = browser.csrf[:-4] + "AAAA"
        accepted = []
        for path in paths:
            for encoding, body in bodies(wrong).items():
                async with browser.http.post(browser.base + path, allow_redirects=False, **body) as resp:
                    if resp.status != 403:
                        accepted.append((path, encoding, resp.status))
        assert accepted == []
        assert await state(db, client) == before
        # Still logged in (the forged logouts did nothing) …
        assert (await browser.get("/tableau-de-bord")).status == 200
        # … and a genuine multipart form, token included, still works.
        revoke = multipart({"csrf": browser.csrf})
        path = f"/parametres/jetons/{token.token.id}/revoquer"
        async with browser.http.post(browser.base + path, data=revoke, allow_redirects=False) as resp:
            assert resp.status == 303
        assert await db.fetchval("SELECT revoked_at IS NOT NULL FROM api_tokens") is True
    finally:
        await browser.close()


@pytest.mark.parametrize(
    "suite",
    [
        "/%09/evil.example",
        "/\t/evil.example",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\\/evil.example",
        "https://evil.example/",
        "http:evil.example",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        " //evil.example",
        "/\n/evil.example",
    ],
)
async def test_after_login_only_our_own_paths(engine: Engine, client: Customer, suite: str) -> None:
    browser = UiClient(engine)
    try:
        await browser.get("/connexion")
        form = {"email": client.account.email, "password": PASSWORD, "suite": suite}
        answer = await browser.post("/connexion", form, allow_redirects=False)
        assert answer.status == 303
        assert answer.headers["Location"] == "/tableau-de-bord"
        # Logged in, the GET form redirects at once: same rule.
        async with browser.http.get(
            browser.base + "/connexion", params={"suite": suite}, allow_redirects=False
        ) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/tableau-de-bord"
    finally:
        await browser.close()


async def test_after_login_our_own_paths_are_kept(engine: Engine, client: Customer) -> None:
    browser = UiClient(engine)
    try:
        await browser.get("/connexion")
        form = {"email": client.account.email, "password": PASSWORD, "suite": "/historique?page=2"}
        answer = await browser.post("/connexion", form, allow_redirects=False)
        assert (answer.status, answer.headers["Location"]) == (303, "/historique?page=2")
    finally:
        await browser.close()
