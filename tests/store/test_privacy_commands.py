"""`vocalcast account export|delete`, `vocalcast number find|export|erase` and `vocalcast retention purge`
through engine.cli.main on the test instance (synchronous: the commands run their own event loop)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from engine.settings import Settings
from engine.store import Database
from engine.store.contacts import create_contact
from tests.integration.dialing import customer
from tests.support.commands import run_command, with_db

NUMBER = "+33633000001"


def test_export_find_erase_delete_and_purge_from_the_command_line(
    stack_settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    email = "cli-rgpd@example.fr"

    async def seed(db: Database) -> None:
        await db.execute("DELETE FROM accounts WHERE email = $1", email)
        who = await customer(db, stack_settings, tmp_path, email=email)
        await create_contact(db, who.account.id, phone=NUMBER, allow_international=False, nom="Martin")

    with_db(stack_settings, seed)
    out_zip = tmp_path / "export.zip"
    rc, out, _ = run_command(
        capsys, "account", "export", "--account", email, "--output", str(out_zip), "--json"
    )
    assert rc == 0
    counts = json.loads(out)["counts"]
    assert counts["contacts.csv"] == counts["contacts.json"] == 1 and counts["profil.csv"] == 1
    with zipfile.ZipFile(out_zip) as archive:
        assert NUMBER in archive.read("contacts.csv").decode()

    rc, out, _ = run_command(capsys, "number", "find", "--account", email, "06 33 00 00 01", "--json")
    assert rc == 0 and json.loads(out)["counts"]["contacts"] == 1
    rc, _, err = run_command(capsys, "number", "find", "--account", email, "3615")
    assert rc == 2 and "not a phone number" in err
    rc, out, _ = run_command(capsys, "number", "erase", "--all-accounts", NUMBER, "--json")
    assert rc == 0 and json.loads(out)["counts"] == {"contacts": 1}
    rc, out, _ = run_command(capsys, "number", "find", "--all-accounts", NUMBER, "--json")
    assert set(json.loads(out)["counts"].values()) == {0}

    rc, _, err = run_command(capsys, "retention", "purge", "--now", "2030-01-01T00:00:00")
    assert rc == 2 and "time zone" in err
    rc, out, _ = run_command(capsys, "retention", "purge", "--now", "2030-01-01T00:00:00+00:00", "--json")
    assert rc == 0 and "send_recipients" in json.loads(out)["counts"]

    rc, out, _ = run_command(capsys, "account", "delete", "--account", email, "--yes", "--json")
    assert rc == 0 and json.loads(out)["counts"]["messages"] == 1
    rc, _, err = run_command(capsys, "account", "show", "--account", email)
    assert rc == 2
    left = with_db(
        stack_settings, lambda db: db.fetchval("SELECT count(*) FROM accounts WHERE email LIKE 'supprime-%'")
    )
    assert left >= 1
