"""The operator's commands for the law (issue 18): an account's purpose when set up and later, stop lists
imported from a file (clear and hashed numbers, a header refused line by line), the operator's list."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from engine.settings import Settings
from engine.store import accounts as store
from engine.store import stoplists
from tests.support.commands import run_command, with_db


def _account_id(settings: Settings, email: str) -> uuid.UUID:
    return with_db(settings, lambda db: store.account_by_email(db, email)).id


def _purpose(settings: Settings, email: str) -> str:
    return with_db(settings, lambda db: store.account_by_email(db, email)).default_purpose


def test_account_purpose_at_creation_and_later(
    stack_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    email = f"cli-{uuid.uuid4().hex[:10]}@example.fr"
    create = ("account", "create", "--email", email, "--purpose", "commercial", "--json")
    # Commercial needs the company its calls name (L221-16): refused without one, nothing created.
    rc, _, err = run_command(capsys, *create)
    assert rc == 2 and "company name" in err
    assert run_command(capsys, "account", "purpose", "--account", email, "information")[0] == 2  # no account
    rc, out, _ = run_command(capsys, *create, "--company", "Acme Énergie")
    assert rc == 0 and json.loads(out)["purpose"] == "commercial"
    assert _purpose(stack_settings, email) == "commercial"
    rc, _, err = run_command(capsys, "account", "company", "--account", email, "off")
    assert rc == 2 and "company name" in err
    rc, out, _ = run_command(capsys, "account", "purpose", "--account", email, "information")
    assert rc == 0 and out.strip().endswith("information")
    assert _purpose(stack_settings, email) == "information"
    assert run_command(capsys, "account", "company", "--account", email, "off")[0] == 0
    rc, _, err = run_command(capsys, "account", "purpose", "--account", email, "commercial")
    assert rc == 2 and "company name" in err
    assert _purpose(stack_settings, email) == "information"
    with pytest.raises(SystemExit):
        run_command(capsys, "account", "purpose", "--account", email, "pub")


def test_stop_list_import_clear_hashed_and_operator(
    stack_settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    email = f"cli-{uuid.uuid4().hex[:10]}@example.fr"
    assert run_command(capsys, "account", "create", "--email", email)[0] == 0
    account_id = _account_id(stack_settings, email)
    # Numbers of this run only: the operator's list outlives the tests of this module (no table reset).
    # (0612… to 0619…: every one a valid mobile; the old span reached 07 00…, not allocated: 1 run in 90)
    base = 612000000 + uuid.uuid4().int % 80000 * 100
    numbers = [f"+33{base + i}" for i in range(3)]
    hashed = hashlib.sha256(numbers[1].encode()).hexdigest().upper()  # any case
    listing = tmp_path / "opposition.csv"
    listing.write_text(f"numero;nom\n0{base};Dupont\n{hashed};\nbonjour\n\n", encoding="utf-8")
    rc, out, _ = run_command(capsys, "stoplist", "add", "--account", email, str(listing))
    assert rc == 0
    report = json.loads(out)
    assert (report["read"], report["added"]) == (4, 2)
    assert [r["line"] for r in report["refused"]] == [1, 4]  # the header and the word
    stopped = with_db(stack_settings, lambda db: stoplists.stopped(db, account_id, numbers))
    assert stopped == set(numbers[:2])
    operator = tmp_path / "operator.txt"
    operator.write_text(numbers[2] + "\n", encoding="utf-8")
    rc, out, _ = run_command(capsys, "stoplist", "add", str(operator))
    assert rc == 0 and json.loads(out)["list"] == "operator"
    stopped = with_db(stack_settings, lambda db: stoplists.stopped(db, account_id, numbers))
    assert stopped == set(numbers)
