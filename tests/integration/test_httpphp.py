"""http.php through real HTTP against the engine and the real PostgreSQL: every code of the manual,
their precedence, our extra codes, POST, cp1252 comments, throttling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from engine.app import Engine
from engine.domain.schedule import format_deferred
from engine.settings import Settings
from engine.store import Database, stoplists
from engine.store import consent as consent_store
from engine.store import contacts as contacts_store
from engine.store import groups as groups_store
from engine.store import sends as sends_store
from engine.store.accounts import create_account, set_company_name, set_default_purpose, set_password
from engine.store.credits import balance
from engine.store.senders import declare_sender, verify_sender
from tests.integration.dialing import Customer, customer

pytestmark = pytest.mark.integration
PASSWORD = "motdepasse-solide-42"


@pytest.fixture
async def engine(stack_settings: Settings, db: Database) -> AsyncIterator[Engine]:
    running = Engine(stack_settings)
    running.run_dialer = False  # sends are created, not called: this is about the interface
    async with running:
        yield running


@pytest.fixture
async def client(db: Database, stack_settings: Settings, tmp_path: Path) -> Customer:
    who = await customer(db, stack_settings, tmp_path, credits=10)
    await set_password(db, who.account.id, PASSWORD)
    return who


async def call(
    engine: Engine, params: dict[str, str], *, post: bool = False, raw_query: str | None = None
) -> tuple[int, str, aiohttp.typedefs.LooseHeaders]:
    url = f"http://127.0.0.1:{engine.http_port}/http.php"
    async with aiohttp.ClientSession() as http:
        if post:
            request = http.post(url, data=params)
        else:
            request = http.get(url + "?" + (raw_query if raw_query is not None else urlencode(params)))
        async with request as resp:
            assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
            return resp.status, await resp.text(), resp.headers


def base(who: Customer, **extra: str) -> dict[str, str]:
    return {
        "email": who.account.email,
        "pass": PASSWORD,
        "numero": "0612345678",
        "ref": str(who.message.ref),
        **extra,
    }


async def test_sent_and_deferred(engine: Engine, client: Customer, db: Database) -> None:
    status, body, _ = await call(engine, base(client, com="essai"))
    assert (status, body) == (200, "80")  # the body is the code alone, no newline
    sends = await sends_store.list_sends(db, client.account.id)
    assert len(sends) == 1 and sends[0].origin == "http" and sends[0].code == "80"
    assert sends[0].comment == "essai"
    later = datetime.now(UTC) + timedelta(days=3)
    _, body, _ = await call(engine, base(client, diff=format_deferred(later)))
    assert body == "81"
    deferred = (await sends_store.list_sends(db, client.account.id))[0]
    assert deferred.status.value == "scheduled" and deferred.code == "81"
    assert abs((deferred.start_at - later).total_seconds()) < 60


@pytest.mark.parametrize(
    ("blank", "code"),
    [("email", "87"), ("pass", "88"), ("numero", "89"), ("ref", "90")],
)
async def test_missing_values(engine: Engine, client: Customer, blank: str, code: str) -> None:
    params = base(client)
    params[blank] = ""
    assert (await call(engine, params))[1] == code


async def test_precedence_when_several_things_are_wrong(
    engine: Engine, client: Customer, db: Database
) -> None:
    bad = {"numero": "12", "ref": "999", "diff": "2561", "pass": "wrong-password-xx"}
    # missing values first, in the manual's order (87, 88, 89, 90)
    assert (await call(engine, {"email": "", "pass": "", "numero": "", "ref": ""}))[1] == "87"
    assert (await call(engine, {"email": "x@y.fr", "pass": "", "numero": "", "ref": ""}))[1] == "88"
    assert (await call(engine, {"email": "x@y.fr", "pass": "p", "numero": "", "ref": ""}))[1] == "89"
    # then the login (82), before the reference (91)
    assert (await call(engine, base(client, **bad)))[1] == "82"
    bad.pop("pass")
    assert (await call(engine, base(client, **bad)))[1] == "91"
    bad.pop("ref")
    assert (await call(engine, base(client, **bad)))[1] == "84"  # number before date
    bad.pop("numero")
    assert (await call(engine, base(client, **bad)))[1] == "85"
    assert await db.fetchval("SELECT count(*) FROM sends") == 0


async def test_numbers_reference_group_transfer(
    engine: Engine, client: Customer, db: Database, stack_settings: Settings
) -> None:
    assert (await call(engine, base(client, numero="0612345678,0899123456")))[1] == "84"  # one bad: nothing
    assert (await call(engine, base(client, numero="+441234567890")))[1] == "84"  # international: off
    assert (await call(engine, base(client, transfert="3615")))[1] == "84"
    assert (await call(engine, base(client, ref="abc")))[1] == "91"
    other = await create_account(db, "autre@example.fr", secret_key=stack_settings.require("secret_key"))
    del other  # a reference of another account is just as invalid
    assert (await call(engine, base(client, ref="2")))[1] == "91"
    group = await groups_store.create_group(db, client.account.id, "Clients Lyon")
    assert (await call(engine, base(client, numero="Clients Lyon")))[1] == "86"
    contact = await contacts_store.create_contact(
        db, client.account.id, phone="0611111111", allow_international=False
    )
    await groups_store.add_members(db, client.account.id, group.id, [contact.id])
    assert (await call(engine, base(client, numero="clients lyon")))[1] == "80"
    assert (await call(engine, base(client, numero="612345678, 06.12.34.56.79")))[1] == "80"
    assert await db.fetchval("SELECT count(*) FROM sends") == 2
    assert await db.fetchval("SELECT count(*) FROM send_recipients") == 3


async def test_credits_and_extra_codes(engine: Engine, client: Customer, db: Database) -> None:
    many = ",".join(f"06{i:08d}" for i in range(12000000, 12000011))  # 11 numbers, 10 credits
    assert (await call(engine, base(client, numero=many)))[1] == "83"
    assert (await balance(db, client.account.id)).available == 10
    assert (await call(engine, base(client, emetteur="0162000000")))[1] == "94"
    await declare_sender(db, client.account.id, "0162000000")
    assert (await call(engine, base(client, emetteur="0162000000")))[1] == "94"  # pending
    await verify_sender(db, client.account.id, "0162000000")
    assert (await call(engine, base(client, emetteur="0162000000")))[1] == "80"
    assert (await call(engine, base(client, numero="0145678903", depot="1")))[1] == "95"  # not a mobile
    assert (await call(engine, base(client, depot="1")))[1] == "80"
    past = datetime.now(ZoneInfo("Europe/Paris")) - timedelta(hours=1)
    assert (await call(engine, base(client, diff=past.strftime("%H%M%d%m%Y"))))[1] == "85"
    assert (await call(engine, base(client, diff="153031022030")))[1] == "85"  # 31 February
    assert (await call(engine, base(client, diff="023029032026")))[1] == "85"  # spring DST gap
    assert (await call(engine, base(client, diff="153012092011")))[1] == "85"  # the manual's 2011 example


async def test_cancel_a_deferred_send(engine: Engine, client: Customer, db: Database) -> None:
    later = format_deferred(datetime.now(UTC) + timedelta(days=1))
    assert (await call(engine, base(client, diff=later)))[1] == "81"
    assert (await call(engine, base(client, diff=later + "s", numero="0699999999")))[1] == "93"
    assert (await call(engine, base(client, diff=later + "s")))[1] == "92"
    assert (await call(engine, base(client, diff=later + "s")))[1] == "93"  # nothing left to cancel
    send = (await sends_store.list_sends(db, client.account.id))[0]
    assert send.status.value == "cancelled"
    assert (await balance(db, client.account.id)).available == 10


async def test_post_form_and_cp1252_comment(engine: Engine, client: Customer, db: Database) -> None:
    status, body, _ = await call(engine, base(client, com="Relance été"), post=True)
    assert (status, body) == (200, "80")
    # An old PHP client: the comment percent-encoded in cp1252 ("é" = %E9).
    params = base(client)
    query = urlencode(params) + "&com=" + quote("Relance été".encode("cp1252"))
    assert (await call(engine, {}, raw_query=query))[1] == "80"
    comments = sorted(s.comment for s in await sends_store.list_sends(db, client.account.id))
    assert comments == ["Relance été", "Relance été"]


async def test_failed_logins_are_throttled_with_retry_after(
    engine: Engine, client: Customer, stack_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = base(client, **{"pass": "not-the-password"})
    for _ in range(stack_settings.login_max_failures):
        _, body, headers = await call(engine, wrong)
        assert body == "82" and "Retry-After" not in headers
    # Throttled: the body stays 82, even with the right password, and Retry-After says when to come back.
    _, body, headers = await call(engine, base(client))
    assert body == "82"
    assert 0 < int(headers["Retry-After"]) <= stack_settings.login_window_s
    # Access logs never carry the query string: the password is nowhere in what the engine logged.
    assert PASSWORD not in capsys.readouterr().err


async def test_commercial_refusals_98_99_create_nothing(
    engine: Engine, client: Customer, db: Database
) -> None:
    """An account whose default purpose is commercial (http.php states none): 98 without a usable
    presented number, 99 with a number without consent or stop-listed — before 83; nothing created."""

    await set_company_name(db, client.account.id, "Acme Énergie")  # required for a commercial default
    await set_default_purpose(db, client.account.id, "commercial")
    many = ",".join(f"06{i:08d}" for i in range(12000000, 12000011))  # 11 numbers, 10 credits, no consent
    assert (await call(engine, base(client)))[1] == "98"  # hidden caller ID
    assert (await call(engine, base(client, numero=many)))[1] == "98"  # 98 before 99 and 83
    await declare_sender(db, client.account.id, "0162000000")
    await verify_sender(db, client.account.id, "0162000000")
    sender = {"emetteur": "0162000000"}
    assert (await call(engine, base(client, **sender)))[1] == "99"  # a pasted number: no contact
    assert (await call(engine, base(client, numero=many, **sender)))[1] == "99"  # 99 before 83
    contact = await contacts_store.create_contact(
        db, client.account.id, phone="0612345678", allow_international=False
    )
    assert (await call(engine, base(client, **sender)))[1] == "99"  # a contact, no consent recorded
    assert await db.fetchval("SELECT count(*) FROM sends") == 0
    assert (await balance(db, client.account.id)).reserved == 0
    await consent_store.record(
        db, client.account.id, contact.e164, given_at=datetime.now(UTC) - timedelta(days=1), source="web"
    )
    assert (await call(engine, base(client, **sender)))[1] == "80"
    # The company name gone anyway (by hand: the commands refuse it while the purpose is commercial): the
    # call would not say whose it is (L221-16) — 98, the code closest in meaning (README); nothing created.
    await db.execute("UPDATE accounts SET company_name = NULL WHERE id = $1", client.account.id)
    assert (await call(engine, base(client, **sender)))[1] == "98"
    await set_company_name(db, client.account.id, "Acme Énergie")
    await stoplists.add(db, client.account.id, [stoplists.Entry.of(contact.e164)], source="dtmf")
    assert (await call(engine, base(client, **sender)))[1] == "99"
    sends = await sends_store.list_sends(db, client.account.id)
    assert [s.purpose for s in sends] == ["commercial"]  # only the lawful one


async def test_information_sends_leave_stop_listed_numbers_out(
    engine: Engine, client: Customer, db: Database
) -> None:

    await stoplists.add(db, client.account.id, [stoplists.Entry.of("+33612345678")], source="dtmf")
    assert (await call(engine, base(client, numero="0612345678,0612345679")))[1] == "80"
    (send,) = await sends_store.list_sends(db, client.account.id)
    assert send.purpose == "information" and send.stop_listed_skipped == 1 and send.recipients_total == 1
    numbers = await db.fetch("SELECT e164 FROM send_recipients")
    assert [r["e164"] for r in numbers] == ["+33612345679"]
