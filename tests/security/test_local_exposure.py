"""What another local user could read (issue 17): secrets on a process's command line, customer audio
and logs left world-readable. On the real test stack."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from engine.services.messages import Messages
from engine.settings import Settings
from engine.stack import postgres, procs
from engine.store import Database
from engine.store.accounts import create_account
from lab import tones

pytestmark = pytest.mark.integration

SECRETS = ("db_password", "cdr_db_password", "ari_password", "hep_password", "secret_key", "agi_secret")


def command_lines() -> list[str]:
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # the process ended meanwhile
            continue
    return lines


def test_no_secret_on_any_command_line(stack_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = [stack_settings.require(name) for name in SECRETS]
    # The processes running now (PostgreSQL, Asterisk, this test's own) ...
    running = command_lines()
    assert running
    assert not [line for line in running if any(s in line for s in secrets)]
    # ... and the short ones: psql setting the roles' passwords (as every `stack up` does) gets them on
    # its standard input, not in its argv.
    argvs: list[list[str]] = []
    real_run = subprocess.run

    def recording(argv: list[str], *args: Any, **kwargs: Any) -> Any:
        argvs.append(list(argv))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(postgres.subprocess, "run", recording)
    postgres.ensure_roles(
        stack_settings, stack_settings.require("db_password"), stack_settings.require("cdr_db_password")
    )
    assert any("psql" in " ".join(argv) for argv in argvs)
    assert not [argv for argv in argvs if any(s in " ".join(argv) for s in secrets)]


async def test_customer_audio_is_not_world_readable(
    stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    media = stack_settings.media_dir
    assert media.stat().st_mode & 0o7777 == 0o2750
    assert media.stat().st_gid == stack_settings.asterisk_uid
    new = await create_account(db, "audio@example.fr", secret_key=stack_settings.require("secret_key"))
    wav = tones.write_wav(tmp_path / "m.wav", tones.sine(500.0, 2.0, 0.4))
    message = await Messages(db, stack_settings).add(new.account.id, wav, title="m", origin="file")
    files = list((media / str(new.account.id)).iterdir())
    assert {f.name for f in files} >= {f"{message.id}.wav", f"{message.id}.alaw", f"{message.id}.ulaw"}
    for file in files:
        info = file.stat()
        assert info.st_mode & 0o007 == 0, (file.name, oct(info.st_mode))  # others: nothing
        assert info.st_gid == stack_settings.asterisk_uid, file.name  # Asterisk reads it by its group


def test_logs_and_what_a_started_process_creates_are_private(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "x.log"
    created = tmp_path / "created"
    pid = procs.spawn(tmp_path, "x", ["sh", "-c", f"echo started; echo data > {created}"], log_path=log)
    deadline = time.monotonic() + 10
    while procs.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.stat().st_mode & 0o777 == 0o600
    assert "started" in log.read_text()
    assert created.stat().st_mode & 0o777 == 0o640  # the umask the engine and its helpers run under
