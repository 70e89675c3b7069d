"""Personal data on the real PostgreSQL (issue 20, RGPD; sql/0018_privacy.sql, engine/services/privacy.py):
an account's export (counts checked, and at volume: 100,000 contacts and a 10,000-recipient send), its
deletion (no number of it left in any text column of any table, nor a file in the media directory; the
ledger still sums), one number erased in an account and everywhere (stop lists keep it), and the
retention purge (exactly what the retention table says is keyed or removed, nothing else)."""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from engine.domain.stoplists import keyed_hash, number_hash
from engine.services import build
from engine.services.privacy import Privacy
from engine.settings import Settings
from engine.store import Database, senders, stoplists
from engine.store.contacts import create_contact
from engine.store.credits import credit
from engine.store.groups import add_members, create_group
from engine.store.privacy import pseudonym, spellings
from engine.store.stoplists import Entry
from engine.store.tokens import create_token
from engine.store.webspace import open_session
from tests.integration.dialing import customer

A1, A2, A3 = "+33611000001", "+33611000002", "+33611000003"  # the deleted / erasing account's numbers
B1 = "+33622000001"  # another account's
TRANSFER = "+33144000001"
SENDER = "+33162000009"  # a declared caller ID (ARCEP's block for automated calls)


def _privacy(db: Database, settings: Settings) -> Privacy:
    return build(settings, db).privacy


async def _send(
    db: Database, account_id: UUID, message_id: UUID, numbers: list[str], *, ended_at: datetime | None = None
) -> UUID:
    """A completed send to ``numbers``: one answered call each, and its CDR as Asterisk writes it (the
    callee in the trunk's national form)."""
    send_id = uuid4()
    ended_at = ended_at or datetime.now(UTC)
    await db.execute(
        "INSERT INTO sends (id, account_id, message_id, transfer_number, origin, status, start_at, "
        "recipients_total, comment, ended_at, created_at) "
        "VALUES ($1, $2, $3, $4, 'api', 'completed', $5, $6, 'test', $5, $5)",
        send_id,
        account_id,
        message_id,
        TRANSFER,
        ended_at,
        len(numbers),
    )
    await db.execute(
        "INSERT INTO send_recipients (send_id, e164, state, outcome, attempts, final_at, settled) "
        "SELECT $1, n, 'done', 'delivered', 1, $3, true FROM unnest($2::text[]) n",
        send_id,
        numbers,
        ended_at,
    )
    await db.execute(
        "INSERT INTO attempts (id, send_id, recipient_id, attempt_no, node, app, trunk, state, outcome, "
        "created_at, ended_at) SELECT gen_random_uuid(), send_id, id, 1, 'n1', 'vocalcast-n1', 'trunk1', "
        "'ended', 'delivered', $2, $2 FROM send_recipients WHERE send_id = $1",
        send_id,
        ended_at,
    )
    await db.execute(
        "INSERT INTO asterisk_cdr (start, dst, clid, src, channel, dstchannel, lastdata, uniqueid, "
        "disposition) "
        "SELECT $2, '0' || substr(r.e164, 4), '\"\" <0144000001>', '0144000001', 'PJSIP/trunk1-00000001', "
        "'PJSIP/trunk1-00000002', 'PJSIP/' || r.e164 || '@trunk1', a.id::text, 'ANSWERED' "
        "FROM attempts a JOIN send_recipients r ON r.id = a.recipient_id WHERE a.send_id = $1",
        send_id,
        ended_at,
    )
    return send_id


async def _number_hits(db: Database, numbers: list[str]) -> list[tuple[str, str, int]]:
    """Every (table, column, rows) where a text, varchar, json or array column holds one of the numbers
    in any spelling we store (E.164, without '+', 00, French national)."""
    patterns = [f"%{s}%" for n in numbers for s in spellings(n)]
    columns = await db.fetch(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
        "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' "
        "AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'ARRAY')"
    )
    assert len(columns) > 50  # the scan really covers the schema
    hits = []
    for row in columns:
        table, column = row["table_name"], row["column_name"]
        n = await db.fetchval(
            f'SELECT count(*) FROM "{table}" WHERE "{column}"::text LIKE ANY ($1::text[])',  # noqa: S608 - catalogue names
            patterns,
        )
        if n:
            hits.append((table, column, n))
    return hits


def _media_files(settings: Settings) -> list[Path]:
    return [p for p in settings.media_dir.rglob("*") if p.is_file()]


def _zip_rows(archive: zipfile.ZipFile, name: str) -> tuple[list[dict[str, str]], list[dict[str, object]]]:
    rows_csv = list(csv.DictReader(io.StringIO(archive.read(f"{name}.csv").decode())))
    rows_json = json.loads(archive.read(f"{name}.json"))
    return rows_csv, rows_json


async def _rich_account(db: Database, settings: Settings, tmp: Path, email: str, numbers: list[str]):  # type: ignore[no-untyped-def]
    """An account with contacts in a group, a completed send with calls and CDRs, webhooks that logged
    events with the numbers, a stop list, a token, a session, a ledger with a number in a reason."""
    who = await customer(db, settings, tmp, email=email)
    account_id = who.account.id
    await db.execute(
        "INSERT INTO webhook_settings (account_id, url, secret) VALUES ($1, 'http://127.0.0.1:9/h', 's')",
        account_id,
    )
    ids = [
        (await create_contact(db, account_id, phone=n, allow_international=False, nom=f"Nom{i}")).id
        for i, n in enumerate(numbers)
    ]
    group = await create_group(db, account_id, "Clients")
    await add_members(db, account_id, group.id, ids)
    send_id = await _send(db, account_id, who.message.id, numbers)
    await stoplists.add(db, account_id, [Entry.of(numbers[-1])], source="manual")
    await create_token(db, account_id, label="script")
    await open_session(db, account_id, f"session-{email}", client="127.0.0.1")
    await credit(db, account_id, 50, reason=f"geste commercial, appel du {numbers[0]}")
    await db.execute("UPDATE accounts SET default_transfer_number = $2 WHERE id = $1", account_id, TRANSFER)
    return who, send_id


async def test_an_account_export_holds_everything_counted(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who, send_id = await _rich_account(db, stack_settings, tmp_path, "export@example.fr", [A1, A2, A3])
    other, _ = await _rich_account(db, stack_settings, tmp_path, "autre@example.fr", [B1])
    done = await _privacy(db, stack_settings).export_account(who.account.id, tmp_path / "export.zip")

    with zipfile.ZipFile(done.path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["files"] == done.counts
        for name, expected in {
            "profil": 1,
            "contacts": 3,
            "groupes": 1,
            "membres_groupes": 3,
            "envois": 1,
            "destinataires": 3,
            "appels": 3,
            "credits": 2,  # the initial credit and the 50
            "messages": 1,
            "liste_opposition": 1,
            "jetons_api": 1,
            "webhooks": 1,
        }.items():
            rows_csv, rows_json = _zip_rows(archive, name)
            assert len(rows_csv) == len(rows_json) == expected == done.counts[f"{name}.csv"], name
        contacts_csv, contacts_json = _zip_rows(archive, "contacts")
        assert {r["e164"] for r in contacts_csv} == {str(r["e164"]) for r in contacts_json} == {A1, A2, A3}
        calls, _ = _zip_rows(archive, "appels")
        assert {r["send_id"] for r in calls} == {str(send_id)} and {r["e164"] for r in calls} == {A1, A2, A3}
        # The events the webhooks logged (one per call, the send's end, the opt-out) are the account's too.
        events_csv, _ = _zip_rows(archive, "webhooks_evenements")
        assert len(events_csv) == 5
        profile = _zip_rows(archive, "profil")[1][0]
        assert profile["email"] == "export@example.fr" and "password_hash" not in profile
        audio = sorted(n for n in archive.namelist() if n.startswith("audio/"))
        assert audio == [f"audio/{who.message.ref}-original.wav", f"audio/{who.message.ref}.wav"]
        assert len(archive.read(audio[1])) > 1000
        # Nothing of the other account, no secret.
        text = b"".join(archive.read(n) for n in archive.namelist() if not n.startswith("audio/")).decode()
        assert B1 not in text and str(other.account.id) not in text
        assert "$argon2" not in text and "secret" not in text.replace("secrets", "")


async def test_an_export_of_100000_contacts_and_a_10000_recipient_send(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who = await customer(db, stack_settings, tmp_path, email="gros@example.fr")
    account_id = who.account.id
    await db.execute(
        "INSERT INTO contacts (account_id, nom, nom_key, e164, number_type, is_mobile) "
        "SELECT $1, 'Nom' || i, 'nom' || i, '+336' || lpad(i::text, 8, '0'), 'mobile', true "
        "FROM generate_series(1, 100000) i",
        account_id,
    )
    numbers = [f"+337{i:08d}" for i in range(1, 10001)]
    send_id = await _send(db, account_id, who.message.id, numbers)
    await db.execute("ANALYZE contacts; ANALYZE send_recipients; ANALYZE attempts")

    started = time.monotonic()
    done = await _privacy(db, stack_settings).export_account(account_id, tmp_path / "big.zip")
    elapsed = time.monotonic() - started
    print(f"export of 100,000 contacts and a 10,000-recipient send: {elapsed:.1f} s, "
          f"{done.path.stat().st_size / 1e6:.1f} MB")  # fmt: skip

    assert done.counts["contacts.csv"] == done.counts["contacts.json"] == 100_000
    assert done.counts["destinataires.csv"] == done.counts["destinataires.json"] == 10_000
    assert done.counts["appels.csv"] == done.counts["appels.json"] == 10_000
    with zipfile.ZipFile(done.path) as archive:
        contacts_csv, contacts_json = _zip_rows(archive, "contacts")
        assert len(contacts_csv) == len(contacts_json) == 100_000
        assert len({r["e164"] for r in contacts_csv}) == 100_000
        recipients_csv, recipients_json = _zip_rows(archive, "destinataires")
        assert sorted(r["e164"] for r in recipients_csv) == numbers
        assert {str(r["send_id"]) for r in recipients_json} == {str(send_id)}


async def test_a_deleted_account_leaves_no_number_nor_file_and_its_ledger_sums(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who, _ = await _rich_account(db, stack_settings, tmp_path, "partir@example.fr", [A1, A2, A3])
    other, _ = await _rich_account(db, stack_settings, tmp_path, "reste@example.fr", [B1])
    account_id = who.account.id
    await senders.declare_sender(db, account_id, SENDER)
    await senders.verify_sender(db, account_id, SENDER)
    ledger_before = await db.fetch(
        "SELECT id, kind, amount, held FROM credit_ledger WHERE account_id = $1 ORDER BY id", account_id
    )
    assert len(await _number_hits(db, [A1, A2, A3, SENDER])) >= 8  # the scan sees them before
    assert any(str(account_id) in str(p) for p in _media_files(stack_settings))

    erased = await _privacy(db, stack_settings).delete_account(account_id)

    assert await _number_hits(db, [A1, A2, A3, SENDER]) == []
    assert [p for p in _media_files(stack_settings) if str(account_id) in str(p)] == []
    assert erased["contacts"] == 3 and erased["sends"] == 1 and erased["asterisk_cdr"] == 3
    assert erased["media_files"] == 4  # wav, alaw, ulaw and the original
    # The ledger is kept whole (no row lost, amounts unchanged) and still sums to the balance.
    ledger_after = await db.fetch(
        "SELECT id, kind, amount, held FROM credit_ledger WHERE account_id = $1 ORDER BY id", account_id
    )
    assert [tuple(r) for r in ledger_after] == [tuple(r) for r in ledger_before]
    row = await db.fetchrow(
        "SELECT a.balance, a.email, a.deleted_at, (SELECT sum(amount) FROM credit_ledger l "
        "WHERE l.account_id = a.id) AS total FROM accounts a WHERE id = $1",
        account_id,
    )
    assert row is not None and row["balance"] == row["total"] == 1050 and row["deleted_at"] is not None
    assert row["email"] == f"supprime-{account_id}@invalid"
    # Every table that names an account (today's and any later migration's) keeps none of its rows but
    # the ledger's.
    tables = [r["table_name"] for r in await db.fetch(
        "SELECT c.table_name FROM information_schema.columns c JOIN information_schema.tables t "
        "USING (table_schema, table_name) WHERE c.table_schema = 'public' AND c.column_name = 'account_id' "
        "AND t.table_type = 'BASE TABLE'"
    )]  # fmt: skip
    assert len(tables) >= 18
    left = {
        table: n
        for table in tables
        if (n := await db.fetchval(f'SELECT count(*) FROM "{table}" WHERE account_id = $1', account_id))  # noqa: S608
    }
    assert left == {"credit_ledger": len(ledger_before)}
    # The other account is untouched, and nobody logs in as the deleted one any more.
    assert await _number_hits(db, [B1])
    assert await db.fetchval("SELECT count(*) FROM contacts WHERE account_id = $1", other.account.id) == 1
    logins = build(stack_settings, db).logins
    assert (await logins.password("partir@example.fr", "x", client="127.0.0.1")).account is None


async def test_a_deletion_waits_for_unfinished_sends(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    who, send_id = await _rich_account(db, stack_settings, tmp_path, "encours@example.fr", [A1])
    await db.execute("UPDATE sends SET status = 'running', ended_at = NULL WHERE id = $1", send_id)
    with pytest.raises(Exception, match="unfinished"):
        await _privacy(db, stack_settings).delete_account(who.account.id)
    assert await db.fetchval("SELECT count(*) FROM contacts WHERE account_id = $1", who.account.id) == 1


async def test_one_number_erased_in_an_account_then_everywhere(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    key = stack_settings.require("secret_key")
    one, _ = await _rich_account(db, stack_settings, tmp_path, "un@example.fr", [A1, A2])
    two, _ = await _rich_account(db, stack_settings, tmp_path, "deux@example.fr", [A1, B1])
    await stoplists.add(db, one.account.id, [Entry.of(A1)], source="dtmf")
    await stoplists.add_operator(db, [Entry.of(A1)])
    privacy = _privacy(db, stack_settings)

    found = await privacy.find_number(one.account.id, "06 11 00 00 01")
    assert found["contacts"] == found["destinataires"] == found["appels"] == found["cdr"] == 1
    assert found["liste_opposition"] == 1 and found["webhooks_evenements"] == 2  # its call, its opt-out
    exported = await privacy.export_number(one.account.id, A1, tmp_path / "number.zip")
    with zipfile.ZipFile(exported.path) as archive:
        assert len(_zip_rows(archive, "destinataires")[0]) == 1
        assert {r["account_id"] for r in _zip_rows(archive, "contacts")[0]} == {str(one.account.id)}

    two_before = await privacy.find_number(two.account.id, A1)
    assert two_before["contacts"] == 1

    await privacy.erase_number(one.account.id, "0611000001")
    left = await privacy.find_number(one.account.id, A1)
    assert {k: v for k, v in left.items() if v} == {"liste_opposition": 1}  # the stop list's hash only
    assert await privacy.find_number(two.account.id, A1) == two_before  # another account: untouched
    # Still stop-listed, by its keyed hash only: without the server secret nobody finds it, and its plain
    # SHA-256 (as good as clear: every French number is hashed in seconds) is gone too.
    assert await stoplists.stopped(db, one.account.id, [A1], key=key) == {A1}
    assert await db.fetchval("SELECT count(*) FROM account_stop_list WHERE e164 = $1", A1) == 0
    assert (
        await db.fetchval("SELECT count(*) FROM account_stop_list WHERE number_hash = $1", number_hash(A1))
        == 0
    )
    assert await _stop_hashes(db, number_hash(A1)) == 1  # the operator's list, not erased yet
    assert (
        await db.fetchval(
            "SELECT count(*) FROM account_stop_list WHERE account_id = $1 AND number_hash = $2",
            one.account.id,
            keyed_hash(A1, key),
        )
        == 1
    )
    reasons = await db.fetch("SELECT account_id, reason FROM credit_ledger WHERE reason LIKE 'geste%'")
    assert {r["account_id"]: r["reason"] for r in reasons} == {
        one.account.id: "geste commercial, appel du …",
        two.account.id: f"geste commercial, appel du {A1}",
    }
    hashed = await db.fetchval(
        "SELECT r.e164 FROM send_recipients r JOIN sends s ON s.id = r.send_id WHERE s.account_id = $1 "
        "AND r.e164 LIKE '#%'",
        one.account.id,
    )
    assert hashed == pseudonym(A1, key)
    assert await _number_hits(db, [A1])  # account two's rows

    everywhere = await privacy.erase_number(None, A1)
    assert everywhere["contacts"] == 1 and everywhere["operator_stop_list"] == 1
    assert await _number_hits(db, [A1]) == []
    assert await stoplists.stopped(db, two.account.id, [A1], key=key) == {A1}  # the operator's, keyed
    assert await stoplists.stopped(db, two.account.id, [A1]) == set()
    assert await _stop_hashes(db, number_hash(A1)) == 0
    assert await _number_hits(db, [A2, B1])  # other numbers untouched


async def _stop_hashes(db: Database, value: str) -> int:
    """Rows of every stop list keyed by ``value``."""
    return int(
        await db.fetchval(
            "SELECT (SELECT count(*) FROM account_stop_list WHERE number_hash = $1) "
            "+ (SELECT count(*) FROM operator_stop_list WHERE number_hash = $1)",
            value,
        )
    )


async def _fingerprints(db: Database) -> dict[str, str]:
    tables = await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
    return {
        r["tablename"]: await db.fetchval(
            f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \"{r['tablename']}\" t"  # noqa: S608
        )
        for r in tables
    }


async def test_the_purge_keys_and_removes_exactly_what_the_retention_table_says(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    key = stack_settings.require("secret_key")
    now = datetime(2027, 6, 1, 3, tzinfo=UTC)
    keep_days = stack_settings.retention_numbers_days
    old, recent = now - timedelta(days=keep_days + 1), now - timedelta(days=keep_days - 1)
    who, _ = await _rich_account(db, stack_settings, tmp_path, "garde@example.fr", [A3])
    account_id, message_id = who.account.id, who.message.id
    old_send = await _send(db, account_id, message_id, [A1], ended_at=old)
    await _send(db, account_id, message_id, [A2], ended_at=recent)
    for at, numero in ((old, "+336…0001"), (recent, "+336…0002")):
        await db.execute(
            "INSERT INTO refused_requests (at, origin, code, account_id, detail) "
            "VALUES ($1, 'http', '95', $2, $3)",
            at,
            account_id,
            f"mot de passe incorrect; ref='1' numero={numero}",
        )
    # Messages deleted long ago and lately (their files gone at deletion), and a live one.
    msg_days = stack_settings.retention_deleted_messages_days
    for title, deleted in (
        ("ancien", now - timedelta(days=msg_days + 1)),
        ("recent", now - timedelta(days=1)),
    ):
        await db.execute(
            "INSERT INTO messages (id, account_id, ref, title, origin, duration_s, audio_stem, "
            "original_file, original_name, loudness_lufs, true_peak_dbfs, deleted_at) "
            "VALUES (gen_random_uuid(), $1, (SELECT max(ref) + 1 FROM messages), $2, 'file', 1, 'x/y', "
            "'x/y.mp3', $2 || '.mp3', -16, -1, $3)",
            account_id,
            title,
            deleted,
        )
    before = await _fingerprints(db)
    recipients_before = {r["id"]: r["e164"] for r in await db.fetch("SELECT id, e164 FROM send_recipients")}
    cdr_before = {r["id"]: dict(r) for r in await db.fetch("SELECT * FROM asterisk_cdr")}

    purged = await _privacy(db, stack_settings).purge(now)

    assert purged == {"send_recipients": 1, "asterisk_cdr": 1, "refused_requests": 1, "messages": 1,
                      "media_files": 0, "inbound_cdr": 0}  # fmt: skip
    after = await _fingerprints(db)
    changed = {t for t in before if before[t] != after[t]}
    assert changed == {"send_recipients", "asterisk_cdr", "refused_requests", "messages"}
    recipients_after = {r["id"]: r["e164"] for r in await db.fetch("SELECT id, e164 FROM send_recipients")}
    old_ids = {r["id"] for r in await db.fetch("SELECT id FROM send_recipients WHERE send_id = $1", old_send)}
    assert {i: e for i, e in recipients_after.items() if i in old_ids} == {
        i: pseudonym(A1, key) for i in old_ids
    }
    assert {i: e for i, e in recipients_after.items() if i not in old_ids} == {
        i: e for i, e in recipients_before.items() if i not in old_ids
    }
    cdr_after = {r["id"]: dict(r) for r in await db.fetch("SELECT * FROM asterisk_cdr")}
    keyed = [i for i in cdr_after if cdr_after[i] != cdr_before[i]]
    assert len(keyed) == 1 and cdr_after[keyed[0]]["dst"] == pseudonym(A1, key)  # 0611000001 keyed as E.164
    assert "611000001" not in json.dumps(cdr_after[keyed[0]], default=str)
    assert cdr_after[keyed[0]]["start"] == old and cdr_after[keyed[0]]["disposition"] == "ANSWERED"
    details = sorted(r["detail"] for r in await db.fetch("SELECT detail FROM refused_requests"))
    assert details == [
        "mot de passe incorrect; ref='1' numero=#",
        "mot de passe incorrect; ref='1' numero=+336…0002",
    ]
    titles = {
        r["title"]: r["original_name"] for r in await db.fetch("SELECT title, original_name FROM messages")
    }
    assert titles == {
        "Message supprimé": None,
        "recent": "recent.mp3",
        who.message.title: who.message.original_name,
    }
    # A second run finds nothing more to do.
    assert set((await _privacy(db, stack_settings).purge(now)).values()) == {0}
