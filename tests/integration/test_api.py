"""The JSON REST API through real HTTP against the engine and the real PostgreSQL: every endpoint's happy
path and errors, isolation between accounts, idempotency, tokens, throttling, the OpenAPI document (its
paths are exactly the router's) and schema-driven fuzzing of it with schemathesis."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import json
import subprocess
import sys
import wave
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import pytest

from engine.app import Engine
from engine.domain.schedule import format_deferred
from engine.services.messages import Messages
from engine.settings import Settings
from engine.store import Database, credits, senders
from engine.store import accounts as accounts_store
from engine.store import sends as sends_store
from engine.store import tokens as tokens_store
from engine.web import openapi, routes
from engine.web.api_common import PREFIX
from lab import tones
from tests.integration.dialing import Customer, customer
from tests.support.sendbody import send_body

pytestmark = pytest.mark.integration
OWN_TOKEN = "the client's own token"  # a marker: the Client's token is sent


@pytest.fixture
async def engine(stack_settings: Settings, db: Database) -> AsyncIterator[Engine]:
    running = Engine(stack_settings)
    running.run_dialer = False  # sends are created, not called: this is about the interface
    running.run_mail = False
    async with running:
        yield running


@dataclass
class Answer:
    status: int
    body: Any
    headers: Any
    raw: bytes


@dataclass
class Client:
    """One account seen through the API with its token."""

    engine: Engine
    who: Customer
    token: str
    http: aiohttp.ClientSession

    @property
    def account_id(self) -> UUID:
        return self.who.account.id

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        token: str | None = OWN_TOKEN,
    ) -> Answer:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {self.token if token is OWN_TOKEN else token}"
        url = f"http://127.0.0.1:{self.engine.http_port}{PREFIX}{path}"
        async with self.http.request(method, url, json=json_body, data=data, headers=sent) as resp:
            raw = await resp.read()
            body: Any = raw
            if resp.content_type == "application/json":
                body = json.loads(raw)
            return Answer(resp.status, body, resp.headers, raw)


async def _client(engine: Engine, db: Database, tmp: Path, email: str, credits: int) -> Client:
    who = await customer(db, engine.settings, tmp, credits=credits, email=email)
    new = await tokens_store.create_token(db, who.account.id, label="tests")
    http = aiohttp.ClientSession()
    return Client(engine, who, new.secret, http)


@pytest.fixture
async def alice(engine: Engine, db: Database, tmp_path: Path) -> AsyncIterator[Client]:
    client = await _client(engine, db, tmp_path / "alice", "alice@example.fr", credits=20)
    yield client
    await client.http.close()


@pytest.fixture
async def bob(engine: Engine, db: Database, tmp_path: Path) -> AsyncIterator[Client]:
    client = await _client(engine, db, tmp_path / "bob", "bob@example.fr", credits=20)
    yield client
    await client.http.close()


@pytest.fixture(autouse=True)
def _tmp_dirs(tmp_path: Path) -> None:
    (tmp_path / "alice").mkdir()
    (tmp_path / "bob").mkdir()


def expect_error(answer: Answer, status: int, code: str | None = None) -> dict[str, Any]:
    assert answer.status == status, (answer.status, answer.body)
    assert isinstance(answer.body, dict), answer.body
    assert set(answer.body) >= {"code", "message"}
    assert answer.body["message"]  # French text for the customer
    if code is not None:
        assert answer.body["code"] == code, answer.body
    return answer.body


# --- the document and the router ------------------------------------------------------------------------


def _api_routes(engine: Engine) -> set[tuple[str, str]]:
    app = routes.build(engine.services)
    found = set()
    for resource in app.router.resources():
        sub = getattr(resource, "_app", None)
        if sub is None:
            continue
        for route in sub.router.routes():
            found.add((route.method.lower(), route.resource.canonical))
    return found


async def test_openapi_published_and_router_matches_it_exactly(engine: Engine, alice: Client) -> None:
    answer = await alice.call("GET", "/openapi.json", token=None)  # public
    assert answer.status == 200
    assert answer.body == json.loads(json.dumps(openapi.document()))
    spec = answer.body
    assert spec["openapi"].startswith("3.1")
    in_spec = {(method, PREFIX + path) for path, operations in spec["paths"].items() for method in operations}
    in_router = _api_routes(engine)
    assert all(path.startswith(PREFIX + "/") for _, path in in_router)
    assert in_router == in_spec, (in_router - in_spec, in_spec - in_router)
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert "default" not in statuses, (method, path)
            assert all(s.isdigit() for s in statuses), (method, path)
            if operation.get("security") != []:
                assert {"401", "429", "503"} <= statuses, (method, path)
            if any(p["in"] == "path" for p in operation.get("parameters", [])):
                assert "404" in statuses, (method, path)
            if "requestBody" in operation:
                assert {"400", "413"} <= statuses, (method, path)
    # Every API send states its purpose (issue 18).
    assert spec["components"]["schemas"]["SendCreate"]["required"] == ["message_ref", "purpose"]


# --- tokens and throttling ------------------------------------------------------------------------------


async def test_missing_bad_and_revoked_tokens(
    engine: Engine, alice: Client, bob: Client, db: Database
) -> None:
    answer = await alice.call("GET", "/account", token=None)
    expect_error(answer, 401, "unauthorized")
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    expect_error(await alice.call("GET", "/account", token="vc_not-a-real-token"), 401, "unauthorized")
    expect_error(
        await alice.call("GET", "/account", headers={"Authorization": f"Basic {alice.token}"}, token=None),
        401,
    )
    assert (await alice.call("GET", "/account")).status == 200

    second = await tokens_store.create_token(db, alice.account_id, label="script de relance")
    listed = await alice.call("GET", "/tokens")
    assert listed.status == 200
    assert [t["label"] for t in listed.body["tokens"]] == ["tests", "script de relance"]
    assert all("token" not in t for t in listed.body["tokens"])
    assert listed.body["tokens"][0]["last_used_at"] is not None  # alice's token has been used

    # bob cannot see nor revoke alice's token
    expect_error(await bob.call("DELETE", f"/tokens/{second.token.id}"), 404, "not_found")
    assert (await alice.call("GET", "/account", token=second.secret)).status == 200
    assert (await alice.call("DELETE", f"/tokens/{second.token.id}")).status == 204
    assert (await alice.call("DELETE", f"/tokens/{second.token.id}")).status == 204  # idempotent
    expect_error(await alice.call("GET", "/account", token=second.secret), 401, "unauthorized")
    listed = await alice.call("GET", "/tokens")
    assert listed.body["tokens"][1]["revoked_at"] is not None
    expect_error(await alice.call("DELETE", "/tokens/999999"), 404)
    expect_error(await alice.call("DELETE", "/tokens/abc"), 404)


async def test_failed_tokens_are_throttled_with_retry_after(
    engine: Engine, alice: Client, stack_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(stack_settings.login_client_max_failures):
        expect_error(await alice.call("GET", "/account", token="vc_guess"), 401)
    answer = await alice.call("GET", "/account", token="vc_guess")
    expect_error(answer, 429, "throttled")
    assert 0 < int(answer.headers["Retry-After"]) <= stack_settings.login_window_s
    # A live token still works (it cannot be guessed; refusing it would only lock out a whole office).
    assert (await alice.call("GET", "/account")).status == 200
    # Tokens never reach the logs (the access log has no headers and no query string).
    assert alice.token not in capsys.readouterr().err


async def test_http_php_failures_throttle_the_api_too(
    engine: Engine, alice: Client, stack_settings: Settings
) -> None:
    """One throttle for every interface: bad http.php passwords from an address count for the API."""
    url = f"http://127.0.0.1:{engine.http_port}/http.php"
    # Each login has its own budget too: the address's is spent over as many logins as it takes.
    for i in range(stack_settings.login_client_max_failures):
        email = f"inconnu{i}@example.fr"
        params = {"email": email, "pass": "wrong-password-1", "numero": "0612345678", "ref": "1"}
        async with alice.http.get(url, params=params) as resp:
            assert await resp.text() == "82"
    answer = await alice.call("GET", "/account", token="vc_guess")
    expect_error(answer, 429, "throttled")
    assert int(answer.headers["Retry-After"]) > 0


# --- account ----------------------------------------------------------------------------------------------


async def test_account_credits_and_ledger(engine: Engine, alice: Client, db: Database) -> None:
    answer = await alice.call("GET", "/account")
    assert answer.status == 200
    assert answer.body["email"] == "alice@example.fr"
    assert answer.body["credits"] == {"available": 20, "reserved": 0}
    for amount in (1, 2, 3):
        await credits.credit(db, alice.account_id, amount, reason=f"crédit {amount}")
    first = await alice.call("GET", "/account/ledger?limit=2")
    assert first.status == 200
    assert [e["reason"] for e in first.body["entries"]] == ["crédit 3", "crédit 2"]
    assert first.body["next_before_id"] is not None
    rest = await alice.call("GET", f"/account/ledger?limit=2&before_id={first.body['next_before_id']}")
    assert [e["amount"] for e in rest.body["entries"]] == [1, 20]
    assert rest.body["next_before_id"] is None
    expect_error(await alice.call("GET", "/account/ledger?limit=0"), 400, "query_invalid")
    expect_error(await alice.call("GET", "/account/ledger?limit=abc"), 400, "query_invalid")
    expect_error(await alice.call("GET", "/account/ledger?limit=%C2%B2"), 400, "query_invalid")  # "²"


async def test_default_send_options(engine: Engine, alice: Client, db: Database, tmp_path: Path) -> None:
    answer = await alice.call("GET", "/account/defaults")
    assert answer.body == {
        "greeting_ref": None,
        "transfer_number": None,
        "sender_number": None,
        "retries": 0,
        "retry_interval_s": 1800,
        "voicemail_drop": False,
        "purpose": "information",
        "company_name": None,
    }
    greeting = await _greeting(db, engine.settings, alice, tmp_path)
    await senders.declare_sender(db, alice.account_id, "0162000000")
    await senders.verify_sender(db, alice.account_id, "0162000000")
    wanted = {
        "greeting_ref": greeting,
        "transfer_number": "01 45 67 89 03",
        "sender_number": "0162000000",
        "retries": 2,
        "retry_interval_s": 600,
        "voicemail_drop": False,
    }
    answer = await alice.call("PUT", "/account/defaults", json_body=wanted)
    assert answer.status == 200, answer.body
    assert answer.body == {
        **wanted,
        "transfer_number": "+33145678903",
        "sender_number": "+33162000000",
        "purpose": "information",
        "company_name": None,
    }
    assert (await alice.call("GET", "/account/defaults")).body == answer.body
    account = await accounts_store.get_account(db, alice.account_id)
    assert account.defaults.retries == 2 and account.defaults.greeting_enabled

    for change, code in (
        ({"retries": 11}, "retries_invalid"),
        ({"retry_interval_s": 10}, "retry_interval_invalid"),
        ({"transfer_number": "3615"}, "transfer_invalid"),
        ({"sender_number": "0163000000"}, "sender_not_verified"),
        ({"greeting_ref": alice.who.message.ref}, "greeting_invalid"),  # not a greeting
        ({"greeting_ref": 999}, "greeting_invalid"),
        ({"retries": "2"}, "field_invalid"),
        ({"retries": None}, "field_invalid"),
        ({"colour": "blue"}, "unknown_field"),
    ):
        expect_error(await alice.call("PUT", "/account/defaults", json_body={**wanted, **change}), 400, code)
    await accounts_store.set_options(db, alice.account_id, allow_voicemail_drop=False)
    expect_error(
        await alice.call("PUT", "/account/defaults", json_body={**wanted, "voicemail_drop": True}),
        400,
        "voicemail_drop_disabled",
    )
    partial = dict(wanted)
    del partial["retries"]
    expect_error(await alice.call("PUT", "/account/defaults", json_body=partial), 400, "field_missing")
    expect_error(await alice.call("PUT", "/account/defaults", data=b"{not json"), 400, "bad_json")
    expect_error(await alice.call("PUT", "/account/defaults", json_body=[1, 2]), 400, "bad_json")
    # Switching everything off.
    off = {**wanted, "greeting_ref": None, "transfer_number": None, "sender_number": None}
    assert (await alice.call("PUT", "/account/defaults", json_body=off)).body["greeting_ref"] is None


async def test_the_account_sets_its_purpose_and_company_name(alice: Client, db: Database) -> None:
    """Issue 18: the customer sets the purpose of its http.php and e-mail sends and the company its
    commercial calls name, under the CLI's rule; a refused change changes nothing (PUT /account/defaults
    refused both fields as unknown before)."""
    options = dict((await alice.call("GET", "/account/defaults")).body)
    del options["purpose"], options["company_name"]
    commercial = {**options, "retries": 3, "purpose": "commercial"}
    refused = await alice.call("PUT", "/account/defaults", json_body=commercial)
    expect_error(refused, 400, "company_required")
    assert "nom de votre entreprise" in refused.body["message"]
    unchanged = (await alice.call("GET", "/account/defaults")).body
    assert (unchanged["purpose"], unchanged["retries"]) == ("information", options["retries"])
    named = await alice.call(
        "PUT", "/account/defaults", json_body={**commercial, "company_name": "  Acme   Énergie "}
    )
    assert named.status == 200, named.body
    assert (named.body["purpose"], named.body["company_name"], named.body["retries"]) == (
        "commercial",
        "Acme Énergie",
        3,
    )
    assert (await accounts_store.get_account(db, alice.account_id)).default_purpose == "commercial"
    removal = await alice.call("PUT", "/account/defaults", json_body={**options, "company_name": None})
    expect_error(removal, 400, "company_required")
    assert "commerciaux par défaut" in removal.body["message"]
    assert (await alice.call("GET", "/account/defaults")).body["company_name"] == "Acme Énergie"
    both = {**options, "purpose": "information", "company_name": None}
    done = await alice.call("PUT", "/account/defaults", json_body=both)
    assert done.status == 200 and (done.body["purpose"], done.body["company_name"]) == ("information", None)
    expect_error(
        await alice.call("PUT", "/account/defaults", json_body={**options, "purpose": "pub"}),
        400,
        "field_invalid",
    )


async def test_personal_code_reset(engine: Engine, alice: Client, db: Database) -> None:
    answer = await alice.call("POST", "/account/code")
    assert answer.status == 200
    code = answer.body["code"]
    assert len(code) == 8 and code.isdigit()
    secret_key = engine.settings.require("secret_key")
    found = await accounts_store.find_by_code(db, code, secret_key=secret_key)
    assert found is not None and found.id == alice.account_id
    again = (await alice.call("POST", "/account/code")).body["code"]
    assert again != code
    assert await accounts_store.find_by_code(db, code, secret_key=secret_key) is None


async def test_sender_numbers(engine: Engine, alice: Client, db: Database) -> None:
    assert (await alice.call("GET", "/account/senders")).body == {"senders": []}
    created = await alice.call("POST", "/account/senders", json_body={"number": "01 62 00 00 00"})
    assert created.status == 201
    assert created.body["number"] == "+33162000000" and created.body["status"] == "pending"
    assert created.body["in_automated_range"] is True
    again = await alice.call("POST", "/account/senders", json_body={"number": "0162000000"})
    assert again.status == 200 and again.body["id"] == created.body["id"]
    await senders.verify_sender(db, alice.account_id, "0162000000")
    listed = (await alice.call("GET", "/account/senders")).body["senders"]
    assert [(s["number"], s["status"]) for s in listed] == [("+33162000000", "verified")]
    expect_error(await alice.call("POST", "/account/senders", json_body={"number": "abc"}), 400)
    expect_error(
        await alice.call("POST", "/account/senders", json_body={"number": "+44 20 7946 0958"}),
        400,
        "sender_not_french",
    )
    expect_error(await alice.call("POST", "/account/senders", json_body={}), 400, "field_missing")


async def _greeting(db: Database, settings: Settings, client: Client, tmp: Path) -> int:
    wav = tmp / "greeting.wav"
    tones.write_wav(wav, tones.sine(500.0, 1.5, 0.4))
    message = await Messages(db, settings).add(
        client.account_id, wav, title="Accueil", origin="file", is_greeting=True
    )
    return message.ref


# --- messages ---------------------------------------------------------------------------------------------


async def _mp3(path: Path, seconds: float = 2.0) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
        "-i", f"sine=frequency=660:duration={seconds}:sample_rate=44100",
        "-ac", "1", "-codec:a", "libmp3lame", "-b:a", "64k", str(path),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 0, err
    return await asyncio.to_thread(path.read_bytes)


def _form(content: bytes, filename: str, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(content), filename=filename, content_type="application/octet-stream")
    for name, value in fields.items():
        form.add_field(name, value)
    return form


async def test_message_upload_listen_rename_delete(
    engine: Engine, alice: Client, db: Database, tmp_path: Path
) -> None:
    mp3 = await _mp3(tmp_path / "promo.mp3")
    created = await alice.call("POST", "/messages", data=_form(mp3, "Promo été.mp3"))
    assert created.status == 201, created.body
    message = created.body
    assert message["ref"] == 2 and message["title"] == "Promo été" and message["origin"] == "file"
    assert 1.5 < message["duration_s"] < 2.5 and message["is_greeting"] is False
    assert message["original_name"] == "Promo été.mp3"
    ref = message["ref"]

    listed = await alice.call("GET", "/messages")
    assert [m["ref"] for m in listed.body["messages"]] == [1, 2]
    assert (await alice.call("GET", f"/messages/{ref}")).body == message

    audio = await alice.call("GET", f"/messages/{ref}/audio")
    assert audio.status == 200 and audio.headers["Content-Type"] == "audio/wav"
    with wave.open(io.BytesIO(audio.raw)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert 1.5 < wav.getnframes() / 8000 < 2.5
    original = await alice.call("GET", f"/messages/{ref}/original")
    assert original.status == 200 and original.raw == mp3
    assert original.headers["Content-Type"] == "audio/mpeg"
    assert "Promo" in original.headers["Content-Disposition"]

    renamed = await alice.call("PATCH", f"/messages/{ref}", json_body={"title": "  Relance   clients  "})
    assert renamed.status == 200 and renamed.body["title"] == "Relance clients"
    expect_error(
        await alice.call("PATCH", f"/messages/{ref}", json_body={"title": "   "}), 400, "title_invalid"
    )

    greeting = await alice.call(
        "POST", "/messages", data=_form(mp3, "accueil.mp3", title="Bonjour", greeting="true")
    )
    assert greeting.status == 201 and greeting.body["is_greeting"] and greeting.body["title"] == "Bonjour"
    only = await alice.call("GET", "/messages?greetings=true")
    assert [m["ref"] for m in only.body["messages"]] == [greeting.body["ref"]]

    assert (await alice.call("DELETE", f"/messages/{ref}")).status == 204
    expect_error(await alice.call("GET", f"/messages/{ref}"), 404, "not_found")
    expect_error(await alice.call("GET", f"/messages/{ref}/audio"), 404)
    expect_error(await alice.call("DELETE", f"/messages/{ref}"), 404)
    expect_error(await alice.call("GET", "/messages/0"), 404)
    expect_error(await alice.call("GET", "/messages/99999999999999999999"), 404)
    expect_error(await alice.call("GET", "/messages/%C2%B2"), 404)  # "²" is a digit to str.isdigit()


async def test_message_upload_refusals(engine: Engine, alice: Client, db: Database, tmp_path: Path) -> None:
    expect_error(await alice.call("POST", "/messages", data=_form(b"not audio at all" * 100, "x.mp3")), 422)
    expect_error(await alice.call("POST", "/messages", data=_form(b"", "empty.wav")), 422, "empty")
    expect_error(await alice.call("POST", "/messages", json_body={"file": "x"}), 415, "not_multipart")
    form = aiohttp.FormData()
    form.add_field("title", "sans fichier")
    form.add_field("other", "x", filename="x.bin")  # forces multipart
    expect_error(await alice.call("POST", "/messages", data=form), 400)
    big = b"\0" * (engine.settings.audio_max_bytes + 1)
    expect_error(await alice.call("POST", "/messages", data=_form(big, "big.wav")), 413, "too_large")
    mp3 = await _mp3(tmp_path / "m.mp3")
    expect_error(await alice.call("POST", "/messages", data=_form(mp3, "m.mp3", greeting="peut-être")), 400)
    # Nothing was stored and no reference was used by the refusals.
    assert [m["ref"] for m in (await alice.call("GET", "/messages")).body["messages"]] == [1]
    assert (await alice.call("POST", "/messages", data=_form(mp3, "m.mp3"))).body["ref"] == 2


async def test_message_in_use_cannot_be_deleted(engine: Engine, alice: Client) -> None:
    later = format_deferred(datetime.now(UTC) + timedelta(days=2))
    created = await alice.call(
        "POST",
        "/sends",
        json_body=send_body({"message_ref": 1, "numbers": ["0612345678"], "deferred": later}),
    )
    assert created.status == 201, created.body
    expect_error(await alice.call("DELETE", "/messages/1"), 409, "message_in_use")
    assert (await alice.call("POST", f"/sends/{created.body['id']}/cancel")).status == 200
    assert (await alice.call("DELETE", "/messages/1")).status == 204


# --- sends ------------------------------------------------------------------------------------------------


async def test_send_with_every_option_of_the_manual(
    engine: Engine, alice: Client, db: Database, tmp_path: Path
) -> None:
    greeting = await _greeting(db, engine.settings, alice, tmp_path)
    await senders.declare_sender(db, alice.account_id, "0162000000")
    await senders.verify_sender(db, alice.account_id, "0162000000")
    later = datetime.now(UTC) + timedelta(days=3)
    answer = await alice.call(
        "POST",
        "/sends",
        json_body=send_body(
            {
                "message_ref": 1,
                "numbers": ["06 12 34 56 78", "0612345678", "07 81 22 33 44"],
                "text": "0611111111\n06.22.22.22.22",
                "greeting_ref": greeting,
                "transfer_number": "01 45 67 89 03",
                "sender_number": "0162000000",
                "retries": 3,
                "retry_interval_s": 900,
                "voicemail_drop": True,
                "deferred": format_deferred(later),
                "comment": "Relance été",
            }
        ),
    )
    assert answer.status == 201, answer.body
    send = answer.body
    assert send["status"] == "scheduled" and send["deferred"] is True and send["origin"] == "api"
    assert send["status_label"] == "Programmé"
    assert (send["message_ref"], send["greeting_ref"]) == (1, greeting)
    assert send["transfer_number"] == "+33145678903" and send["sender_number"] == "+33162000000"
    assert (send["retries"], send["retry_interval_s"], send["voicemail_drop"]) == (3, 900, True)
    assert send["comment"] == "Relance été" and send["recipients"] == 4 and send["credits_held"] == 4
    assert abs(datetime.fromisoformat(send["scheduled_at"]) - later) < timedelta(minutes=1)
    assert send["progress"]["total"] == 4 and send["progress"]["pending"] == 4
    assert send["refused"] == []
    stored = await sends_store.get_send(db, UUID(send["id"]))
    assert stored.origin == "api" and stored.voicemail_drop and stored.retry.extra_attempts == 3
    assert (await credits.balance(db, alice.account_id)).available == 16

    # ISO 8601 time; options left out take the account's defaults, null switches one off.
    await accounts_store.set_defaults(
        db,
        alice.account_id,
        accounts_store.SendDefaults(retries=1, retry_interval_s=120, transfer_number="+33145678903"),
    )
    at = (datetime.now(UTC) + timedelta(hours=5)).astimezone().isoformat()
    answer = await alice.call(
        "POST",
        "/sends",
        json_body=send_body({"message_ref": 1, "numbers": ["0612345678"], "at": at, "transfer_number": None}),
    )
    assert answer.status == 201, answer.body
    assert (answer.body["retries"], answer.body["retry_interval_s"]) == (1, 120)
    assert answer.body["transfer_number"] is None and answer.body["status"] == "scheduled"
    immediate = await alice.call(
        "POST", "/sends", json_body=send_body({"message_ref": 1, "text": "0612345678"})
    )
    assert immediate.status == 201 and immediate.body["status"] == "running"
    assert immediate.body["transfer_number"] == "+33145678903"


async def test_send_to_contacts_groups_and_part_of_a_group(
    engine: Engine, alice: Client, bob: Client
) -> None:
    ids = []
    for phone in ("0611111111", "0622222222", "0633333333"):
        answer = await alice.call("POST", "/contacts", json_body={"phone": phone, "nom": f"N{phone[-1]}"})
        assert answer.status == 201
        ids.append(answer.body["id"])
    group = (await alice.call("POST", "/groups", json_body={"name": "Clients Lyon"})).body
    empty = (await alice.call("POST", "/groups", json_body={"name": "Vide"})).body
    added = await alice.call("POST", f"/groups/{group['id']}/members", json_body={"contact_ids": ids[:2]})
    assert added.status == 200 and added.body["added"] == 2 and added.body["group"]["member_count"] == 2

    check = await alice.call(
        "POST", "/recipients/check", json_body={"contact_ids": [ids[2]], "group_ids": [group["id"]]}
    )
    assert check.status == 200 and check.body["recipients"] == 3 and check.body["from_contacts"] == 3
    send = await alice.call(
        "POST",
        "/sends",
        json_body=send_body(
            {
                "message_ref": 1,
                "contact_ids": [ids[2]],
                "group_ids": [group["id"]],
                "numbers": ["0611111111"],
            }
        ),
    )
    assert send.status == 201 and send.body["recipients"] == 3  # the pasted number is a contact: once
    part = await alice.call(
        "POST",
        "/sends",
        json_body=send_body({"message_ref": 1, "group_ids": [group["id"]], "subset_contact_ids": [ids[1]]}),
    )
    assert part.status == 201 and part.body["recipients"] == 1
    recipients = await alice.call("GET", f"/sends/{part.body['id']}/recipients")
    assert [r["number"] for r in recipients.body["recipients"]] == ["+33622222222"]
    expect_error(
        await alice.call(
            "POST", "/sends", json_body=send_body({"message_ref": 1, "group_ids": [empty["id"]]})
        ),
        400,
        "group_empty",
    )
    # Another account's contacts and groups do not exist for bob.
    expect_error(
        await bob.call("POST", "/sends", json_body=send_body({"message_ref": 1, "group_ids": [group["id"]]})),
        404,
    )
    expect_error(
        await bob.call("POST", "/sends", json_body=send_body({"message_ref": 1, "contact_ids": [ids[0]]})),
        404,
    )
    expect_error(await bob.call("POST", "/recipients/check", json_body={"contact_ids": [ids[0]]}), 404)


async def test_send_refusals(engine: Engine, alice: Client, bob: Client, db: Database) -> None:
    def send(**fields: Any) -> Any:
        return alice.call(
            "POST", "/sends", json_body=send_body({"message_ref": 1, "numbers": ["0612345678"], **fields})
        )

    past = format_deferred(datetime.now(UTC) - timedelta(hours=2))
    for fields, status, code in (
        ({"message_ref": 7}, 404, "message_not_found"),
        ({"greeting_ref": 7}, 404, "greeting_not_found"),
        ({"numbers": ["0612345678", "0899123456"]}, 400, "number_refused"),
        ({"numbers": []}, 400, "no_targets"),
        ({"deferred": past}, 400, "deferred_past"),
        ({"deferred": "153031022030"}, 400, "bad_deferred"),  # 31 February
        ({"deferred": "023028032027"}, 400, "bad_deferred"),  # spring DST gap in Paris
        (
            {"deferred": format_deferred(datetime.now(UTC) + timedelta(days=1), cancel=True)},
            400,
            "bad_deferred",
        ),
        ({"at": "2030-09-12T15:30:00"}, 400, "field_invalid"),  # no offset
        ({"at": "2020-09-12T15:30:00+02:00"}, 400, "deferred_past"),
        ({"at": "9999-12-31T23:59:00-23:59"}, 400, "field_invalid"),  # beyond year 9999 in UTC
        ({"at": "2030-09-12T15:30:00Z", "deferred": "153012092030"}, 400, "at_and_deferred"),
        ({"transfer_number": "3615"}, 400, "transfer_invalid"),
        ({"sender_number": "0162000000"}, 400, "sender_not_verified"),
        ({"numbers": ["0145678903"], "voicemail_drop": True}, 400, "drop_not_mobile"),
        ({"retries": 11}, 400, "retries_invalid"),
        ({"retry_interval_s": 5}, 400, "retry_interval_invalid"),
        ({"retries": True}, 400, "field_invalid"),
        ({"comment": "x" * 501}, 400, "field_invalid"),
        ({"comment": " " * 400 + "x" * 101}, 400, "field_invalid"),
        ({"numero": "0612345678"}, 400, "unknown_field"),
        ({"message_ref": None}, 400, "field_invalid"),
    ):
        expect_error(await send(**fields), status, code)
    expect_error(
        await alice.call("POST", "/sends", json_body=send_body({"numbers": ["0612345678"]})),
        400,
        "field_missing",
    )
    # Every API send states its purpose (issue 18): absent or null, no account default stands in for it.
    for unstated in ({}, {"purpose": None}):
        body = {"message_ref": 1, "numbers": ["0612345678"], **unstated}
        missing = expect_error(await alice.call("POST", "/sends", json_body=body), 400, "field_missing")
        assert "« purpose »" in missing["message"]
    expect_error(await alice.call("POST", "/sends", data=b"\xff\xfe"), 400, "bad_json")
    refused = await send(numbers=["0612345678", "08 99 12 34 56", "abc"])
    details = expect_error(refused, 400, "number_refused")["details"]
    assert [(d["line"], d["code"]) for d in details] == [(2, "premium"), (3, "letters")]
    await accounts_store.set_options(db, alice.account_id, allow_voicemail_drop=False)
    expect_error(await send(voicemail_drop=True), 400, "drop_not_allowed")
    many = [f"06{i:08d}" for i in range(12000000, 12000021)]  # 21 numbers, 20 credits
    expect_error(await send(numbers=many), 402, "credits")
    assert await db.fetchval("SELECT count(*) FROM sends") == 0
    assert (await credits.balance(db, alice.account_id)).available == 20
    # skip_refused: the callable numbers are sent, the others reported.
    skipped = await send(numbers=["0612345678", "0899123456"], skip_refused=True)
    assert skipped.status == 201 and skipped.body["recipients"] == 1
    assert [r["code"] for r in skipped.body["refused"]] == ["premium"]
    # bob's message 1 is not alice's: his send plays his own message.
    bobs = await bob.call(
        "POST", "/sends", json_body=send_body({"message_ref": 1, "numbers": ["0612345678"]})
    )
    assert bobs.status == 201
    stored = await sends_store.get_send(db, UUID(bobs.body["id"]))
    assert stored.message_id == bob.who.message.id


async def test_idempotency_key_never_creates_a_second_send(
    engine: Engine, alice: Client, db: Database
) -> None:
    body = send_body({"message_ref": 1, "numbers": ["0612345678", "0622222222"]})
    first = await alice.call("POST", "/sends", json_body=body, headers={"Idempotency-Key": "relance-42"})
    assert first.status == 201
    again = await alice.call("POST", "/sends", json_body=body, headers={"Idempotency-Key": "relance-42"})
    assert again.status == 200 and again.body["id"] == first.body["id"]
    assert await db.fetchval("SELECT count(*) FROM sends") == 1
    assert (await credits.balance(db, alice.account_id)).available == 18  # reserved once
    # Retried together (a client timing out and retrying at once): still one send.
    answers = await asyncio.gather(
        *(
            alice.call("POST", "/sends", json_body=body, headers={"Idempotency-Key": "relance-43"})
            for _ in range(6)
        )
    )
    assert sorted(a.status for a in answers) == [200] * 5 + [201]
    assert len({a.body["id"] for a in answers}) == 1
    assert await db.fetchval("SELECT count(*) FROM sends") == 2
    # A deferred send retried after its time would be refused: the key answers first.
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    deferred = {**body, "at": soon}
    first = await alice.call("POST", "/sends", json_body=deferred, headers={"Idempotency-Key": "k3"})
    assert first.status == 201
    await db.execute(
        "UPDATE sends SET start_at = now() - interval '1 hour' WHERE id = $1", UUID(first.body["id"])
    )
    late = await alice.call(
        "POST", "/sends", json_body={**body, "at": "2020-01-01T00:00:00Z"}, headers={"Idempotency-Key": "k3"}
    )
    assert late.status == 200 and late.body["id"] == first.body["id"]
    expect_error(
        await alice.call("POST", "/sends", json_body=body, headers={"Idempotency-Key": "x" * 201}),
        400,
        "idempotency_key_invalid",
    )
    # Keys are per account: bob's identical key is his own.
    assert await db.fetchval("SELECT count(*) FROM sends") == 3


async def test_progress_recipients_and_steering(engine: Engine, alice: Client, db: Database) -> None:
    created = await alice.call(
        "POST",
        "/sends",
        json_body=send_body({"message_ref": 1, "numbers": ["0611111111", "0622222222", "0633333333"]}),
    )
    send_id = created.body["id"]
    assert created.body["status"] == "running" and created.body["progress"]["pending"] == 3
    # One number answered and listened (what the dialer would record).
    rid = await db.fetchval(
        "SELECT id FROM send_recipients WHERE send_id = $1 AND e164 = '+33611111111'", UUID(send_id)
    )
    await db.execute(
        "INSERT INTO attempts (id, send_id, recipient_id, attempt_no, node, app, trunk, state, outcome, "
        "sip_code, ended_at, ring_s, talk_s) VALUES (gen_random_uuid(), $1, $2, 1, 'test', 'test', 't1', "
        "'ended', 'listened', 200, now(), 3.5, 12.0)",
        UUID(send_id),
        rid,
    )
    await db.execute(
        "UPDATE send_recipients SET state = 'done', outcome = 'listened', attempts = 1, final_at = now() "
        "WHERE id = $1",
        rid,
    )
    detail = (await alice.call("GET", f"/sends/{send_id}")).body
    progress = detail["progress"]
    assert (progress["total"], progress["done"], progress["pending"], progress["calling"]) == (3, 1, 2, 0)
    assert progress["outcomes"] == {"listened": 1} and progress["attempts"] == 1
    assert progress["estimated_end_at"] is not None  # one result seen: the pace gives an end

    page = await alice.call("GET", f"/sends/{send_id}/recipients?limit=2")
    assert page.status == 200 and len(page.body["recipients"]) == 2
    first = page.body["recipients"][0]
    assert first["number"] == "+33611111111" and first["outcome"] == "listened"
    assert first["outcome_label"] and first["calls"][0]["talk_s"] == 12.0
    assert first["calls"][0]["sip_code"] == 200
    rest = await alice.call("GET", f"/sends/{send_id}/recipients?limit=2&after={page.body['next_after']}")
    assert [r["number"] for r in rest.body["recipients"]] == ["+33633333333"]
    assert rest.body["next_after"] is None

    listed = (await alice.call("GET", "/sends")).body["sends"]
    assert listed[0]["id"] == send_id and listed[0]["outcomes"] == {"listened": 1}

    assert (await alice.call("POST", f"/sends/{send_id}/pause")).body["status"] == "paused"
    expect_error(await alice.call("POST", f"/sends/{send_id}/pause"), 409, "send_state")
    assert (await alice.call("POST", f"/sends/{send_id}/resume")).body["status"] == "running"
    before = (await credits.balance(db, alice.account_id)).available
    cancelled = await alice.call("POST", f"/sends/{send_id}/cancel")
    assert cancelled.body["status"] == "cancelled" and cancelled.body["progress"]["cancelled"] == 2
    assert (await credits.balance(db, alice.account_id)).available == before + 2
    expect_error(await alice.call("POST", f"/sends/{send_id}/resume"), 409, "send_state")
    expect_error(await alice.call("GET", "/sends/not-a-uuid"), 404)
    expect_error(await alice.call("GET", f"/sends/{UUID(int=1)}"), 404)
    expect_error(await alice.call("GET", f"/sends/{send_id}/recipients?limit=5000"), 400, "query_invalid")


async def test_list_sends_pages(engine: Engine, alice: Client) -> None:
    ids = []
    for _ in range(3):
        answer = await alice.call(
            "POST", "/sends", json_body=send_body({"message_ref": 1, "numbers": ["0612345678"]})
        )
        ids.append(answer.body["id"])
    first = await alice.call("GET", "/sends?limit=2")
    assert [s["id"] for s in first.body["sends"]] == ids[::-1][:2]
    assert first.body["next_before"] is not None
    rest = await alice.call("GET", "/sends", headers={}, json_body=None)
    assert len(rest.body["sends"]) == 3
    after = await alice.call("GET", f"/sends?limit=2&before={first.body['next_before'].replace('+', '%2B')}")
    assert [s["id"] for s in after.body["sends"]] == [ids[0]]
    assert after.body["next_before"] is None
    expect_error(await alice.call("GET", "/sends?before=yesterday"), 400, "query_invalid")
    expect_error(await alice.call("GET", "/sends?before=0001-01-01T00:00:00%2B23:59"), 400, "query_invalid")


async def test_recipients_check_reports_before_confirming(
    engine: Engine, alice: Client, db: Database
) -> None:
    answer = await alice.call(
        "POST",
        "/recipients/check",
        json_body={"text": "06 12 34 56 78\n0899123456\n0612345678; 01 45 67 89 03\nbonjour"},
    )
    assert answer.status == 200
    report = answer.body
    assert [(a["line"], a["number"], a["type"]) for a in report["accepted"]] == [
        (1, "+33612345678", "mobile"),
        (3, "+33145678903", "fixed"),
    ]
    assert [(r["line"], r["code"]) for r in report["refused"]] == [(2, "premium"), (4, "letters")]
    assert all(r["message"] for r in report["refused"])  # the French reason
    assert [(d["line"], d["duplicate_of"]) for d in report["duplicates"]] == [(3, 1)]
    assert (report["credits"], report["available"], report["enough_credits"]) == (2, 20, True)
    assert await db.fetchval("SELECT count(*) FROM sends") == 0
    many = "\n".join(f"06{i:08d}" for i in range(12000000, 12000025))
    report = (await alice.call("POST", "/recipients/check", json_body={"numbers": many.split()})).body
    assert report["credits"] == 25 and report["enough_credits"] is False
    expect_error(await alice.call("POST", "/recipients/check", json_body={}), 400, "no_targets")


# --- contacts and groups -----------------------------------------------------------------------------------


async def test_contacts_crud_search_and_pages(engine: Engine, alice: Client) -> None:
    created = await alice.call(
        "POST",
        "/contacts",
        json_body={"phone": "06 12 34 56 78", "nom": "Dupont", "prenom": "Jean", "societe": "Mairie de Lyon"},
    )
    assert created.status == 201
    contact = created.body
    assert contact["number"] == "+33612345678" and contact["type"] == "mobile" and contact["groups"] == []
    for phone, nom in (("0622222222", "Durand"), ("0633333333", "Éloi"), ("0145678903", "Martin")):
        assert (await alice.call("POST", "/contacts", json_body={"phone": phone, "nom": nom})).status == 201
    expect_error(
        await alice.call("POST", "/contacts", json_body={"phone": "0612345678"}), 409, "contact_exists"
    )
    expect_error(await alice.call("POST", "/contacts", json_body={"phone": "0899123456"}), 400, "premium")
    expect_error(
        await alice.call("POST", "/contacts", json_body={"nom": "Sans numéro"}), 400, "field_missing"
    )
    expect_error(
        await alice.call("POST", "/contacts", json_body={"phone": "0655555555", "nom": "x" * 101}),
        400,
        "field_too_long",
    )

    page = await alice.call("GET", "/contacts?limit=2")
    assert [c["nom"] for c in page.body["contacts"]] == ["Dupont", "Durand"] and page.body["total"] == 4
    rest = await alice.call("GET", f"/contacts?limit=2&after={page.body['next_cursor']}")
    assert [c["nom"] for c in rest.body["contacts"]] == ["Éloi", "Martin"] and rest.body[
        "next_cursor"
    ] is None
    found = await alice.call("GET", "/contacts?search=eloi")
    assert [c["nom"] for c in found.body["contacts"]] == ["Éloi"] and found.body["total"] == 1
    by_number = await alice.call("GET", "/contacts?search=06%2012")
    assert [c["nom"] for c in by_number.body["contacts"]] == ["Dupont"]
    by_societe = await alice.call("GET", "/contacts?order=societe&limit=1")
    assert by_societe.status == 200
    expect_error(await alice.call("GET", "/contacts?after=garbage"), 400, "bad_cursor")
    expect_error(await alice.call("GET", "/contacts?order=age"), 400, "bad_order")
    expect_error(await alice.call("GET", "/contacts?group_id=424242"), 404)

    cid = contact["id"]
    assert (await alice.call("GET", f"/contacts/{cid}")).body == contact
    updated = await alice.call(
        "PATCH", f"/contacts/{cid}", json_body={"prenom": "Jeanne", "phone": "0699999999"}
    )
    assert updated.status == 200
    assert (updated.body["prenom"], updated.body["nom"], updated.body["number"]) == (
        "Jeanne",
        "Dupont",
        "+33699999999",
    )
    expect_error(await alice.call("PATCH", f"/contacts/{cid}", json_body={"phone": "0622222222"}), 409)
    expect_error(await alice.call("PATCH", f"/contacts/{cid}", json_body={"nom": None}), 400, "field_invalid")
    assert (await alice.call("DELETE", f"/contacts/{cid}")).status == 204
    expect_error(await alice.call("GET", f"/contacts/{cid}"), 404)
    expect_error(await alice.call("DELETE", f"/contacts/{cid}"), 404)


async def test_groups_and_membership(engine: Engine, alice: Client) -> None:
    ids = [
        (await alice.call("POST", "/contacts", json_body={"phone": p})).body["id"]
        for p in ("0611111111", "0622222222")
    ]
    group = await alice.call("POST", "/groups", json_body={"name": "  Clients   Lyon "})
    assert group.status == 201 and group.body["name"] == "Clients Lyon" and group.body["member_count"] == 0
    gid = group.body["id"]
    expect_error(await alice.call("POST", "/groups", json_body={"name": "clients lyon"}), 409, "group_exists")
    expect_error(await alice.call("POST", "/groups", json_body={"name": ""}), 400, "group_name_invalid")
    added = await alice.call("POST", f"/groups/{gid}/members", json_body={"contact_ids": ids})
    assert added.body["added"] == 2
    again = await alice.call("POST", f"/groups/{gid}/members", json_body={"contact_ids": ids})
    assert again.body["added"] == 0 and again.body["group"]["member_count"] == 2
    expect_error(await alice.call("POST", f"/groups/{gid}/members", json_body={"contact_ids": [999999]}), 404)
    expect_error(await alice.call("POST", f"/groups/{gid}/members", json_body={}), 400, "field_missing")
    members = await alice.call("GET", f"/contacts?group_id={gid}")
    assert [c["id"] for c in members.body["contacts"]] == ids
    assert members.body["contacts"][0]["groups"] == [{"id": gid, "name": "Clients Lyon"}]
    assert (await alice.call("DELETE", f"/groups/{gid}/members/{ids[0]}")).status == 204
    expect_error(await alice.call("DELETE", f"/groups/{gid}/members/{ids[0]}"), 404)
    assert (await alice.call("GET", f"/groups/{gid}")).body["member_count"] == 1
    renamed = await alice.call("PATCH", f"/groups/{gid}", json_body={"name": "Clients Rhône"})
    assert renamed.status == 200 and renamed.body["name"] == "Clients Rhône"
    other = (await alice.call("POST", "/groups", json_body={"name": "Autres"})).body
    expect_error(
        await alice.call("PATCH", f"/groups/{other['id']}", json_body={"name": "clients rhone"}), 409
    )
    listed = await alice.call("GET", "/groups")
    assert [g["name"] for g in listed.body["groups"]] == ["Autres", "Clients Rhône"]
    # A contact's groups can be set with the contact.
    moved = await alice.call("PATCH", f"/contacts/{ids[0]}", json_body={"group_ids": [other["id"]]})
    assert [g["name"] for g in moved.body["groups"]] == ["Autres"]
    assert (await alice.call("DELETE", f"/groups/{gid}")).status == 204
    expect_error(await alice.call("GET", f"/groups/{gid}"), 404)
    assert (await alice.call("GET", f"/contacts/{ids[1]}")).status == 200  # the contact stays


async def test_csv_import_report(engine: Engine, alice: Client) -> None:
    csv_text = (
        "Société;Nom;Prénom;Téléphone;Groupe\n"
        "Mairie;Dupont;Jean;06 12 34 56 78;Élus\n"
        "Mairie;Durand;Marie;0899123456;Élus\n"
        ";Martin;;01 45 67 89 03;\n"
        "Mairie;Dupont;Jean;0612345678;Agents\n"
    )
    answer = await alice.call("POST", "/contacts/import", data=_form(csv_text.encode("cp1252"), "export.csv"))
    assert answer.status == 200, answer.body
    report = answer.body
    assert (report["imported"], report["updated"], report["duplicates_in_file"]) == (2, 0, 1)
    assert report["groups_created"] == 2 and report["memberships_added"] == 2
    assert [(r["row"], r["error"]) for r in report["refused"]] == [(3, "premium")]
    assert report["refused"][0]["message"]
    groups = (await alice.call("GET", "/groups")).body["groups"]
    assert sorted((g["name"], g["member_count"]) for g in groups) == [("Agents", 1), ("Élus", 1)]
    again = await alice.call("POST", "/contacts/import", data=_form(csv_text.encode("utf-8"), "export.csv"))
    assert (again.body["imported"], again.body["updated"]) == (0, 2)  # never doubled
    expect_error(
        await alice.call("POST", "/contacts/import", data=_form(b"\x00\x01\x02PK\x03\x04" * 50, "x.xlsx")),
        422,
    )
    expect_error(await alice.call("POST", "/contacts/import", json_body={"file": csv_text}), 415)


# --- isolation, database down, command line ------------------------------------------------------------


async def test_another_accounts_objects_are_not_found(
    engine: Engine, alice: Client, bob: Client, tmp_path: Path
) -> None:
    contact = (await alice.call("POST", "/contacts", json_body={"phone": "0611111111"})).body["id"]
    group = (await alice.call("POST", "/groups", json_body={"name": "Privé"})).body["id"]
    send = (
        await alice.call("POST", "/sends", json_body=send_body({"message_ref": 1, "numbers": ["0611111111"]}))
    ).body["id"]
    mp3 = await _mp3(tmp_path / "a.mp3")
    ref = (await alice.call("POST", "/messages", data=_form(mp3, "a.mp3"))).body["ref"]  # 2: bob has only 1
    for method, path, body in (
        ("GET", f"/messages/{ref}", None),
        ("GET", f"/messages/{ref}/audio", None),
        ("GET", f"/messages/{ref}/original", None),
        ("PATCH", f"/messages/{ref}", {"title": "volé"}),
        ("DELETE", f"/messages/{ref}", None),
        ("GET", f"/sends/{send}", None),
        ("GET", f"/sends/{send}/recipients", None),
        ("POST", f"/sends/{send}/pause", None),
        ("POST", f"/sends/{send}/cancel", None),
        ("GET", f"/contacts/{contact}", None),
        ("PATCH", f"/contacts/{contact}", {"nom": "x"}),
        ("DELETE", f"/contacts/{contact}", None),
        ("GET", f"/contacts?group_id={group}", None),
        ("GET", f"/groups/{group}", None),
        ("PATCH", f"/groups/{group}", {"name": "x"}),
        ("DELETE", f"/groups/{group}", None),
        ("POST", f"/groups/{group}/members", {"contact_ids": [contact]}),
        ("DELETE", f"/groups/{group}/members/{contact}", None),
        ("POST", "/sends", send_body({"message_ref": ref, "numbers": ["0611111111"]})),
    ):
        expect_error(await bob.call(method, path, json_body=body), 404)
    # Nothing of alice's changed, and bob's listings are his own.
    assert (await alice.call("GET", f"/sends/{send}")).body["status"] == "running"
    assert (await alice.call("GET", f"/contacts/{contact}")).status == 200
    assert (await bob.call("GET", "/contacts")).body["contacts"] == []
    assert (await bob.call("GET", "/sends")).body["sends"] == []
    assert [m["ref"] for m in (await bob.call("GET", "/messages")).body["messages"]] == [1]


async def test_database_down_answers_503(engine: Engine, alice: Client) -> None:
    await engine.db.close()
    try:
        answer = await alice.call("GET", "/account")
        expect_error(answer, 503, "database_unavailable")
        assert int(answer.headers["Retry-After"]) > 0
    finally:
        await engine.db.open()
    assert (await alice.call("GET", "/account")).status == 200


async def test_unknown_paths_and_methods_answer_json(engine: Engine, alice: Client) -> None:
    expect_error(await alice.call("GET", "/nothing-here"), 404, "not_found")
    answer = await alice.call("PUT", "/messages")
    expect_error(answer, 405, "method_not_allowed")
    assert "POST" in answer.headers["Allow"]


async def _cli(*argv: str) -> tuple[int, str]:
    """`vocalcast …` as a separate process (it configures logging of its own), on this test instance."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine.cli", *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_token_and_sends_list_commands(engine: Engine, alice: Client, bob: Client) -> None:
    rc, out = await _cli("token", "create", "--account", "Alice@Example.fr", "--label", "cron")
    assert rc == 0
    token = out.strip().splitlines()[-1]
    assert token.startswith("vc_") and len(token) > 40
    assert (await alice.call("GET", "/account", token=token)).status == 200
    rc, out = await _cli("token", "list", "--account", "alice@example.fr", "--json")
    tokens = [json.loads(line) for line in out.splitlines()]
    assert [t["label"] for t in tokens] == ["tests", "cron"] and all("token" not in t for t in tokens)
    rc, out = await _cli("token", "revoke", "--account", "alice@example.fr", str(tokens[1]["id"]))
    assert rc == 0
    expect_error(await alice.call("GET", "/account", token=token), 401)
    # bob cannot revoke alice's token, even from the command line
    assert await _cli("token", "revoke", "--account", "bob@example.fr", str(tokens[0]["id"])) == (2, "")
    assert (await alice.call("GET", "/account")).status == 200

    later = format_deferred(datetime.now(UTC) + timedelta(days=1))
    created = await alice.call(
        "POST",
        "/sends",
        json_body=send_body(
            {
                "message_ref": 1,
                "numbers": ["0611111111", "0622222222"],
                "comment": "Relance",
                "deferred": later,
            }
        ),
    )
    rc, out = await _cli("sends", "list", "--account", "alice@example.fr", "--json")
    assert rc == 0
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["id"] == created.body["id"] and row["origin"] == "api" and row["status"] == "scheduled"
    assert row["comment"] == "Relance" and row["message_ref"] == 1 and row["code"] is None
    assert row["start_at"] == created.body["scheduled_at"] and row["outcomes"] == {}
    assert row["recipients"] == 2


async def test_send_and_sends_show_and_steer_commands(
    engine: Engine, alice: Client, db: Database, tmp_path: Path
) -> None:
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("0611111111\nbonjour\n06 22 22 22 22\n0611111111\n", encoding="utf-8")
    later = format_deferred(datetime.now(UTC) + timedelta(days=1))
    rc, out = await _cli(
        "send", "--account", "alice@example.fr", "--ref", "1", "--numbers", str(numbers), "--at", later,
        "--comment", "Console",
    )  # fmt: skip
    assert rc == 0
    send_id = out.strip().splitlines()[-1]
    rc, out = await _cli("sends", "show", send_id, "--json", "--recipients")
    assert rc == 0
    shown = json.loads(out.strip().splitlines()[-1])
    assert (shown["status"], shown["origin"], shown["comment"]) == ("scheduled", "cli", "Console")
    assert shown["progress"]["pending"] == 2
    assert sorted(r["e164"] for r in shown["recipients"]) == ["+33611111111", "+33622222222"]
    assert (await credits.balance(db, alice.who.account.id)).reserved == 2
    rc, out = await _cli("sends", "cancel", send_id)
    assert (rc, out.strip().splitlines()[-1]) == (0, f"send {send_id}: cancelled")
    assert (await alice.call("GET", f"/sends/{send_id}")).body["status"] == "cancelled"
    assert (await credits.balance(db, alice.who.account.id)).reserved == 0


# --- schema-driven fuzzing ---------------------------------------------------------------------------------

# Examples per operation and generation mode: about 35 operations x (8 + 4) ≈ 400 requests, derandomized,
# so that CI stays fast and a failure replays the same way.
POSITIVE_EXAMPLES = 8
NEGATIVE_EXAMPLES = 4


@dataclass
class FuzzReport:
    cases: int = 0
    failures: list[str] = dataclasses.field(default_factory=list)
    statuses: dict[str, set[int]] = dataclasses.field(default_factory=dict)


def _fuzz(
    spec: dict[str, Any], base_url: str, token: str, own_token_id: int, known: dict[str, str]
) -> FuzzReport:
    """Every operation of the published document, positive and negative cases: no 500, no status, content
    type or body the document does not describe. Runs in a thread (schemathesis calls with requests)."""
    import requests
    import schemathesis
    from hypothesis.errors import Unsatisfiable

    schema = schemathesis.openapi.from_dict(spec)
    report = FuzzReport()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            has_input = bool(
                operation.path_parameters or operation.query or operation.headers or operation.body
            )
            runs: list[tuple[Any, int, dict[str, str] | None]] = [
                (schemathesis.GenerationMode.POSITIVE, POSITIVE_EXAMPLES, None)
            ]
            if has_input:
                runs.append((schemathesis.GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, None))
            # Generated UUIDs never name a real send: some runs with the ids of real objects, too.
            names = {p.name for p in operation.path_parameters}
            if names and names <= set(known):
                fixed = {name: known[name] for name in names}
                runs.append((schemathesis.GenerationMode.POSITIVE, POSITIVE_EXAMPLES // 2, fixed))
            for mode, examples, path_parameters in runs:
                run = _fuzz_operation(
                    operation,
                    mode,
                    examples=examples,
                    path_parameters=path_parameters,
                    base_url=base_url,
                    token=token,
                    own_token_id=own_token_id,
                    session=session,
                    report=report,
                )
                try:
                    run()
                except Unsatisfiable:
                    # Negative mode on an operation whose only input is the fixed token: nothing to negate.
                    if mode is schemathesis.GenerationMode.POSITIVE:
                        raise
                except Exception as exc:  # noqa: BLE001 - collect every operation's failure, report them all
                    report.failures.append(
                        f"{operation.label} [{mode.value}]: {type(exc).__name__}: {exc}"[:3000]
                    )
    return report


def _fuzz_operation(
    operation: Any,
    mode: Any,
    *,
    examples: int,
    path_parameters: dict[str, str] | None,
    base_url: str,
    token: str,
    own_token_id: int,
    session: Any,
    report: FuzzReport,
) -> Any:
    from hypothesis import HealthCheck, Phase, assume, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    # The token is fixed: schemathesis would otherwise make up bearer tokens of its own.
    strategy = operation.as_strategy(
        generation_mode=mode, headers={"Authorization": f"Bearer {token}"}, path_parameters=path_parameters
    )
    revokes_tokens = operation.method.upper() == "DELETE" and operation.path == "/tokens/{token_id}"

    @given(case=strategy)
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        if revokes_tokens:
            assume(str(case.path_parameters.get("token_id")) != str(own_token_id))  # keep fuzzing signed in
        response = case.call(base_url=base_url, session=session, timeout=30)
        report.cases += 1
        report.statuses.setdefault(operation.label, set()).add(response.status_code)
        case.validate_response(response, checks=checks)

    return run


async def test_fuzzing_against_the_published_openapi(
    engine: Engine, alice: Client, db: Database, tmp_path: Path
) -> None:
    # Objects with small ids, so that generated ids often hit something real.
    await _greeting(db, engine.settings, alice, tmp_path)
    for phone in ("0611111111", "0622222222"):
        await alice.call("POST", "/contacts", json_body={"phone": phone})
    group = (await alice.call("POST", "/groups", json_body={"name": "Fuzz"})).body["id"]
    await alice.call("POST", f"/groups/{group}/members", json_body={"contact_ids": [1, 2]})
    await credits.credit(db, alice.account_id, 500)
    send = await alice.call(
        "POST", "/sends", json_body=send_body({"message_ref": 1, "numbers": ["0611111111"]})
    )
    own = (await alice.call("GET", "/tokens")).body["tokens"][0]["id"]
    known = {"send_id": send.body["id"], "ref": "1", "group_id": str(group), "contact_id": "1"}

    spec = (await alice.call("GET", "/openapi.json", token=None)).body
    base_url = f"http://127.0.0.1:{engine.http_port}{PREFIX}"
    report = await asyncio.to_thread(_fuzz, spec, base_url, alice.token, own, known)
    assert not report.failures, "\n\n".join(report.failures)
    operations = sum(len(methods) for methods in spec["paths"].values())
    assert len(report.statuses) == operations  # every operation was called
    assert report.cases >= operations * POSITIVE_EXAMPLES // 2
    succeeded = [label for label, statuses in report.statuses.items() if any(s < 300 for s in statuses)]
    assert len(succeeded) >= operations // 2, report.statuses  # not only refusals: the fuzz reached the logic


async def test_commercial_send_refused_whole_through_the_api(alice: Client, db: Database) -> None:
    body = {"message_ref": alice.who.message.ref, "numbers": ["0612345678"], "purpose": "commercial"}
    # An account without a company name: its call could not say whose it is (L221-16).
    refused = expect_error(await alice.call("POST", "/sends", json_body=body), 400, "commercial_no_company")
    assert "entreprise" in refused["message"]
    await accounts_store.set_company_name(db, alice.account_id, "Acme Énergie")
    expect_error(await alice.call("POST", "/sends", json_body=body), 400, "commercial_no_sender")
    await senders.declare_sender(db, alice.account_id, "0162000000")
    await senders.verify_sender(db, alice.account_id, "0162000000")
    body["sender_number"] = "0162000000"
    refused = expect_error(await alice.call("POST", "/sends", json_body=body), 400, "commercial_no_consent")
    assert "consentement" in refused["message"]
    assert await db.fetchval("SELECT count(*) FROM sends") == 0
    expect_error(await alice.call("POST", "/sends", json_body={**body, "purpose": "pub"}), 400, "bad_purpose")
    # The same numbers as information: created, and said so.
    created = await alice.call("POST", "/sends", json_body={**body, "purpose": "information"})
    assert created.status == 201, created.body
    assert created.body["purpose"] == "information" and created.body["stop_listed_skipped"] == 0


async def test_consent_recorded_through_the_api_opens_commercial_sends(alice: Client, db: Database) -> None:
    await accounts_store.set_company_name(db, alice.account_id, "Acme Énergie")
    await senders.declare_sender(db, alice.account_id, "0162000000")
    await senders.verify_sender(db, alice.account_id, "0162000000")
    made = await alice.call("POST", "/contacts", json_body={"phone": "06 12 34 56 78", "nom": "Dupont"})
    assert made.status == 201, made.body
    path = f"/contacts/{made.body['id']}/consent"
    assert (await alice.call("GET", path)).body["valid"] is False
    send = {
        "message_ref": alice.who.message.ref,
        "contact_ids": [made.body["id"]],
        "purpose": "commercial",
        "sender_number": "0162000000",
    }
    expect_error(await alice.call("POST", "/sends", json_body=send), 400, "commercial_no_consent")
    expect_error(await alice.call("PUT", path, json_body={"source": " "}), 400, "consent_source_missing")
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    expect_error(await alice.call("PUT", path, json_body={"source": "web", "given_at": future}), 400)
    given = await alice.call(
        "PUT", path, json_body={"source": "formulaire web", "proof": "case cochée, IP 192.0.2.1"}
    )
    assert given.status == 200 and given.body["valid"] is True and given.body["source"] == "formulaire web"
    created = await alice.call("POST", "/sends", json_body=send)
    assert created.status == 201 and created.body["purpose"] == "commercial", created.body
    # Its calls name the company until it ends: the customer cannot remove the name meanwhile.
    defaults = (await alice.call("GET", "/account/defaults")).body
    kept = await alice.call("PUT", "/account/defaults", json_body={**defaults, "company_name": None})
    assert "envoi commercial n'est pas terminé" in expect_error(kept, 400, "company_required")["message"]
    withdrawn = await alice.call("DELETE", path)
    assert withdrawn.body["valid"] is False and withdrawn.body["withdrawn_at"] is not None
    expect_error(await alice.call("POST", "/sends", json_body=send), 400, "commercial_no_consent")
    other = await alice.call("GET", "/contacts/999999/consent")
    assert other.status == 404


async def test_personal_data_through_the_api(alice: Client, bob: Client) -> None:
    for who in (alice, bob):
        made = await who.call("POST", "/contacts", json_body={"phone": "06 12 34 56 78", "nom": "Dupont"})
        assert made.status == 201, made.body
    archive = await alice.call("GET", "/account/export")
    assert archive.status == 200 and archive.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.raw)) as z:
        assert "+33612345678" in z.read("contacts.csv").decode()
        assert json.loads(z.read("manifest.json"))["files"]["contacts.json"] == 1
    found = await alice.call("GET", "/privacy/numbers/0612345678")
    assert found.status == 200 and found.body["number"] == "+33612345678"
    assert found.body["counts"]["contacts"] == 1
    expect_error(await alice.call("GET", "/privacy/numbers/3615"), 400, "number_invalid")
    one = await alice.call("GET", "/privacy/numbers/+33612345678/export")
    with zipfile.ZipFile(io.BytesIO(one.raw)) as z:
        assert len(json.loads(z.read("contacts.json"))) == 1
    erased = await alice.call("DELETE", "/privacy/numbers/0612345678")
    assert erased.status == 200 and erased.body["erased"] == {"contacts": 1}
    assert (await alice.call("GET", "/privacy/numbers/0612345678")).body["counts"]["contacts"] == 0
    assert (await bob.call("GET", "/privacy/numbers/0612345678")).body["counts"]["contacts"] == 1  # his own


async def test_the_account_imports_its_own_stop_list(alice: Client, bob: Client) -> None:
    """Issue 18: an account imports its stop list (clear or hashed numbers); no later send of it calls
    them, whatever its purpose; another account's sends are not concerned (no route before: 404)."""
    hashed = hashlib.sha256(b"+33622222222").hexdigest()
    csv_text = f"numero;nom\n06 11 11 11 11;Dupont\n{hashed};\nbonjour\n".encode("cp1252")
    done = await alice.call("POST", "/account/stoplist", data=_form(csv_text, "opposition.csv"))
    assert done.status == 200, done.body
    assert (done.body["read"], done.body["added"]) == (4, 2)
    assert [r["line"] for r in done.body["refused"]] == [1, 4]  # the header and the word
    numbers = ["0611111111", "0622222222", "0633333333"]
    sent = await alice.call("POST", "/sends", json_body=send_body({"message_ref": 1, "numbers": numbers}))
    assert sent.status == 201 and sent.body["recipients"] == 1 and sent.body["stop_listed_skipped"] == 2
    bobs = await bob.call("POST", "/sends", json_body=send_body({"message_ref": 1, "numbers": numbers}))
    assert bobs.status == 201 and bobs.body["recipients"] == 3
    binary = await alice.call("POST", "/account/stoplist", data=_form(b"\x00\x01\x02", "x.bin"))
    expect_error(binary, 422, "not_csv")
