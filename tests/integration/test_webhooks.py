"""Webhooks on the real stack: a send to SIPp callees delivers its events, signed, to a receiver in the
test (127.0.0.1, allowed by VOCALCAST_WEBHOOK_ALLOW_PRIVATE); a receiver down then back gets every event
(a duplicate only ever with the same event id); one answering 410 stops receiving; a URL pointing to a
private address is refused when the setting is off."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP

from engine.app import Engine
from engine.domain.sends import SendStatus
from engine.domain.webhooks import EVENT_TYPES, verify
from engine.errors import InvalidInput
from engine.services.sends import create_send
from engine.services.webhooks import Webhooks
from engine.settings import Settings
from engine.store import Database
from engine.store import sends as sends_store
from engine.store import tokens as tokens_store
from engine.store import webhooks as webhooks_store
from engine.store.accounts import set_password
from tests.integration.conftest import wait_for
from tests.integration.dialing import Customer, customer, targets
from tests.integration.test_dialer import callees, fast
from tests.integration.uiclient import UiClient
from tests.support.sendbody import send_body

pytestmark = pytest.mark.integration

# 0: listened, 5: busy, 6: rejected (dialer_callees.xml); no retries: one attempt each.
NUMBERS = ["0612345600", "0612345610", "0612345605", "0612345606"]


@dataclass
class Received:
    event_id: str
    timestamp: int
    signature: str
    body: bytes
    status: int  # what the receiver answered

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records every POST and answers what ``answer`` says."""

    answer: Callable[[int], tuple[int, dict[str, str]]] = lambda n: (200, {})
    got: list[Received] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/in?k=1"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status, headers = self.answer(len(self.got))
        self.got.append(
            Received(
                request.headers["X-Vocalcast-Event-Id"],
                int(request.headers["X-Vocalcast-Timestamp"]),
                request.headers["X-Vocalcast-Signature"],
                body,
                status,
            )
        )
        return web.Response(status=status, headers=headers, text="ok")

    def delivered(self) -> list[Received]:
        return [r for r in self.got if r.status == 200]


@asynccontextmanager
async def receiving(receiver: Receiver, port: int = 0) -> AsyncIterator[Receiver]:
    app = web.Application()
    app.router.add_post("/hooks/in", receiver.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
    await site.start()
    receiver.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield receiver
    finally:
        await runner.cleanup()


def settings_for(stack_settings: Settings, **more: Any) -> Settings:
    return dataclasses.replace(
        fast(stack_settings),
        breaker_min_failures=1000,  # the busy/rejected numbers are not the trunk's fault
        webhook_allow_private=True,
        webhook_poll_s=0.1,
        webhook_retry_base_s=0.3,
        webhook_retry_max_s=1.0,
        **more,
    )


async def _run_send(db: Database, settings: Settings, who: Customer, engine: Engine) -> Any:
    send = await create_send(
        db,
        settings,
        who.account,
        message_ref=who.message.ref,
        targets=targets(NUMBERS),
        origin="api",
        retries=0,
    )
    engine.dialer.wake()

    async def done() -> bool:
        return (await sends_store.get_send(db, send.id)).status is SendStatus.completed

    await wait_for(done, timeout_s=60, interval_s=0.2, what="the send to complete")
    return send


async def _outbox(db: Database) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch("SELECT * FROM webhook_events ORDER BY sequence")]


def _check_signed(got: list[Received], secret: str) -> None:
    for r in got:
        assert verify(secret, r.timestamp, r.body, r.signature, at=time.time()), r.event_id
        assert r.json["id"] == r.event_id


async def test_a_send_delivers_signed_events_with_ordered_sequences(
    stack_settings: Settings,
    db: Database,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    settings = settings_for(stack_settings)
    sipp = await callees(settings, sipp_ports, tmp_path, max_channels=10, max_cps=20)
    who = await customer(db, settings, tmp_path, credits=100)
    async with receiving(Receiver()) as receiver, sipp, Engine(settings) as engine:
        _, secret = await Webhooks(db, settings).configure(who.account.id, url=receiver.url)
        assert secret is not None
        send = await _run_send(db, settings, who, engine)
        expected = 2 + 2 * len(NUMBERS)  # started, completed, an attempt and a recipient per number
        await wait_for(lambda: len(receiver.got) >= expected, timeout_s=20, what="every event")
        await asyncio.sleep(0.5)  # nothing more may come

    got = receiver.got
    assert len(got) == expected and all(r.status == 200 for r in got)
    _check_signed(got, secret)
    ids = [r.event_id for r in got]
    assert len(set(ids)) == len(ids)  # unique ids, no duplicate
    bodies = [r.json for r in got]
    assert Counter(b["type"] for b in bodies) == {
        "send.started": 1,
        "send.completed": 1,
        "attempt.final": len(NUMBERS),
        "recipient.final": len(NUMBERS),
    }
    assert {b["send_id"] for b in bodies} == {str(send.id)}
    seq = {b["id"]: b["sequence"] for b in bodies}
    assert len(set(seq.values())) == len(seq)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for b in bodies:
        by_type.setdefault(b["type"], []).append(b)
    started, completed = by_type["send.started"][0], by_type["send.completed"][0]
    # The sequence orders a send's events as they happened: started first, completed last, and each
    # number's call before its final outcome.
    assert started["sequence"] == min(seq.values()) and completed["sequence"] == max(seq.values())
    for recipient in by_type["recipient.final"]:
        attempt = next(
            a for a in by_type["attempt.final"] if a["data"]["recipient_id"] == recipient["data"]["id"]
        )
        assert attempt["sequence"] < recipient["sequence"]
        assert (
            recipient["data"]["calls"][0]["outcome"]
            == attempt["data"]["outcome"]
            == recipient["data"]["outcome"]
        )
    outcomes = {r["data"]["number"][-2:]: r["data"]["outcome"] for r in by_type["recipient.final"]}
    assert outcomes == {"00": "listened", "10": "listened", "05": "busy", "06": "rejected"}
    # The objects carry the API's fields; times are ISO 8601 with their zone.
    assert completed["data"]["status"] == "completed" and completed["data"]["progress"]["done"] == len(
        NUMBERS
    )
    assert completed["data"]["id"] == str(send.id) and completed["data"]["message_ref"] == who.message.ref
    assert all(b["created_at"].endswith("+00:00") for b in bodies)
    log = await webhooks_store.deliveries(db, who.account.id, limit=100)
    assert {d.status for d in log} == {"delivered"} and all(d.tries == 1 for d in log)


async def test_receiver_down_then_back_gets_every_event(
    stack_settings: Settings,
    db: Database,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """Nothing listening at first (connection refused), then 503s (one with Retry-After), then 200."""
    settings = settings_for(stack_settings)
    sipp = await callees(settings, sipp_ports, tmp_path, max_channels=10, max_cps=20)
    who = await customer(db, settings, tmp_path, credits=100)
    down_until = [0.0]

    def answer(n: int) -> tuple[int, dict[str, str]]:
        if time.monotonic() < down_until[0]:
            return 503, ({"Retry-After": "1"} if n == 0 else {})
        return 200, {}

    receiver = Receiver(answer)
    async with receiving(receiver):
        port = receiver.port  # taken, then let go: nothing listens there for a while
    async with sipp, Engine(settings) as engine:
        _, secret = await Webhooks(db, settings).configure(who.account.id, url=receiver.url)
        assert secret is not None
        send = await _run_send(db, settings, who, engine)
        events = await _outbox(db)
        assert len(events) == 2 + 2 * len(NUMBERS)
        refused = await wait_for(
            lambda: _tried_and_failed(db), timeout_s=10, what="tries refused while nothing listens"
        )
        assert refused
        down_until[0] = time.monotonic() + 2.0
        async with receiving(receiver, port):
            await wait_for(lambda: any(r.status == 503 for r in receiver.got), timeout_s=10, what="503s")

            async def all_delivered() -> bool:
                return all(e["status"] == "delivered" for e in await _outbox(db))

            await wait_for(all_delivered, timeout_s=30, interval_s=0.2, what="every event delivered")

    assert send.id
    _check_signed(receiver.got, secret)
    delivered = receiver.delivered()
    outbox_ids = {str(e["id"]) for e in events}
    assert {r.event_id for r in delivered} == outbox_ids  # every event, once back
    # A duplicate is only ever the same event again: same id, same body.
    bodies: dict[str, bytes] = {}
    for r in receiver.got:
        assert bodies.setdefault(r.event_id, r.body) == r.body
    assert any(r.status == 503 for r in receiver.got)
    tries = [
        row["n"] for row in await db.fetch("SELECT count(*) AS n FROM webhook_deliveries GROUP BY event_id")
    ]
    assert max(tries) >= 3  # refused connections, 503s, then the delivery
    errors = await db.fetch("SELECT error FROM webhook_deliveries WHERE status IS NULL")
    assert errors and all("Connect" in (e["error"] or "") for e in errors), errors


async def _tried_and_failed(db: Database) -> bool:
    n = await db.fetchval(
        "SELECT count(*) FROM webhook_deliveries WHERE status IS NULL AND error IS NOT NULL"
    )
    return bool(n and n >= 3)


async def test_a_receiver_answering_410_stops_receiving(
    stack_settings: Settings,
    db: Database,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    # One delivery at a time: the first answer (410) is known before any other event is tried.
    settings = settings_for(stack_settings, webhook_concurrency=1)
    sipp = await callees(settings, sipp_ports, tmp_path, max_channels=10, max_cps=20)
    who = await customer(db, settings, tmp_path, credits=100)
    receiver = Receiver(lambda n: (410, {}))
    async with receiving(receiver), sipp, Engine(settings) as engine:
        hooks = Webhooks(db, settings)
        await hooks.configure(who.account.id, url=receiver.url)
        await _run_send(db, settings, who, engine)

        async def settled() -> bool:
            return all(e["status"] != "pending" for e in await _outbox(db))

        await wait_for(settled, timeout_s=20, what="no event left to deliver")
        await asyncio.sleep(1.0)  # nothing more may come
        assert len(receiver.got) == 1
        shown = await hooks.show(who.account.id)
        assert shown is not None and shown.disabled_at is not None
        assert shown.disabled_reason is not None and "410" in shown.disabled_reason
        statuses = Counter(e["status"] for e in await _outbox(db))
        # The event that got the 410 failed; any other waiting for that endpoint was dropped, and the
        # events that happened after it were never queued.
        assert statuses["failed"] == 1 and set(statuses) <= {"failed", "dropped"}, statuses
        # A later send queues nothing for a disabled endpoint; setting the URL again enables it.
        before = len(await _outbox(db))
        await _run_send(db, settings, who, engine)
        assert len(await _outbox(db)) == before
        receiver.answer = lambda n: (200, {})
        await hooks.configure(who.account.id, url=receiver.url)
        queued = await hooks.test(who.account.id)
        await wait_for(
            lambda: any(r.event_id == str(queued.id) for r in receiver.got), timeout_s=10, what="test"
        )


async def test_a_private_address_is_refused_when_the_setting_is_off(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    settings = dataclasses.replace(stack_settings, webhook_allow_private=False, webhook_poll_s=0.1)
    who = await customer(db, settings, tmp_path, credits=10)
    receiver = Receiver()
    async with receiving(receiver), Engine(settings):
        hooks = Webhooks(db, settings)
        with pytest.raises(InvalidInput) as refused:
            await hooks.configure(who.account.id, url=receiver.url)  # 127.0.0.1 itself
        assert refused.value.code == "webhook_address"
        # A host name is only resolved when connecting: "localhost" (from /etc/hosts, no DNS query) is
        # stored as if it were a public name that later resolved to loopback, and refused at connect time.
        await webhooks_store.set_settings(
            db, who.account.id, url=f"http://localhost:{receiver.port}/hooks/in"
        )
        queued = await hooks.test(who.account.id)

        async def tried() -> Any:
            found, tries = await hooks.delivery(who.account.id, queued.id)
            return (found, tries) if found.status != "pending" else None

        found, tries = await wait_for(tried, timeout_s=10, what="the try")
    assert found.status == "failed" and found.last_status is None
    assert found.last_error is not None and "loopback" in found.last_error
    assert len(tries) == 1  # never retried
    assert receiver.got == []  # nothing reached the receiver


async def _cli(*argv: str) -> tuple[int, str]:
    """`vocalcast …` as a separate process on this test instance (loopback endpoints allowed)."""
    env = {**os.environ, "VOCALCAST_WEBHOOK_ALLOW_PRIVATE": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine.cli", *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_api_and_cli_manage_the_webhook(stack_settings: Settings, db: Database, tmp_path: Path) -> None:
    settings = settings_for(stack_settings)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    alice = await customer(db, settings, tmp_path / "a", credits=10, email="alice@example.fr")
    bob = await customer(db, settings, tmp_path / "b", credits=10, email="bob@example.fr")
    token = (await tokens_store.create_token(db, alice.account.id)).secret
    bob_send = await create_send(
        db, settings, bob.account, message_ref=bob.message.ref, targets=targets(NUMBERS[:1]), origin="api"
    )
    receiver = Receiver()
    async with receiving(receiver), Engine(settings) as engine, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{engine.http_port}/api/v1"
        auth = {"Authorization": f"Bearer {token}"}

        async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
            async with http.request(method, base + path, json=body, headers=auth) as resp:
                return resp.status, (await resp.json() if resp.status != 204 else None)

        assert await call("GET", "/webhook") == (
            200,
            {
                "url": None,
                "events": list(EVENT_TYPES),
                "enabled": False,
                "disabled_at": None,
                "disabled_reason": None,
                "updated_at": None,
            },
        )
        assert (await call("POST", "/webhook/test"))[0] == 409  # nowhere to send it
        status, saved = await call("PUT", "/webhook", {"url": receiver.url, "events": ["recipient.final"]})
        assert status == 200 and saved["enabled"] and saved["events"] == ["recipient.final"]
        secret = saved["secret"]
        assert secret.startswith("whsec_")
        status, again = await call("PUT", "/webhook", {"url": receiver.url})
        assert again["secret"] is None and again["events"] == list(EVENT_TYPES)  # shown once only
        assert "secret" not in (await call("GET", "/webhook"))[1]
        status, bad = await call("PUT", "/webhook", {"url": "ftp://example.fr/"})
        assert status == 400 and bad["code"] == "webhook_url"
        status, rotated = await call("POST", "/webhook/secret")
        assert status == 200 and rotated["secret"] != secret
        # Another account's send is not found; the own account's sends accept an override.
        assert (await call("PUT", f"/sends/{bob_send.id}/webhook", {"url": receiver.url}))[0] == 404
        status, queued = await call("POST", "/webhook/test")
        assert status == 202 and queued["type"] == "webhook.test" and queued["status"] == "pending"
        await wait_for(lambda: len(receiver.got) == 1, timeout_s=10, what="the test event")
        got = receiver.got[0]
        assert verify(rotated["secret"], got.timestamp, got.body, got.signature, at=time.time())
        status, detail = await call("GET", f"/webhook/deliveries/{queued['id']}")
        assert (
            status == 200
            and detail["status"] == "delivered"
            and [a["status"] for a in detail["attempts"]] == [200]
        )
        status, replayed = await call("POST", f"/webhook/deliveries/{queued['id']}/replay")
        assert status == 202 and replayed["id"] == queued["id"]
        await wait_for(lambda: len(receiver.got) == 2, timeout_s=10, what="the replay")
        assert (
            receiver.got[1].event_id == receiver.got[0].event_id
            and receiver.got[1].body == receiver.got[0].body
        )
        status, page = await call("GET", "/webhook/deliveries?limit=10")
        assert status == 200 and [d["id"] for d in page["deliveries"]] == [queued["id"]]

        # A send's own webhook given with its creation: checked first (nothing created when refused), and
        # its send.started (queued at the send's commit for the account's endpoint) goes there instead.
        status, refused = await call(
            "POST",
            "/sends",
            send_body(
                {"message_ref": 1, "numbers": [NUMBERS[0]], "webhook": {"url": "http://169.254.169.254/"}}
            ),
        )
        assert status == 400 and refused["code"] == "webhook_address"
        assert await db.fetchval("SELECT count(*) FROM sends WHERE account_id = $1", alice.account.id) == 0
        own = receiver.url + "&send=1"
        status, created = await call(
            "POST",
            "/sends",
            send_body(
                {
                    "message_ref": 1,
                    "numbers": [NUMBERS[0]],
                    "webhook": {"url": own, "events": ["send.started"]},
                }
            ),
        )
        assert status == 201
        status, hook = await call("GET", f"/sends/{created['id']}/webhook")
        assert hook["url"] == own and hook["events"] == ["send.started"]
        rows = await db.fetch(
            "SELECT type, url, target FROM webhook_events WHERE send_id = $1", UUID(created["id"])
        )
        assert [tuple(r) for r in rows] == [("send.started", own, "send")]
        await wait_for(lambda: len(receiver.got) == 3, timeout_s=10, what="the send's own send.started")
        assert (
            receiver.got[2].json["type"] == "send.started"
            and receiver.got[2].json["send_id"] == created["id"]
        )
        assert (await call("DELETE", f"/sends/{created['id']}/webhook"))[0] == 204
        assert (await call("POST", f"/sends/{created['id']}/cancel"))[0] == 200
        rows = await db.fetch("SELECT url FROM webhook_events WHERE send_id = $1 AND type = 'send.completed'",
                              UUID(created["id"]))  # fmt: skip
        assert [r["url"] for r in rows] == [receiver.url]  # the account's endpoint again
        await wait_for(lambda: len(receiver.got) == 4, timeout_s=10, what="send.completed")

        # The same from the command line.
        rc, out = await _cli(
            "webhook", "set", "--account", "alice@example.fr", "--url", receiver.url + "&cli=1"
        )
        assert rc == 0 and "secret" not in out  # the secret was shown the first time already
        rc, out = await _cli("webhook", "show", "--account", "alice@example.fr", "--json")
        assert json.loads(out)["url"] == receiver.url + "&cli=1" and json.loads(out)["enabled"]
        rc, out = await _cli("webhook", "rotate", "--account", "alice@example.fr")
        cli_secret = out.strip().splitlines()[-1]
        assert rc == 0 and cli_secret.startswith("whsec_") and cli_secret != rotated["secret"]
        rc, out = await _cli("webhook", "test", "--account", "alice@example.fr")
        assert rc == 0
        await wait_for(lambda: len(receiver.got) == 5, timeout_s=10, what="the CLI's test event")
        got = receiver.got[4]
        assert verify(cli_secret, got.timestamp, got.body, got.signature, at=time.time())
        rc, out = await _cli("webhook", "log", "--account", "alice@example.fr", "--json")
        assert rc == 0 and len(out.splitlines()) == 4
        rc, out = await _cli("webhook", "replay", "--account", "alice@example.fr", receiver.got[4].event_id)
        assert rc == 0
        await wait_for(lambda: len(receiver.got) == 6, timeout_s=10, what="the CLI's replay")
        assert receiver.got[5].event_id == receiver.got[4].event_id


class Sink:
    """An SMTP relay in the test: the e-mails vocalcast sends."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(BytesParser(policy=policy.default).parsebytes(envelope.content))  # type: ignore[arg-type]
        return "250 OK"


async def test_parametres_page_sets_the_webhook_and_tells_when_410_disabled_it(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    sink = Sink()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(sink), "127.0.0.1", 0)
    relay = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    settings = dataclasses.replace(
        settings_for(stack_settings), smtp_relay=relay, mail_from="espace@vocal.test"
    )
    who = await customer(db, settings, tmp_path, credits=10, email="alice@example.fr")
    await set_password(db, who.account.id, "motdepasse-solide-42")
    receiver = Receiver(lambda n: (410, {}))
    async with receiving(receiver), Engine(settings) as engine:
        browser = UiClient(engine)
        try:
            await browser.login("alice@example.fr", "motdepasse-solide-42")
            page = await browser.get("/parametres")
            assert page.status == 200 and page.contains("Webhooks") and page.contains("Événements envoyés")
            bad = await browser.post("/parametres/webhook", {"url": "ftp://exemple.fr/"})
            assert bad.status == 400 and bad.contains("doit commencer par http:// ou https://")
            saved = await browser.post(
                "/parametres/webhook",
                [("url", receiver.url), ("events", "recipient.final"), ("events", "send.started")],
            )
            assert saved.status == 200 and saved.contains("Votre secret de signature")
            secret = re.search(r'id="webhook-secret">([^<]+)<', saved.text)
            assert secret is not None and secret.group(1).startswith("whsec_")
            shown = await hooks_show(db, who)
            assert shown.url == receiver.url and shown.events == ("send.started", "recipient.final")
            again = await browser.get("/parametres")
            assert secret.group(1) not in again.text  # shown once
            tested = await browser.post("/parametres/webhook/test", {})
            assert tested.status == 200 and tested.contains("Événement de test envoyé")
            await wait_for(lambda: len(receiver.got) == 1, timeout_s=10, what="the test event")
            await wait_for(lambda: sink.messages, timeout_s=10, what="the e-mail")
            page = await browser.get("/parametres")
            assert page.contains("Webhook désactivé le") and page.contains("410 Gone")
            assert page.contains("Échec") and page.contains("HTTP 410")
        finally:
            await browser.close()
    server.close()
    await server.wait_closed()
    (mail,) = sink.messages
    assert mail["To"] == "alice@example.fr" and "désactivé" in str(mail["Subject"])
    assert "410" in mail.get_content()


async def hooks_show(db: Database, who: Customer) -> Any:
    found = await webhooks_store.get_settings(db, who.account.id)
    assert found is not None
    return found


async def test_a_hanging_endpoint_holds_back_no_other_and_is_retried_after_its_timeout(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    settings = settings_for(stack_settings, webhook_timeout_s=3.0)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    slow = await customer(db, settings, tmp_path / "a", credits=1, email="slow@example.fr")
    quick = await customer(db, settings, tmp_path / "b", credits=1, email="quick@example.fr")
    release = asyncio.Event()

    class Hanging(Receiver):
        async def handle(self, request: web.Request) -> web.Response:
            self.got.append(Received(request.headers["X-Vocalcast-Event-Id"], 0, "", b"", 0))
            await release.wait()  # never answers in time
            return web.Response(text="late")

    hanging, receiver = Hanging(), Receiver()
    hooks = Webhooks(db, settings)
    async with receiving(hanging), receiving(receiver), Engine(settings):
        try:
            await hooks.configure(slow.account.id, url=hanging.url)
            await hooks.configure(quick.account.id, url=receiver.url)
            stuck = [await hooks.test(slow.account.id) for _ in range(5)]
            await wait_for(lambda: len(hanging.got) == 5, timeout_s=10, what="the hanging endpoint's events")
            sent = await hooks.test(quick.account.id)
            await wait_for(lambda: len(receiver.got) == 1, timeout_s=10, what="the other account's event")
            # Delivered while the five tries to the hanging endpoint were still open (timeout: 3 s).
            assert receiver.got[0].event_id == str(sent.id)
            assert [(await hooks.delivery(slow.account.id, e.id))[0].tries for e in stuck] == [0] * 5

            async def timed_out() -> bool:
                tried = [(await hooks.delivery(slow.account.id, e.id))[1] for e in stuck]
                return all(len(t) >= 1 for t in tried)

            await wait_for(timed_out, timeout_s=15, what="the timeouts recorded")
            found, tries = await hooks.delivery(slow.account.id, stuck[0].id)
            assert found.status == "pending" and tries[0].status is None  # retried later, not given up
            assert tries[0].error == "timeout after 3 s"
        finally:
            release.set()


async def test_completion_email_with_the_summary_and_the_report_link(
    stack_settings: Settings,
    db: Database,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    sink = Sink()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(sink), "127.0.0.1", 0)
    relay = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    settings = dataclasses.replace(
        settings_for(stack_settings), smtp_relay=relay, public_url="https://vocal.example.fr/"
    )
    sipp = await callees(settings, sipp_ports, tmp_path, max_channels=10, max_cps=20)
    who = await customer(db, settings, tmp_path, credits=100, email="alice@example.fr")
    token = (await tokens_store.create_token(db, who.account.id)).secret
    async with sipp, Engine(settings) as engine, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{engine.http_port}/api/v1/account/notifications"
        auth = {"Authorization": f"Bearer {token}"}
        async with http.get(url, headers=auth) as resp:
            assert await resp.json() == {"completion_email": False}
        quiet = await _run_send(db, settings, who, engine)  # not asked for yet: no e-mail
        async with http.put(url, json={"completion_email": True}, headers=auth) as resp:
            assert resp.status == 200 and await resp.json() == {"completion_email": True}
        send = await _run_send(db, settings, who, engine)
        await wait_for(lambda: sink.messages, timeout_s=15, what="the completion e-mail")
        await asyncio.sleep(0.5)  # nothing more may come
    server.close()
    await server.wait_closed()
    (mail,) = sink.messages
    assert mail["To"] == "alice@example.fr" and "terminé" in str(mail["Subject"])
    text = mail.get_content().replace("\r\n", "\n")
    assert "Numéros : 4" in text
    assert "  Message écouté : 2\n" in text and "  Occupé : 1\n" in text and "  Appel refusé : 1\n" in text
    assert "Crédits utilisés : 2" in text
    assert f"https://vocal.example.fr/historique/{send.id}" in text
    assert str(quiet.id) not in text
    assert await db.fetchval("SELECT count(*) FROM completion_emails WHERE status = 'sent'") == 1
