"""Accounts on the real PostgreSQL: logins, argon2 passwords, HMAC personal codes, sender numbers,
default send options, and a credits ledger that stays equal to the balance under concurrency."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime
from pathlib import PurePosixPath
from uuid import UUID

import asyncpg
import pytest

from engine.domain import accounts as domain
from engine.domain.accounts import Balance, InsufficientCredits, SendDefaults
from engine.errors import InvalidInput, NotFound
from engine.settings import Settings
from engine.store import Database, credits, senders
from engine.store import accounts as store
from engine.store import messages as messages_store


@pytest.fixture
def key(stack_settings: Settings) -> str:
    return stack_settings.require("secret_key")


async def _new(
    db: Database, key: str, email: str = "client@example.fr", **kwargs: object
) -> domain.NewAccount:
    return await store.create_account(db, email, secret_key=key, **kwargs)  # type: ignore[arg-type]


async def _ledger_sums(db: Database, account_id: UUID) -> tuple[int, int]:
    row = await db.fetchrow(
        "SELECT coalesce(sum(amount), 0) AS amount, coalesce(sum(held), 0) AS held "
        "FROM credit_ledger WHERE account_id = $1",
        account_id,
    )
    assert row is not None
    return row["amount"], row["held"]


async def _assert_ledger_matches(db: Database, account_id: UUID) -> Balance:
    current = await credits.balance(db, account_id)
    assert await _ledger_sums(db, account_id) == (current.available, current.reserved)
    assert current.available >= 0
    assert current.reserved >= 0
    return current


async def _fake_message(db: Database, account_id: UUID, *, is_greeting: bool = True) -> domain.Message:
    """A message row without audio: the account rules only look at the row."""
    message_id = uuid.uuid4()
    return await messages_store.insert_message(
        db,
        message_id=message_id,
        account_id=account_id,
        title="accueil",
        origin="phone",
        is_greeting=is_greeting,
        duration_s=2.0,
        audio_stem=PurePosixPath(f"{account_id}/{message_id}"),
        original_file=PurePosixPath(f"{account_id}/{message_id}.orig.wav"),
        original_name=None,
        loudness_lufs=-20.0,
        true_peak_dbfs=-2.0,
        created_at=datetime.now(UTC),
    )


# --- logins and passwords -------------------------------------------------------------------------------


async def test_email_is_unique_whatever_its_case(db: Database, key: str) -> None:
    first = await _new(db, key, "Jean.Dupont@Example.FR")
    assert first.account.email == "jean.dupont@example.fr"
    with pytest.raises(InvalidInput) as info:
        await _new(db, key, "  JEAN.DUPONT@example.fr ")
    assert info.value.code == "email_taken"
    assert (await store.account_by_email(db, "jean.dupont@EXAMPLE.fr")).id == first.account.id
    # The database enforces it too, for rows that did not go through the store.
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(
            "INSERT INTO accounts (email, password_hash, code_digest) VALUES ($1, $2, $3)",
            "JEAN.DUPONT@EXAMPLE.FR",
            "$argon2id$x",
            "0" * 64,
        )
    assert await db.fetchval("SELECT count(*) FROM accounts") == 1


async def test_a_refused_email_or_password_creates_nothing(db: Database, key: str) -> None:
    with pytest.raises(InvalidInput, match="e-mail") as info:
        await _new(db, key, "pas-une-adresse")
    assert info.value.code == "email_invalid"
    with pytest.raises(InvalidInput) as info:
        await _new(db, key, password="court")
    assert info.value.code == "password_invalid"
    with pytest.raises(InvalidInput) as info:
        await _new(db, key, credits=-3)
    assert info.value.code == "credit_amount"
    assert await db.fetchval("SELECT count(*) FROM accounts") == 0
    assert await db.fetchval("SELECT count(*) FROM credit_ledger") == 0


async def test_password_is_stored_as_argon2_and_verifies(db: Database, key: str) -> None:
    new = await _new(db, key, "a@example.fr")
    stored = await db.fetchval("SELECT password_hash FROM accounts WHERE id = $1", new.account.id)
    assert stored.startswith("$argon2id$")
    assert new.password not in stored
    assert len(new.password) >= 12

    found = await store.authenticate(db, "A@Example.fr", new.password)
    assert found is not None
    assert found.id == new.account.id
    assert await store.authenticate(db, "a@example.fr", new.password + "x") is None
    assert await store.authenticate(db, "nobody@example.fr", new.password) is None
    assert await store.authenticate(db, "not an e-mail", new.password) is None
    assert await store.authenticate(db, "a@example.fr", "x" * 10_000) is None


async def test_chosen_and_changed_passwords(db: Database, key: str) -> None:
    new = await _new(db, key, "b@example.fr", password="Un bon mot de passe")
    assert new.password == "Un bon mot de passe"
    assert await store.authenticate(db, "b@example.fr", "Un bon mot de passe") is not None

    generated = await store.set_password(db, new.account.id)
    assert await store.authenticate(db, "b@example.fr", "Un bon mot de passe") is None
    assert await store.authenticate(db, "b@example.fr", generated) is not None
    with pytest.raises(InvalidInput):
        await store.set_password(db, new.account.id, "a:b:c:d:e:f")
    assert await store.authenticate(db, "b@example.fr", generated) is not None
    with pytest.raises(NotFound):
        await store.set_password(db, uuid.uuid4(), "un autre mot de passe")


# --- personal codes -------------------------------------------------------------------------------------


async def test_code_is_stored_only_as_its_hmac_and_found_by_the_ivr_lookup(db: Database, key: str) -> None:
    new = await _new(db, key)
    assert domain.is_code(new.code)
    row = await db.fetchrow("SELECT * FROM accounts WHERE id = $1", new.account.id)
    assert row is not None
    assert row["code_digest"] == domain.code_digest(new.code, key)
    assert not any(new.code in str(value) for value in row.values())

    found = await store.find_by_code(db, new.code, secret_key=key)
    assert found is not None
    assert found.id == new.account.id
    wrong = f"{(int(new.code) + 1) % 10**8:08d}"
    assert await store.find_by_code(db, wrong, secret_key=key) is None
    assert await store.find_by_code(db, new.code, secret_key=key + "-other") is None
    assert await store.find_by_code(db, new.code + "#", secret_key=key) is None


async def test_regenerating_the_code_voids_the_old_one(db: Database, key: str) -> None:
    new = await _new(db, key)
    fresh = await store.regenerate_code(db, new.account.id, secret_key=key)
    assert fresh != new.code
    assert await store.find_by_code(db, new.code, secret_key=key) is None
    found = await store.find_by_code(db, fresh, secret_key=key)
    assert found is not None
    assert found.id == new.account.id
    with pytest.raises(NotFound):
        await store.regenerate_code(db, uuid.uuid4(), secret_key=key)


async def test_codes_are_unique_between_accounts(
    db: Database, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    draws = iter(["11111111", "11111111", "22222222", "22222222", "11111111", "33333333"])
    monkeypatch.setattr(domain, "generate_code", lambda: next(draws))
    a = await _new(db, key, "a@example.fr")
    b = await _new(db, key, "b@example.fr")  # draws 11111111 (taken), then 22222222
    assert (a.code, b.code) == ("11111111", "22222222")
    # B regenerates: 22222222 is its own, 11111111 is A's, 33333333 is free.
    assert await store.regenerate_code(db, b.account.id, secret_key=key) == "33333333"
    found_a = await store.find_by_code(db, "11111111", secret_key=key)
    assert found_a is not None
    assert found_a.id == a.account.id
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(
            "UPDATE accounts SET code_digest = $2 WHERE id = $1",
            b.account.id,
            domain.code_digest("11111111", key),
        )


# --- credits --------------------------------------------------------------------------------------------


async def test_initial_and_operator_credits_are_ledger_entries(db: Database, key: str) -> None:
    new = await _new(db, key, credits=100)
    assert new.account.balance == 100
    assert await credits.credit(db, new.account.id, 25, reason="virement") == Balance(125, 0)
    for bad in (0, -5):
        with pytest.raises(InvalidInput) as info:
            await credits.credit(db, new.account.id, bad)
        assert info.value.code == "credit_amount"
    with pytest.raises(NotFound):
        await credits.credit(db, uuid.uuid4(), 5)
    entries = await credits.ledger(db, new.account.id)
    assert [(e.kind, e.amount, e.reason) for e in entries] == [
        ("credit", 25, "virement"),
        ("credit", 100, "crédit initial"),
    ]
    await _assert_ledger_matches(db, new.account.id)


async def test_reserve_consume_release(db: Database, key: str) -> None:
    account_id = (await _new(db, key, credits=100)).account.id
    send = uuid.uuid4()
    assert await credits.reserve(db, account_id, send, 10) == Balance(90, 10)
    assert await credits.consume(db, account_id, send, 3) == Balance(90, 7)
    assert await credits.held_by_send(db, account_id, send) == 7
    with pytest.raises(ValueError, match="holds 7"):
        await credits.consume(db, account_id, send, 8)
    with pytest.raises(ValueError, match="holds 0"):
        await credits.consume(db, account_id, uuid.uuid4(), 1)
    assert await credits.release(db, account_id, send, 2) == 2
    assert await credits.release(db, account_id, send) == 5
    assert await credits.release(db, account_id, send) == 0  # idempotent: nothing held, no entry
    assert await credits.balance(db, account_id) == Balance(97, 0)
    entries = await credits.ledger(db, account_id)
    assert [(e.kind, e.amount, e.held) for e in reversed(entries)] == [
        ("credit", 100, 0),
        ("reserve", -10, 10),
        ("consume", 0, -3),
        ("release", 2, -2),
        ("release", 5, -5),
    ]
    assert all(e.send_id == send for e in entries[:4])
    await _assert_ledger_matches(db, account_id)


async def test_a_reservation_the_balance_cannot_cover_changes_nothing(db: Database, key: str) -> None:
    account_id = (await _new(db, key, credits=5)).account.id
    with pytest.raises(InsufficientCredits) as info:
        await credits.reserve(db, account_id, uuid.uuid4(), 6)
    assert info.value.code == "credits"
    assert info.value.message_fr == "Vous devez créditer le compte"
    assert await credits.balance(db, account_id) == Balance(5, 0)
    assert len(await credits.ledger(db, account_id)) == 1
    with pytest.raises(NotFound):
        await credits.reserve(db, uuid.uuid4(), uuid.uuid4(), 1)
    # The database refuses a negative balance even from a query that skips the store's checks.
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("UPDATE accounts SET balance = balance - 6 WHERE id = $1", account_id)


async def test_reservations_inside_the_callers_transaction(db: Database, key: str) -> None:
    """The dialer reserves while creating its send: a rollback undoes the reservation, and a refused
    reservation does not abort the caller's transaction."""
    account_id = (await _new(db, key, credits=10)).account.id
    with pytest.raises(RuntimeError, match="send creation failed"):
        async with db.transaction() as conn:
            await credits.reserve(conn, account_id, uuid.uuid4(), 4)
            raise RuntimeError("send creation failed")
    assert await credits.balance(db, account_id) == Balance(10, 0)

    send = uuid.uuid4()
    async with db.transaction() as conn:
        with pytest.raises(InsufficientCredits):
            await credits.reserve(conn, account_id, uuid.uuid4(), 11)
        await credits.reserve(conn, account_id, send, 4)
    assert await credits.balance(db, account_id) == Balance(6, 4)
    await _assert_ledger_matches(db, account_id)


async def test_concurrent_reservations_never_overdraw(
    stack_settings: Settings, db: Database, key: str
) -> None:
    account_id = (await _new(db, key, credits=30)).account.id
    async with Database(stack_settings.dsn, min_size=10, max_size=20) as pool:
        results = await asyncio.gather(
            *(credits.reserve(pool, account_id, uuid.uuid4(), 1) for _ in range(50)), return_exceptions=True
        )
    succeeded = [r for r in results if isinstance(r, Balance)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert (len(succeeded), len(refused)) == (30, 20)
    assert sorted(r.available for r in succeeded) == list(range(30))  # each saw its own predecessor
    assert await _assert_ledger_matches(db, account_id) == Balance(0, 30)


async def test_concurrent_mixed_movements_keep_the_ledger_equal_to_the_balance(
    stack_settings: Settings, db: Database, key: str
) -> None:
    account_id = (await _new(db, key, credits=20)).account.id
    earlier = [uuid.uuid4() for _ in range(10)]
    for send in earlier:
        await credits.reserve(db, account_id, send, 1)  # 10 available, 10 held
    rng = random.Random(4)
    jobs = (
        [("reserve", uuid.uuid4()) for _ in range(25)]
        + [("credit", None) for _ in range(10)]
        + [("consume", s) for s in earlier[:5]]
        + [("release", s) for s in earlier[5:]]
    )
    rng.shuffle(jobs)

    async def run(pool: Database, kind: str, send: UUID | None) -> object:
        if kind == "reserve":
            assert send is not None
            return await credits.reserve(pool, account_id, send, 2)
        if kind == "credit":
            return await credits.credit(pool, account_id, 3)
        assert send is not None
        if kind == "consume":
            return await credits.consume(pool, account_id, send, 1)
        return await credits.release(pool, account_id, send)

    async with Database(stack_settings.dsn, min_size=10, max_size=20) as pool:
        results = await asyncio.gather(*(run(pool, k, s) for k, s in jobs), return_exceptions=True)
    unexpected = [
        r for r in results if isinstance(r, BaseException) and not isinstance(r, InsufficientCredits)
    ]
    assert unexpected == []
    reserved_ok = sum(
        1 for (k, _), r in zip(jobs, results, strict=True) if k == "reserve" and isinstance(r, Balance)
    )
    final = await _assert_ledger_matches(db, account_id)
    # 10 available + 10 credits of 3 + 5 released - 2 per reservation that went through.
    assert final.available == 10 + 30 + 5 - 2 * reserved_ok
    assert final.reserved == 2 * reserved_ok
    spent = -sum(e.held for e in await credits.ledger(db, account_id, limit=500) if e.kind == "consume")
    assert spent == 5


async def test_ledger_pages_newest_first(db: Database, key: str) -> None:
    account_id = (await _new(db, key, credits=1)).account.id
    for n in range(2, 8):
        await credits.credit(db, account_id, n)
    first = await credits.ledger(db, account_id, limit=3)
    assert [e.amount for e in first] == [7, 6, 5]
    second = await credits.ledger(db, account_id, limit=3, before_id=first[-1].id)
    assert [e.amount for e in second] == [4, 3, 2]


# --- sender numbers -------------------------------------------------------------------------------------


async def test_sender_numbers_are_declared_then_verified(db: Database, key: str) -> None:
    account_id = (await _new(db, key)).account.id
    fixed = await senders.declare_sender(db, account_id, "01 62 12 34 56")
    assert (fixed.e164, fixed.status, fixed.is_mobile, fixed.verified_at) == (
        "+33162123456",
        "pending",
        False,
        None,
    )
    assert fixed.in_automated_range
    again = await senders.declare_sender(db, account_id, "+33162123456")
    assert again.id == fixed.id

    verified = await senders.verify_sender(db, account_id, "0162123456")
    assert verified.status == "verified"
    assert verified.verified_at is not None
    assert (await senders.verify_sender(db, account_id, "0162123456")).verified_at == verified.verified_at

    mobile = await senders.declare_sender(db, account_id, "06 12 34 56 78")
    assert (mobile.status, mobile.is_mobile, mobile.mobile_forbidden) == ("pending", True, True)
    with pytest.raises(InvalidInput) as info:
        await senders.verify_sender(db, account_id, "0612345678")
    assert info.value.code == "sender_mobile"
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(
            "UPDATE sender_numbers SET status = 'verified', verified_at = now() WHERE id = $1", mobile.id
        )
    with pytest.raises(NotFound):
        await senders.verify_sender(db, account_id, "0172360170")
    with pytest.raises(InvalidInput) as info:
        await senders.declare_sender(db, account_id, "+44 20 7946 0000")
    assert info.value.code == "sender_not_french"
    with pytest.raises(NotFound):
        await senders.declare_sender(db, uuid.uuid4(), "0172360170")

    listed = await senders.list_senders(db, account_id)
    assert [(s.e164, s.status) for s in listed] == [("+33162123456", "verified"), ("+33612345678", "pending")]


async def test_another_account_may_declare_the_same_number(db: Database, key: str) -> None:
    a = (await _new(db, key, "a@example.fr")).account.id
    b = (await _new(db, key, "b@example.fr")).account.id
    await senders.declare_sender(db, a, "0162360170")
    await senders.verify_sender(db, a, "0162360170")
    other = await senders.declare_sender(db, b, "0162360170")
    assert other.status == "pending"  # verifying it for A says nothing about B


# --- default send options -------------------------------------------------------------------------------


async def test_default_send_options_round_trip(db: Database, key: str) -> None:
    account_id = (await _new(db, key)).account.id
    assert (await store.get_account(db, account_id)).defaults == SendDefaults()
    greeting = await _fake_message(db, account_id)
    sender = await senders.declare_sender(db, account_id, "0948123456")
    await senders.verify_sender(db, account_id, "0948123456")
    wanted = SendDefaults(
        greeting_enabled=True,
        greeting_message_id=greeting.id,
        transfer_number="01 72 36 01 70",
        sender_number_id=sender.id,
        retries=3,
        retry_interval_s=600,
        voicemail_drop=True,
    )
    account = await store.set_defaults(db, account_id, wanted)
    assert account.defaults == SendDefaults(
        greeting_enabled=True,
        greeting_message_id=greeting.id,
        transfer_number="+33172360170",
        sender_number_id=sender.id,
        retries=3,
        retry_interval_s=600,
        voicemail_drop=True,
    )
    assert (await store.get_account(db, account_id)).defaults == account.defaults


async def test_defaults_must_use_the_accounts_own_greeting_and_verified_sender(
    db: Database, key: str
) -> None:
    a = (await _new(db, key, "a@example.fr")).account.id
    b = (await _new(db, key, "b@example.fr")).account.id
    b_greeting = await _fake_message(db, b)
    a_plain = await _fake_message(db, a, is_greeting=False)
    for message in (b_greeting, a_plain):
        with pytest.raises(InvalidInput) as info:
            await store.set_defaults(
                db, a, SendDefaults(greeting_enabled=True, greeting_message_id=message.id)
            )
        assert info.value.code == "greeting_invalid"
    pending = await senders.declare_sender(db, a, "0172360170")
    b_sender = await senders.declare_sender(db, b, "0162000000")
    await senders.verify_sender(db, b, "0162000000")
    for sender_id in (pending.id, b_sender.id):
        with pytest.raises(InvalidInput) as info:
            await store.set_defaults(db, a, SendDefaults(sender_number_id=sender_id))
        assert info.value.code == "sender_not_verified"
    # Even a query that skips the store cannot point A's defaults at B's rows.
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await db.execute(
            "UPDATE accounts SET default_greeting_message_id = $2 WHERE id = $1", a, b_greeting.id
        )
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await db.execute("UPDATE accounts SET default_sender_number_id = $2 WHERE id = $1", a, b_sender.id)
    assert (await store.get_account(db, a)).defaults == SendDefaults()


async def test_defaults_follow_the_accounts_options(db: Database, key: str) -> None:
    account_id = (await _new(db, key)).account.id
    with pytest.raises(InvalidInput) as info:
        await store.set_defaults(db, account_id, SendDefaults(transfer_number="+442079460000"))
    assert info.value.code == "transfer_invalid"
    await store.set_options(db, account_id, allow_international=True)
    await store.set_defaults(
        db, account_id, SendDefaults(transfer_number="+442079460000", voicemail_drop=True)
    )
    # Switching the options off switches off the defaults that depended on them.
    account = await store.set_options(db, account_id, allow_international=False, allow_voicemail_drop=False)
    assert (account.defaults.transfer_number, account.defaults.voicemail_drop) == (None, False)
    with pytest.raises(InvalidInput) as info:
        await store.set_defaults(db, account_id, SendDefaults(voicemail_drop=True))
    assert info.value.code == "voicemail_drop_disabled"


async def test_deleting_the_default_greeting_switches_it_off(db: Database, key: str) -> None:
    account_id = (await _new(db, key)).account.id
    greeting = await _fake_message(db, account_id)
    await store.set_defaults(
        db, account_id, SendDefaults(greeting_enabled=True, greeting_message_id=greeting.id)
    )
    await messages_store.delete_message(db, account_id, greeting.ref)
    defaults = (await store.get_account(db, account_id)).defaults
    assert (defaults.greeting_enabled, defaults.greeting_message_id) == (False, None)
