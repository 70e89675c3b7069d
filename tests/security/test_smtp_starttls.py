"""The e-mail intake had no STARTTLS (issue 17): a send's subject carries the account's password, in clear
between the company's relay and us. With a certificate the intake offers STARTTLS, and with
VOCALCAST_SMTP_REQUIRE_TLS it takes no mail before it. On the real engine over SMTP."""

from __future__ import annotations

import asyncio
import dataclasses
import smtplib
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.app import Engine
from engine.settings import Settings
from engine.store import Database

pytestmark = pytest.mark.integration


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "intake.pem", tmp_path / "intake.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=vocalcast",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_engine(
    stack_settings: Settings, db: Database, certificate: tuple[Path, Path]
) -> AsyncIterator[Engine]:
    cert, key = certificate
    settings = dataclasses.replace(
        stack_settings, smtp_tls_cert=str(cert), smtp_tls_key=str(key), smtp_require_tls=True
    )
    running = Engine(settings)
    running.run_dialer = False
    async with running:
        yield running


def talk(port: int, cert: Path, intake: str, *, tls: bool) -> tuple[bool, int, int]:
    """(STARTTLS offered, MAIL FROM's code, RCPT TO's code), with or without STARTTLS first."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo("relay.example.fr")
        offered = smtp.has_extn("starttls")
        if tls:
            context = ssl.create_default_context(cafile=str(cert))
            context.check_hostname = False
            smtp.starttls(context=context)
            smtp.ehlo("relay.example.fr")
        mail_code, _ = smtp.mail("client@example.fr")
        rcpt_code, _ = smtp.rcpt(intake)
    return offered, mail_code, rcpt_code


async def test_the_intake_takes_mail_only_over_starttls(
    tls_engine: Engine, certificate: tuple[Path, Path]
) -> None:
    port, cert, intake = tls_engine.settings.smtp_port, certificate[0], tls_engine.settings.intake_address
    offered, mail_code, rcpt_code = await asyncio.to_thread(talk, port, cert, intake, tls=False)
    assert offered
    assert (mail_code, rcpt_code) == (530, 530)  # "Must issue a STARTTLS command first"
    offered, mail_code, rcpt_code = await asyncio.to_thread(talk, port, cert, intake, tls=True)
    assert (mail_code, rcpt_code) == (250, 250)
