"""E-mail intake over real SMTP: mails sent with smtplib to the engine's listener, replies received by
a local SMTP sink standing in for the company's relay."""

from __future__ import annotations

import asyncio
import dataclasses
import smtplib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email import policy
from email.header import Header
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP

from engine.app import Engine
from engine.domain.schedule import format_deferred
from engine.services.intake import parse_subject
from engine.settings import Settings
from engine.store import Database
from engine.store import sends as sends_store
from engine.store.accounts import (
    get_account,
    set_company_name,
    set_default_purpose,
    set_defaults,
    set_password,
)
from engine.store.senders import declare_sender, verify_sender
from tests.conftest import PORT_BASE
from tests.integration.conftest import wait_for
from tests.integration.dialing import Customer, customer

pytestmark = pytest.mark.integration
PASSWORD = "FGB45L-motdepasse"
SINK_PORT = PORT_BASE + 26


class Sink:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(BytesParser(policy=policy.default).parsebytes(envelope.content))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    handler = Sink()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(handler), "127.0.0.1", SINK_PORT)
    yield handler
    server.close()
    await server.wait_closed()


@pytest.fixture
async def engine(stack_settings: Settings, db: Database, sink: Sink) -> AsyncIterator[Engine]:
    settings = dataclasses.replace(
        stack_settings,
        smtp_relay=f"127.0.0.1:{SINK_PORT}",
        intake_address="message@vocalcast.test",
        mail_max_bytes=20_000,
    )
    running = Engine(settings)
    running.run_dialer = False
    async with running:
        yield running


@pytest.fixture
async def client(db: Database, stack_settings: Settings, tmp_path: Path) -> Customer:
    who = await customer(db, stack_settings, tmp_path, credits=10)
    await set_password(db, who.account.id, PASSWORD)
    return who


def send_mail(
    engine: Engine,
    sender: str,
    subject: str | Header,
    *,
    to: str = "message@vocalcast.test",
    body: str = "Le contenu est ignoré.",
) -> None:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    # A Header becomes its MIME encoded-word form (=?utf-8?b?...?=) on the wire.
    message["Subject"] = subject.encode() if isinstance(subject, Header) else subject
    message.set_content(body)
    with smtplib.SMTP("127.0.0.1", engine.settings.smtp_port, timeout=10) as smtp:
        smtp.send_message(message)


def _subjects(sink: Sink) -> list[str]:
    return [str(m["Subject"]) for m in sink.messages]


async def mail(engine: Engine, sender: str, subject: str | Header, **kwargs: str) -> None:
    await asyncio.to_thread(send_mail, engine, sender, subject, **kwargs)


def test_subject_parsing() -> None:
    manual = parse_subject("FGB45L:0170709901:32:153012092011")
    assert manual is not None and (manual.password, manual.numero, manual.ref, manual.com, manual.diff) == (
        "FGB45L",
        "0170709901",
        "32",
        "",
        "153012092011",
    )
    full = parse_subject("pw:0612345678:3:Relance clients:153012092030:")
    assert full is not None and (full.com, full.diff) == ("Relance clients", "153012092030")
    comment_only = parse_subject("pw:0612345678:3:Relance: urgent")
    assert comment_only is not None and (comment_only.com, comment_only.diff) == ("Relance: urgent", "")
    cancel = parse_subject("pw:0612345678:3:153012092030s")
    assert cancel is not None and cancel.diff == "153012092030s"
    assert parse_subject("bonjour") is None


async def test_the_manuals_example_today_answers_85(engine: Engine, client: Customer, sink: Sink) -> None:
    await mail(engine, client.account.email, f"{PASSWORD}:0170709901:{client.message.ref}:153012092011")
    await wait_for(lambda: sink.messages, what="the reply")
    assert sink.messages[0]["To"] == client.account.email
    assert "85" in sink.messages[0]["Subject"] and PASSWORD not in sink.messages[0].as_string()
    assert "Le format d'envoi en différé n'est pas valide" in sink.messages[0].get_content()


async def test_sends_from_mail(engine: Engine, client: Customer, sink: Sink, db: Database) -> None:
    later = format_deferred(datetime.now(UTC) + timedelta(days=2))
    await mail(engine, client.account.email, f"{PASSWORD}:0612345678:{client.message.ref}:Relance")
    await mail(engine, client.account.email, f"{PASSWORD}:0612345679:{client.message.ref}:{later}")
    # A MIME-encoded subject (UTF-8, base64), as mail clients send accented comments.
    await mail(
        engine,
        client.account.email,
        Header(f"{PASSWORD}:0612345670:{client.message.ref}:Relance été:", "utf-8"),
    )
    await wait_for(lambda: len(sink.messages) == 3, what="three replies")
    assert sorted(m["Subject"].split()[-1] for m in sink.messages) == ["80", "80", "81"]
    sends = await sends_store.list_sends(db, client.account.id)
    assert sorted(s.comment for s in sends) == ["", "Relance", "Relance été"]
    assert {s.origin for s in sends} == {"email"}


async def test_wrong_password_or_unknown_sender_gets_no_reply(
    engine: Engine, client: Customer, sink: Sink, db: Database
) -> None:
    await mail(engine, client.account.email, f"wrong:0612345678:{client.message.ref}")
    await mail(engine, "stranger@example.org", f"{PASSWORD}:0612345678:{client.message.ref}")
    await mail(engine, client.account.email, "n'importe quoi")
    # Last, a mail that gets a reply (an unknown reference: code 91). The engine sends its reply before
    # it accepts a mail, and each mail above was accepted before the next was sent: a reply to any of
    # them would reach the sink before this one.
    await mail(engine, client.account.email, f"{PASSWORD}:0612345678:999")
    await wait_for(lambda: "vocalcast : code 91" in _subjects(sink), what="the reply to the last mail")
    assert _subjects(sink) == ["vocalcast : code 91"]
    assert await db.fetchval("SELECT count(*) FROM sends") == 0
    codes = sorted(
        r["code"] for r in await db.fetch("SELECT code FROM refused_requests WHERE origin = 'email'")
    )
    assert codes == ["82", "82", "91", "subject"]


async def test_other_recipients_and_oversized_mail_are_refused(
    engine: Engine, client: Customer, db: Database
) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        await mail(engine, client.account.email, f"{PASSWORD}:0612345678:1", to="someone@vocalcast.test")
    # Oversized: refused with 552 (at MAIL FROM, where the client announces the size, or at DATA).
    with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPDataError)) as err:
        await mail(engine, client.account.email, f"{PASSWORD}:0612345678:1", body="x" * 50_000)
    assert err.value.smtp_code == 552
    assert await db.fetchval("SELECT count(*) FROM sends") == 0
    # The listener keeps running.
    await mail(engine, client.account.email, f"{PASSWORD}:0612345678:{client.message.ref}")
    await wait_for(lambda: _count(db), what="the send")


async def _count(db: Database) -> bool:
    return bool(await db.fetchval("SELECT count(*) FROM sends"))


async def test_commercial_refusals_by_mail_create_nothing(
    engine: Engine, client: Customer, sink: Sink, db: Database
) -> None:
    """E-mail sends have the account's default purpose and sender: 98 without a presented number, 99
    with one but a number without consent; the reply says why; nothing is created."""
    await set_company_name(db, client.account.id, "Acme Énergie")  # required for a commercial default
    await set_default_purpose(db, client.account.id, "commercial")
    await mail(engine, client.account.email, f"{PASSWORD}:0612345678:{client.message.ref}")
    await wait_for(lambda: len(sink.messages) == 1, what="the 98 reply")
    assert sink.messages[0]["Subject"].split()[-1] == "98"
    assert "numéro émetteur" in sink.messages[0].get_content()
    sender = await declare_sender(db, client.account.id, "0162000000")
    await verify_sender(db, client.account.id, "0162000000")
    account = await get_account(db, client.account.id)
    await set_defaults(
        db, client.account.id, dataclasses.replace(account.defaults, sender_number_id=sender.id)
    )
    await mail(engine, client.account.email, f"{PASSWORD}:0612345678:{client.message.ref}")
    await wait_for(lambda: len(sink.messages) == 2, what="the 99 reply")
    assert sink.messages[1]["Subject"].split()[-1] == "99"
    assert "consentement" in sink.messages[1].get_content()
    assert await db.fetchval("SELECT count(*) FROM sends") == 0
