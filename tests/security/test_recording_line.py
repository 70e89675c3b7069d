"""Attacks on the recording line, on the real stack: SIPp callers through a trunk, Asterisk's dialplan,
our FastAGI server (issue 17).

- A local process forging a FastAGI request (any caller number it likes) is refused without the secret.
- Callers rotating their caller ID dodge the per-number lockout; the line's guess budget holds them back,
  raises the alert metric; once it is spent at most VOCALCAST_IVR_UNKNOWN_CALLS_WHEN_SPENT unknown
  callers' calls check codes at once (the others hear the line is busy), a customer calling from the
  number it used before keeps its pace, and a newcomer is slowed down but still gets in (nobody is
  locked out).
- Calls above the line's cap are refused busy before they are answered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import structlog

from engine.app import Engine
from engine.domain.recordings import caller_key, masked_caller, throttle_delay_s
from engine.domain.trunks import Trunk
from engine.media.paths import host_dir
from engine.metrics import Metrics
from engine.services import build
from engine.services.recordings import Recordings
from engine.settings import PROJECT_ROOT, Settings
from engine.stack.asterisk import cli
from engine.store import Database
from engine.store import ivr as ivr_store
from ivr.fastagi import FastAGIServer
from ivr.service import serve
from lab.dtmfpcap import RtpPcapBuilder
from tests.integration.conftest import add_trunk, sipp_ports, wait_for
from tests.integration.test_ivr import LEAD_S, TRUNK, Caller, code_entry, new_account, prompt_s

pytestmark = pytest.mark.integration

CUSTOMER = "0611223344"  # the customer's usual number
NEWCOMER = "0655667788"  # another customer, calling for the first time
ATTACKERS = 4  # calls, each from a new number, each typing the most codes a call allows
PLACES = 2  # unknown callers' calls checking codes at once while the budget is spent
THROTTLE_MAX_S = 4.0  # the longest wait of a slowed check here (VOCALCAST_IVR_THROTTLE_MAX_S)
WRONG = ("13572468", "24681357", "11223344")
__all__ = ["sipp_ports"]  # the integration tests' fixture: SIPp ports from this instance's block


@dataclass
class Line:
    server: FastAGIServer
    backend: Recordings
    metrics: Metrics

    def metric(self, name: str) -> float:
        return self.metrics.registry.get_sample_value(name) or 0.0


@pytest.fixture
def line_settings(stack_settings: Settings) -> Settings:
    """Short timers, and a guess budget of one wrong code a minute: the attack spends it at once. A
    slowed check waits at most THROTTLE_MAX_S (10 s in production): still longer than the attacker's
    pause between two codes, so the codes typed while a check waits go unheard."""
    return dataclasses.replace(
        stack_settings,
        ivr_digit_timeout_s=3,
        ivr_silence_s=2,
        ivr_record_max_s=20,
        ivr_code_tries=3,
        ivr_lockout_failures=5,
        ivr_global_failures_per_min=1,
        ivr_unknown_calls_when_spent=PLACES,
        ivr_throttle_max_s=THROTTLE_MAX_S,
    )


@pytest.fixture
async def line(line_settings: Settings, db: Database) -> AsyncIterator[Line]:
    backend = build(line_settings, db).recordings
    metrics = Metrics()
    backend.watch(metrics)
    async with serve(line_settings, backend) as server:
        yield Line(server, backend, metrics)


@pytest.fixture
async def caller(line_settings: Settings, sipp_ports, tmp_path: Path) -> Caller:  # type: ignore[no-untyped-def]
    first = sipp_ports()
    await add_trunk(line_settings, Trunk(name=TRUNK, host="127.0.0.1", port=first[0]))
    pending = [first]

    def ports() -> tuple[int, int]:
        return pending.pop() if pending else sipp_ports()

    return Caller(line_settings, ports, tmp_path)


def fastagi_request(port: int, script: str, caller_id: str) -> bytes:
    """What a local process gets back for a hand-made FastAGI request: the server's first command."""
    env = {
        "agi_network": "yes",
        "agi_network_script": script,
        "agi_request": f"agi://127.0.0.1:{port}/{script}",
        "agi_channel": "PJSIP/ivrcaller-00000099",
        "agi_uniqueid": "1999999999.1",
        "agi_callerid": caller_id,
    }
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall("".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n")
        first = conn.makefile("rb").readline()
        conn.sendall(b"200 result=-1\nHANGUP\n")  # as a dead channel answers
    return first


async def test_a_forged_fastagi_request_without_the_secret_is_refused(
    line_settings: Settings, line: Line, db: Database
) -> None:
    secret = line_settings.require("agi_secret")
    port = line_settings.agi_port
    for script in ("record", "record?secret=", f"record?secret={secret[:-1]}", f"record/{secret}"):
        first = await asyncio.to_thread(fastagi_request, port, script, "0612345678")
        assert first == b"HANGUP\n", script  # before any prompt, any code check
    # The same request with the secret reaches the IVR: it asks for the code.
    first = await asyncio.to_thread(fastagi_request, port, f"record?secret={secret}", "0612345678")
    assert first.startswith(b"GET DATA "), first
    await wait_for(lambda: line.server.active_sessions == 0, what="the sessions to end")
    assert await db.fetchval("SELECT count(*) FROM ivr_code_failures") == 0
    # The secret lives in the instance's rendered dialplan (not readable by others), never in the repository.
    rendered = host_dir(line_settings) / "etc" / "extensions.conf"
    assert f"VC_AGI_SECRET = {secret}" in rendered.read_text()
    assert rendered.stat().st_mode & 0o007 == 0
    git_grep = ["git", "-C", str(PROJECT_ROOT), "grep", "-F", "-l", secret]
    tracked = await asyncio.to_thread(subprocess.run, git_grep, capture_output=True, text=True, check=False)
    assert tracked.stdout == ""


def attack(code_to_avoid: str) -> RtpPcapBuilder:
    """One call of the attacker: the three codes a call allows, each as soon as the IVR asks again."""
    pcap = RtpPcapBuilder(codec="alaw").silence(LEAD_S)
    for wrong in WRONG:
        assert wrong != code_to_avoid
        code_entry(pcap, wrong).silence(prompt_s("ivr_bad_code") + 0.5)
    return pcap


def right_code(code: str, *, wait_s: float) -> RtpPcapBuilder:
    pcap = RtpPcapBuilder(codec="alaw").silence(LEAD_S)
    return code_entry(pcap, code).silence(wait_s)


async def test_rotating_caller_ids_spend_the_budget_while_known_customers_keep_their_pace(
    line_settings: Settings, line: Line, db: Database, caller: Caller
) -> None:
    _, code = await new_account(line_settings, db, next_ref=1)
    _, newcomer_code = await new_account(line_settings, db, next_ref=2)
    menu_s = 2.5  # heard within this long after the code when nothing slows the check down

    # The customer once typed its code from its usual number (the IVR remembers it so: see the last check).
    await ivr_store.remember_caller(db, caller_key(CUSTOMER))

    # The attack: every call from a new number, three codes per call, all at once. Once the budget is
    # spent (its first wrong code), only PLACES of these unknown callers go on checking codes; the others
    # hear that the line is busy. Meanwhile the customer calls from its usual number and gets in at once.
    pcaps = [attack(code) for _ in range(ATTACKERS)]
    numbers = [f"07000000{index:02d}" for index in range(ATTACKERS)]
    known_pcap = right_code(code, wait_s=menu_s)
    with structlog.testing.capture_logs() as logs:
        attackers = [
            asyncio.ensure_future(caller.call(pcap, caller_id=number, hang_up_after_s=pcap.duration_s + 1.0))
            for pcap, number in zip(pcaps, numbers, strict=True)
        ]
        await wait_for(
            lambda: any(e["event"] == "ivr.refused_busy" for e in logs), what="an attacker told busy"
        )
        held = await db.fetchval("SELECT count(*) FROM ivr_checking_calls")
        known = await caller.call(known_pcap, caller_id=CUSTOMER, hang_up_after_s=known_pcap.duration_s)
        calls = await asyncio.gather(*attackers)
    assert held == PLACES  # the customer called while every place was held
    assert all(call.count("ivr_welcome", first_s=0.6) >= 1 for call in calls)
    checked = await db.fetchval("SELECT count(*) FROM ivr_code_failures")
    # Rotating numbers dodge the lockout (never 5 wrong codes from one number) ...
    assert await db.fetchval("SELECT count(*) FROM ivr_blocked_callers") == 0
    # ... the budget does not: once spent, at most PLACES unknown calls check codes (the IVR's log: a
    # check after a call's first code is always after the budget's first wrong code), the others are
    # told busy before any further check (heard by SIPp), and the slowed checks let typed codes go unheard.
    customer = masked_caller(caller_key(CUSTOMER))
    by_call: dict[str, list[dict[str, object]]] = {}
    for event in logs:
        if event.get("uniqueid"):
            by_call.setdefault(str(event["uniqueid"]), []).append(dict(event))
    by_call = {uid: e for uid, e in by_call.items() if all(x.get("caller") != customer for x in e)}
    assert len(by_call) == ATTACKERS

    def checks(events: list[dict[str, object]], *, after_first: bool) -> int:
        done = [e for e in events if e["event"] in ("ivr.code_refused", "ivr.code_accepted")]
        return sum(1 for e in done if not after_first or int(str(e["attempt"])) >= 2)

    went_on = [uid for uid, events in by_call.items() if checks(events, after_first=True)]
    busy = [uid for uid, events in by_call.items() if any(e["event"] == "ivr.refused_busy" for e in events)]
    assert 1 <= len(went_on) <= PLACES, by_call
    assert len(busy) >= ATTACKERS - PLACES and not set(busy) & set(went_on), by_call
    assert sum(call.count("ivr_busy", first_s=0.6) for call in calls) == len(busy)
    assert checked == sum(checks(events, after_first=False) for events in by_call.values())
    assert 1 <= checked <= ATTACKERS + PLACES * (len(WRONG) - 1), checked
    assert line.metric("vocalcast_ivr_wrong_codes_total") == checked
    assert line.metric("vocalcast_ivr_busy_unknown_calls_total") == len(busy)
    assert line.metric("vocalcast_ivr_slowed_checks_total") >= 1
    assert line.metric("vocalcast_ivr_guess_budget_spent") == 1  # the alert
    # The customer from its usual number got the menu as fast as before, never told busy.
    assert known.count("ivr_main_menu", first_s=0.6) == 1, known.sipp.diagnostics()
    assert known.count("ivr_busy") == 0
    kept_pace = [e["caller"] for e in logs if e["event"] == "ivr.known_caller_keeps_pace"]
    assert kept_pace == [customer], kept_pace  # its check came while the budget was spent
    slowed = line.metric("vocalcast_ivr_slowed_checks_total")

    # After the attack, the budget still spent: a newcomer takes a free place, waits, yet gets in
    # (slowed down, never locked out): the wait the wrong codes of the last minute give, then the menu.
    await wait_for(lambda: line.server.active_sessions == 0, what="the attack's sessions to end")
    newcomer_pcap = right_code(newcomer_code, wait_s=throttle_delay_s(checked, 1, THROTTLE_MAX_S) + menu_s)
    newcomer = await caller.call(newcomer_pcap, caller_id=NEWCOMER, hang_up_after_s=newcomer_pcap.duration_s)
    assert newcomer.count("ivr_main_menu", first_s=0.6) >= 1, newcomer.sipp.diagnostics()
    assert line.metric("vocalcast_ivr_slowed_checks_total") == slowed + 1  # the newcomer's check only
    known_numbers = await db.fetch("SELECT caller FROM ivr_known_callers ORDER BY caller")
    assert [row["caller"] for row in known_numbers] == ["+33611223344", "+33655667788"]
    await wait_for(lambda: line.server.active_sessions == 0, what="every session to end")
    assert await db.fetchval("SELECT count(*) FROM ivr_checking_calls") == 0  # every place given back


async def test_calls_above_the_cap_are_refused_busy_before_they_are_answered(
    line_settings: Settings, line: Line, db: Database, caller: Caller
) -> None:
    root = Path((line_settings.state_dir / "run" / "asterisk.root").read_text().strip())
    await asyncio.to_thread(cli, line_settings, root, "dialplan set global VC_IVR_MAX 2")
    try:
        holding = [RtpPcapBuilder(codec="alaw").silence(6.0) for _ in range(2)]
        held = [
            asyncio.create_task(caller.call(pcap, caller_id=f"06100000{i:02d}", hang_up_after_s=6.0))
            for i, pcap in enumerate(holding)
        ]
        await wait_for(lambda: line.server.active_sessions == 2, what="two calls on the line")
        refused = await caller.call(
            RtpPcapBuilder(codec="alaw").silence(2.0), caller_id="0610000099", timeout_s=10
        )
        first_two = await asyncio.gather(*held)
        # Once the line frees up, the next call is answered again.
        after = await caller.call(
            RtpPcapBuilder(codec="alaw").silence(2.5), caller_id="0610000098", hang_up_after_s=2.5
        )
    finally:
        await asyncio.to_thread(
            cli, line_settings, root, f"dialplan set global VC_IVR_MAX {line_settings.ivr_max_calls}"
        )
    assert refused.events == ["BUSY"], refused.sipp.diagnostics()
    received = [m.start_line for m in refused.sipp.messages() if m.direction == "received"]
    assert any(" 486 " in line for line in received), received
    assert not any(" 200 " in line for line in received), received  # never answered: no media, no RTP
    assert refused.count("ivr_welcome") == 0
    for call in [*first_two, after]:
        assert call.count("ivr_welcome", first_s=0.6) == 1, call.sipp.diagnostics()
    await wait_for(lambda: line.server.active_sessions == 0, what="every session to end")
    # These strangers' calls, the busy refusal included, leave CDRs that no attempt names: the retention
    # purge deletes them once VOCALCAST_RETENTION_INBOUND_CDR_DAYS have passed, and not before.
    callers = ["0610000000", "0610000001", "0610000099", "0610000098"]

    async def cdrs() -> list[str]:
        rows = await db.fetch("SELECT dcontext FROM asterisk_cdr WHERE src = ANY($1::text[])", callers)
        return [r["dcontext"] for r in rows]

    async def all_four() -> list[str] | None:
        found = await cdrs()
        return found if len(found) >= len(callers) else None

    contexts = await wait_for(all_four, what="the four calls' CDRs")
    assert all(c.startswith("vocalcast-inbound") for c in contexts), contexts
    privacy = build(line_settings, db).privacy
    days = timedelta(days=line_settings.retention_inbound_cdr_days)
    await privacy.purge(datetime.now(UTC) + days - timedelta(hours=1))
    assert len(await cdrs()) == len(contexts)
    await privacy.purge(datetime.now(UTC) + days + timedelta(hours=1))
    assert await cdrs() == []


async def test_the_budget_alert_is_on_the_engines_metrics(stack_settings: Settings, db: Database) -> None:
    engine = Engine(stack_settings)
    engine.run_dialer = False
    async with engine:
        url = f"http://127.0.0.1:{engine.http_port}/metrics"
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            assert resp.status == 200
            text = await resp.text()
    assert "vocalcast_ivr_guess_budget_spent 0.0" in text.splitlines()
    assert "vocalcast_ivr_wrong_codes_total 0.0" in text.splitlines()
