"""The e-mail intake fuzzed, seeded: whatever the subject (broken encoded-words, NULs, any script, huge,
empty, colons everywhere), the mail is taken (250) and answered with a documented code or ignored —
never a temporary failure that makes the relay retry it forever.

`VOCALCAST_FUZZ_MAIL` sets how many mails (default 150; `make fuzz` runs the issue's 1,000);
`VOCALCAST_FUZZ_SEED` replays a run (the seed is in every failure); see tests/security/fuzzing.py for the
time budget all fuzz tests share."""

from __future__ import annotations

import asyncio
import base64
import random
import smtplib
import string

import pytest

from engine.app import Engine
from engine.store import Database
from tests.conftest import PORT_BASE
from tests.integration.dialing import Customer
from tests.security.conftest import PASSWORD
from tests.security.fuzzing import SEED, budget, count

pytestmark = pytest.mark.integration
MAILS = count("MAIL", 150)


def field(rng: random.Random, who: Customer) -> str:
    pick = rng.randrange(9)
    if pick == 0:
        return ""
    if pick == 1:
        return PASSWORD
    if pick == 2:
        return ",".join(rng.choice(["0612345678", "+33612345678", "12", "0899123456"]) for _ in range(3))
    if pick == 3:
        return str(rng.choice([who.message.ref, 0, 10**12, "x"]))
    if pick == 4:
        return "".join(rng.choices("0123456789s", k=rng.choice([11, 12, 13])))
    if pick == 5:
        chars = (chr(rng.randrange(0x20, 0x2FFFF)) for _ in range(rng.randrange(1, 20)))
        return "".join(c for c in chars if not 0xD800 <= ord(c) <= 0xDFFF)
    if pick == 6:
        return "\x00" * rng.randrange(1, 3)
    if pick == 7:
        return "=?UTF-8?B?" + "".join(rng.choices(string.ascii_letters + "=", k=rng.randrange(1, 12))) + "?="
    return "x" * rng.choice([200, 600])


def subject(rng: random.Random, who: Customer) -> str:
    parts = [field(rng, who) for _ in range(rng.randrange(0, 7))]
    return ":".join(parts) + (":" if rng.random() < 0.5 else "")


def header(rng: random.Random, text: str) -> str:
    """The Subject header as a client may write it: raw when it can be, else UTF-8 encoded-words, folded
    (SMTP lines stay under 998 bytes: a longer one is the client's fault, refused by any server)."""
    if text.isascii() and text.isprintable() and len(text) < 900 and rng.random() < 0.7:
        return text
    words, chunk = [], ""
    for char in text:
        chunk += char
        if len(chunk.encode()) >= 40:
            words.append(chunk)
            chunk = ""
    words.append(chunk)
    return "\r\n ".join("=?UTF-8?B?" + base64.b64encode(w.encode()).decode() + "?=" for w in words)


def send(engine: Engine, who: Customer, subjects: list[str]) -> list[tuple[int, str]]:
    """Every mail through one SMTP session: the server's answer to each (250 when taken)."""
    answers = []
    to = engine.settings.intake_address
    with smtplib.SMTP("127.0.0.1", PORT_BASE + 25, timeout=30) as smtp:
        smtp.ehlo()
        for text in subjects:
            if not budget.left():  # the cases drawn are the same whatever the budget: a failure replays
                break
            raw = f"From: {who.account.email}\r\nTo: {to}\r\nSubject: {text}\r\n\r\n\r\n".encode()
            try:
                smtp.sendmail(who.account.email, [to], raw)
                answers.append((250, ""))
            except smtplib.SMTPDataError as exc:
                answers.append((exc.smtp_code, exc.smtp_error.decode(errors="replace")))
    return answers


async def test_every_mail_is_taken_whatever_its_subject(
    engine: Engine, client: Customer, db: Database
) -> None:
    rng = random.Random(SEED)
    subjects = [header(rng, subject(rng, client)) for _ in range(MAILS)]
    with budget:
        answers = await asyncio.to_thread(send, engine, client, subjects)
    print(f"fuzz seed {SEED}: {len(answers)} mails")
    failed = [(i, subjects[i][:120], a) for i, a in enumerate(answers) if a[0] != 250]
    assert failed == [], f"seed {SEED}: {failed[:3]}"
    partial = await db.fetchval(
        "SELECT count(*) FROM sends s "
        "WHERE NOT EXISTS (SELECT 1 FROM send_recipients r WHERE r.send_id = s.id)"
    )
    assert partial == 0, f"seed {SEED}"
