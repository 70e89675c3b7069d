"""Free broadcasting through the greeting (issue 17): a greeting plays to everyone who answers, even to
those who never confirm (free, retried). An advert uploaded as a greeting, or a long message chosen as a
send's greeting, is refused in French; a short greeting still works. On the real engine over HTTP."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.app import Engine
from engine.store import Database
from engine.store.tokens import create_token
from lab import tones
from tests.integration.dialing import Customer
from tests.support.sendbody import send_body

pytestmark = pytest.mark.integration


def wav(tmp: Path, seconds: float) -> bytes:
    path = tmp / f"tone-{seconds:g}.wav"
    tones.write_wav(path, tones.sine(600.0, seconds, 0.4))
    return path.read_bytes()


async def api(engine: Engine, token: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{engine.http_port}/api/v1{path}"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http, http.request(method, url, headers=headers, **kwargs) as resp:
        return resp.status, await resp.json()


def upload(content: bytes, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(content), filename="pub.wav", content_type="audio/wav")
    for name, value in fields.items():
        form.add_field(name, value)
    return form


async def test_an_advert_cannot_be_a_greeting(
    engine: Engine, client: Customer, db: Database, tmp_path: Path
) -> None:
    assert engine.settings.greeting_max_s == 30
    token = (await create_token(db, client.account.id, label="t")).secret
    advert = wav(tmp_path, 40.0)

    # Uploaded as a greeting: refused, in French, nothing stored.
    status, body = await api(engine, token, "POST", "/messages", data=upload(advert, greeting="1"))
    assert status == 422, body
    assert body["code"] == "greeting_too_long"
    assert "30 secondes" in body["message"]
    assert await db.fetchval("SELECT count(*) FROM messages WHERE is_greeting") == 0

    # The same file as a message is fine; chosen as a send's greeting, it is refused and nothing is sent.
    status, long_message = await api(engine, token, "POST", "/messages", data=upload(advert))
    assert status == 201, long_message
    send = send_body(
        {"message_ref": client.message.ref, "numbers": ["0612345678"], "greeting_ref": long_message["ref"]}
    )
    status, body = await api(engine, token, "POST", "/sends", json=send)
    assert status == 400, body
    assert body["code"] == "greeting_too_long"
    assert await db.fetchval("SELECT count(*) FROM sends") == 0

    # A greeting within the limit is still accepted, and greets a send.
    status, greeting = await api(
        engine, token, "POST", "/messages", data=upload(wav(tmp_path, 20.0), greeting="1")
    )
    assert status == 201, greeting
    send["greeting_ref"] = greeting["ref"]
    status, body = await api(engine, token, "POST", "/sends", json=send)
    assert status == 201, body
