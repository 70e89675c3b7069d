"""`vocalcast account …` and `vocalcast message …` through engine.cli.main on the test instance.

The commands read the instance's settings from os.environ (exported by the stack_settings fixture) and
run their own event loop, so these tests are synchronous; every test uses its own e-mail address.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import uuid
from pathlib import Path
from typing import TypeVar

import pytest

from engine.cli import main
from engine.domain.accounts import Account
from engine.settings import Settings
from engine.store import accounts as store
from lab.tones import silence, sine, write_wav
from tests.support.commands import run_command, with_db

T = TypeVar("T")


@pytest.fixture
def email(stack_settings: Settings) -> str:
    return f"cli-{uuid.uuid4().hex[:10]}@example.fr"


def _create(capsys: pytest.CaptureFixture[str], email: str, *extra: str) -> tuple[str, str]:
    rc, out, _ = run_command(capsys, "account", "create", "--email", email, *extra)
    assert rc == 0
    password = re.search(r"password:\s+(\S+)", out)
    code = re.search(r"personal code:\s+(\d{8})", out)
    assert password is not None
    assert code is not None
    return password.group(1), code.group(1)


def _authenticates(settings: Settings, email: str, password: str) -> bool:
    return with_db(settings, lambda db: store.authenticate(db, email, password)) is not None


def _code_owner(settings: Settings, code: str) -> Account | None:
    key = settings.require("secret_key")
    return with_db(settings, lambda db: store.find_by_code(db, code, secret_key=key))


def test_create_prints_the_password_and_code_once(
    stack_settings: Settings, capsys: pytest.CaptureFixture[str], email: str
) -> None:
    password, code = _create(capsys, email.upper(), "--credits", "40")
    assert _authenticates(stack_settings, email, password)
    owner = _code_owner(stack_settings, code)
    assert owner is not None
    assert (owner.email, owner.balance) == (email, 40)

    rc, _, err = run_command(capsys, "account", "create", "--email", email)
    assert rc == 2
    assert "already uses" in err
    rc, _, err = run_command(capsys, "account", "create", "--email", "x" + email, "--credits", "-1")
    assert rc == 2


def test_create_with_a_password_from_stdin_and_json(
    stack_settings: Settings, capsys: pytest.CaptureFixture[str], email: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("Mon mot de passe secret\n"))
    rc, out, _ = run_command(capsys, "account", "create", "--email", email, "--password", "-", "--json")
    assert rc == 0
    created = json.loads(out)
    assert (created["email"], created["password"], created["credits"]) == (
        email,
        "Mon mot de passe secret",
        0,
    )
    assert re.fullmatch(r"\d{8}", created["code"])
    assert _authenticates(stack_settings, email, "Mon mot de passe secret")
    rc, _, err = run_command(capsys, "account", "create", "--email", "x" + email, "--password", "court")
    assert rc == 2
    assert "password refused" in err


def test_credit_takes_positive_whole_numbers(
    stack_settings: Settings, capsys: pytest.CaptureFixture[str], email: str
) -> None:
    _create(capsys, email, "--credits", "40")
    rc, out, _ = run_command(capsys, "account", "credit", "--account", email, "25", "--reason", "virement")
    assert rc == 0
    assert "65 available" in out
    for bad in ("0", "-5"):
        rc, _, err = run_command(capsys, "account", "credit", "--account", email, bad)
        assert rc == 2
        assert "positive" in err
    rc, _, err = run_command(capsys, "account", "credit", "--account", "nobody@example.fr", "5")
    assert rc == 2
    assert "no account" in err
    rc, out, _ = run_command(capsys, "account", "show", "--account", email, "--json")
    report = json.loads(out)
    assert report["credits"] == {"available": 65, "reserved": 0}
    assert [(e["kind"], e["amount"], e["reason"]) for e in report["ledger"]] == [
        ("credit", 25, "virement"),
        ("credit", 40, "crédit initial"),
    ]


def test_daily_cap_own_default_or_none(
    stack_settings: Settings, capsys: pytest.CaptureFixture[str], email: str
) -> None:
    _create(capsys, email)
    rc, out, _ = run_command(capsys, "account", "daily-cap", "--account", email, "250")
    assert rc == 0
    assert "250 credits a day (own); spent today: 0" in out
    rc, out, _ = run_command(capsys, "account", "daily-cap", "--account", email, "0")
    assert (rc, "no cap (own)" in out) == (0, True)
    rc, out, _ = run_command(capsys, "account", "daily-cap", "--account", email, "default")
    assert (rc, "no cap (default)" in out) == (0, True)  # VOCALCAST_DAILY_SPEND_CAP is 0: none
    for bad in ("-1", "beaucoup"):
        rc, _, err = run_command(capsys, "account", "daily-cap", "--account", email, bad)
        assert rc == 2
        assert "whole number" in err


def test_transfer_caps_own_default_and_shown(
    stack_settings: Settings, capsys: pytest.CaptureFixture[str], email: str
) -> None:
    """Issue 17: an account's transfer caps are set from the CLI (they were SQL only), read by the dialer
    from the account row, and shown by `account show`; a bad value is refused with a precise reason."""
    _create(capsys, email)
    rc, out, _ = run_command(
        capsys, "account", "transfers", "--account", email, "--max-minutes", "5", "--max-simultaneous", "2"
    )
    assert rc == 0, out
    assert "transfers of at most 5 min (own), 2 at once (own)" in out
    row = with_db(
        stack_settings,
        lambda db: db.fetchrow("SELECT transfer_max_s, max_transfers FROM accounts WHERE email = $1", email),
    )
    assert row is not None
    assert (row["transfer_max_s"], row["max_transfers"]) == (300.0, 2)
    rc, out, _ = run_command(capsys, "account", "show", "--account", email, "--json")
    limits = json.loads(out)["limits"]
    assert (limits["transfer_max_minutes"], limits["max_transfers"]) == (5, 2)
    rc, out, _ = run_command(capsys, "account", "show", "--account", email)
    assert "transfers: at most 5 min (own), 2 at once (own)" in out
    # One cap back to the setting's, the other left as it is; 0 simultaneous: no transfer at all.
    rc, out, _ = run_command(
        capsys,
        "account",
        "transfers",
        "--account",
        email,
        "--max-minutes",
        "default",
        "--max-simultaneous",
        "0",
    )
    max_min = int(stack_settings.transfer_max_s // 60)
    assert f"transfers of at most {max_min} min (default), 0 at once (own: no transfer)" in out
    rc, out, _ = run_command(
        capsys, "account", "transfers", "--account", email, "--max-simultaneous", "default"
    )
    default_n = stack_settings.account_max_transfers
    assert f"transfers of at most {max_min} min (default), {default_n} at once (default)" in out
    rc, out, _ = run_command(capsys, "account", "show", "--account", email, "--json")
    limits = json.loads(out)["limits"]
    assert (limits["transfer_max_minutes"], limits["max_transfers"]) == (None, None)
    bad = [
        (["--max-minutes", "0"], f"--max-minutes: expected a whole number of minutes from 1 to {max_min}"),
        (
            ["--max-minutes", str(max_min + 1)],
            f"VOCALCAST_TRANSFER_MAX_S ({max_min} min) bounds every account",
        ),
        (["--max-minutes", "2.5"], "--max-minutes: expected a whole number of minutes"),
        (["--max-simultaneous", "-1"], "--max-simultaneous: expected a whole number >= 0 or 'default'"),
        (["--max-simultaneous", "beaucoup"], "got 'beaucoup'"),
        ([], "give --max-minutes, --max-simultaneous or both"),
    ]
    for args, reason in bad:
        rc, _, err = run_command(capsys, "account", "transfers", "--account", email, *args)
        assert rc == 2, args
        assert reason in err, (args, err)
    rc, out, _ = run_command(capsys, "account", "show", "--account", email, "--json")
    assert json.loads(out)["limits"]["max_transfers"] is None  # nothing changed by a refused command


def test_code_regeneration_voids_the_old_code(
    stack_settings: Settings, capsys: pytest.CaptureFixture[str], email: str
) -> None:
    email = "12345678" + email  # eight digits in the address must not be taken for the code
    _, old = _create(capsys, email)
    rc, out, _ = run_command(capsys, "account", "code", "--account", email, "--regenerate")
    assert rc == 0
    found = re.search(r"personal code of \S+: (\d{8}) ", out)
    assert found is not None
    new = found.group(1)
    assert _code_owner(stack_settings, old) is None
    owner = _code_owner(stack_settings, new)
    assert owner is not None
    assert owner.email == email
    with pytest.raises(SystemExit):  # the current code cannot be shown: --regenerate is required
        main(["account", "code", "--account", email])


def test_password_reset(stack_settings: Settings, capsys: pytest.CaptureFixture[str], email: str) -> None:
    old, _ = _create(capsys, email)
    rc, out, _ = run_command(capsys, "account", "password", "--account", email)
    assert rc == 0
    new = out.split(": ", 1)[1].split()[0]
    assert not _authenticates(stack_settings, email, old)
    assert _authenticates(stack_settings, email, new)


def test_sender_numbers(stack_settings: Settings, capsys: pytest.CaptureFixture[str], email: str) -> None:
    _create(capsys, email)
    rc, out, _ = run_command(
        capsys, "account", "sender", "--account", email, "--add", "01 62 12 34 56", "--verify"
    )
    assert rc == 0
    assert "declared +33162123456" in out
    assert "verified +33162123456" in out
    rc, out, err = run_command(capsys, "account", "sender", "--account", email, "--add", "06 12 34 56 78")
    assert rc == 0
    assert "mobile" in err
    rc, _, err = run_command(capsys, "account", "sender", "--account", email, "--verify", "0612345678")
    assert rc == 2
    assert "mobile" in err
    rc, _, err = run_command(capsys, "account", "sender", "--account", email, "--add", "+44 20 7946 0000")
    assert rc == 2
    rc, out, _ = run_command(capsys, "account", "sender", "--account", email, "--json")
    listed = [json.loads(line) for line in out.splitlines()]
    assert [(s["e164"], s["status"], s["is_mobile"]) for s in listed] == [
        ("+33162123456", "verified", False),
        ("+33612345678", "pending", True),
    ]


def test_messages_and_default_send_options(
    stack_settings: Settings, capsys: pytest.CaptureFixture[str], email: str, tmp_path: Path
) -> None:
    _, code = _create(capsys, email)
    run_command(capsys, "account", "sender", "--account", email, "--add", "0162123456", "--verify")
    tone = write_wav(tmp_path / "accueil.wav", [*silence(0.3), *sine(440, 2.0, 0.3), *silence(0.3)])

    rc, out, _ = run_command(capsys, "message", "add", "--account", email, str(tone), "--greeting")
    assert rc == 0
    assert out.startswith("message 1 added: 'accueil'")
    rc, out, _ = run_command(
        capsys, "message", "add", "--account", email, str(tone), "--title", "Promo", "--json"
    )
    second = json.loads(out)
    assert (second["ref"], second["title"], second["is_greeting"]) == (2, "Promo", False)
    assert second["duration_s"] == pytest.approx(2.4, abs=0.1)

    rc, out, _ = run_command(
        capsys, "account", "defaults", "--account", email, "--greeting", "1", "--transfer", "01 72 36 01 70",
        "--sender", "01 62 12 34 56", "--retries", "2", "--interval", "15", "--drop", "on", "--json",
    )  # fmt: skip
    assert rc == 0
    assert json.loads(out) == {
        "greeting_enabled": True,
        "greeting_ref": 1,
        "transfer_number": "+33172360170",
        "sender_number": "+33162123456",
        "retries": 2,
        "retry_interval_min": 15,
        "voicemail_drop": True,
    }
    for bad in (["--greeting", "2"], ["--retries", "99"], ["--interval", "0"], ["--greeting", "x"]):
        rc, _, err = run_command(capsys, "account", "defaults", "--account", email, *bad)
        assert rc == 2, bad
    rc, out, _ = run_command(
        capsys, "account", "defaults", "--account", email, "--greeting", "off", "--transfer", "off", "--json"
    )
    shown = json.loads(out)
    assert (shown["greeting_enabled"], shown["greeting_ref"], shown["transfer_number"]) == (False, None, None)
    assert shown["retries"] == 2  # untouched options stay

    rc, out, _ = run_command(capsys, "account", "show", "--account", email, "--json")
    assert rc == 0
    report = json.loads(out)
    assert report["messages"] == 2
    assert report["senders"][0]["e164"] == "+33162123456"
    assert "$argon2" not in out
    assert code not in out
    assert "code" not in report
    assert "password" not in out.lower()
    rc, out, _ = run_command(capsys, "account", "show", "--account", email)
    assert rc == 0
    assert "0 available" in out

    rc, out, _ = run_command(capsys, "message", "rename", "--account", email, "2", "Soldes d'été")
    assert rc == 0
    rc, out, _ = run_command(capsys, "message", "delete", "--account", email, "1")
    assert (rc, out.strip()) == (0, "message 1 deleted")
    rc, _, err = run_command(capsys, "message", "delete", "--account", email, "1")
    assert rc == 2
    rc, out, _ = run_command(capsys, "message", "add", "--account", email, str(tone))
    assert out.startswith("message 3 added")
    rc, out, _ = run_command(capsys, "message", "list", "--account", email, "--json")
    listed = [json.loads(line) for line in out.splitlines()]
    assert [(m["ref"], m["title"]) for m in listed] == [(2, "Soldes d'été"), (3, "accueil")]
    rc, out, _ = run_command(capsys, "message", "list", "--account", email)
    assert [line.split()[0] for line in out.splitlines()] == ["2", "3"]
    rc, _, err = run_command(capsys, "message", "add", "--account", email, str(tmp_path / "missing.wav"))
    assert rc == 2
    assert "no such file" in err


def test_demo_account_is_created_once_and_printed_at_every_start(
    stack_settings: Settings, email: str, tmp_path: Path
) -> None:
    from engine.stack import after_up_messages

    (tmp_path / "secrets").mkdir(mode=0o700)
    demo = dataclasses.replace(stack_settings, demo=True, demo_account=email, state_dir=tmp_path)
    assert after_up_messages(dataclasses.replace(demo, demo=False)) == []

    [line] = after_up_messages(demo)
    found = re.fullmatch(
        rf"demo account: {re.escape(email)} / password (\S+) / personal code (\d{{8}})", line
    )
    assert found is not None
    password, code = found.groups()
    for name in ("demo-account-password", "demo-account-code"):
        assert (tmp_path / "secrets" / name).stat().st_mode & 0o777 == 0o600
    assert _authenticates(stack_settings, email, password)
    owner = _code_owner(stack_settings, code)
    assert owner is not None
    assert (owner.email, owner.balance) == (email, 100)

    assert after_up_messages(demo) == [line]  # the same account, printed again
    key = stack_settings.require("secret_key")
    with_db(stack_settings, lambda db: store.regenerate_code(db, owner.id, secret_key=key))
    [changed] = after_up_messages(demo)
    assert f"password {password} /" in changed
    assert "personal code (changed: vocalcast account code" in changed
