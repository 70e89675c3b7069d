"""Dialing through carrier trouble, on the real stack: every carrier is a SIPp process, and what reached
it is counted from its own logs.

- A carrier's Retry-After (503, 429) keeps every call away from its trunk for that long.
- A trunk whose carrier dies mid-send costs nobody an attempt; its breaker takes it out, and its probe
  call lets it back in once the carrier returns.
- The trunks Asterisk runs are the ones the stack's own mode says, whoever applies them; a trunk
  unloaded behind our back is seen at once and takes no call.
- Every leg of a trunk (calls, their transfers, inbound calls) counts toward its channels.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.app import Engine
from engine.domain.breaker import BreakerState
from engine.domain.sends import SendStatus
from engine.domain.trunks import Trunk
from engine.services.sends import create_send
from engine.settings import INSTANCE_FILE, PROJECT_ROOT, Settings, instance_record
from engine.stack import apply_trunks, demo_trunk
from engine.store import Database
from engine.store import sends as sends_store
from engine.store.trunks import remove_trunk, upsert_trunk
from engine.telephony import trunkconf
from engine.telephony.ari import AriClient
from lab.sipp import SippProcess
from tests.integration.conftest import add_trunk, wait_for
from tests.integration.dialing import SIPP_DIR, customer, invites_per_number, targets

pytestmark = pytest.mark.integration

CALLEES = SIPP_DIR / "dialer_callees.xml"
REFUSES = SIPP_DIR / "carrier_refuses.xml"


def quick(settings: Settings, **more: Any) -> Settings:
    """Short timers: a breaker that would probe after 1 s, trunks looked at every 0.3 s."""
    values: dict[str, Any] = {
        "ring_timeout_s": 2.0,
        "max_cps": 50.0,
        "trunk_retry_s": 0.3,
        "trunk_wait_max_s": 60.0,
        "trunk_check_s": 0.3,
        "breaker_cooldown_s": 1.0,
        "breaker_cooldown_max_s": 4.0,
    }
    return dataclasses.replace(settings, **{**values, **more})


async def carrier(  # type: ignore[no-untyped-def]
    settings: Settings,
    sipp_ports,
    tmp_path: Path,
    name: str,
    *,
    scenario: Path = CALLEES,
    keys: dict[str, str] | None = None,
    port: int | None = None,
    **trunk: Any,
) -> SippProcess:
    """A trunk `name` towards a new SIPp carrier (national numbers; `trunk` sets its limits, priority...)."""
    sip_port, media_port = sipp_ports()
    sip_port = port or sip_port
    await add_trunk(
        settings, Trunk(name=name, host="127.0.0.1", port=sip_port, number_format="national", **trunk)
    )
    return _sipp(scenario, sip_port, media_port, tmp_path, name, keys=keys)


def _sipp(
    scenario: Path, sip_port: int, media_port: int, tmp_path: Path, name: str, *, keys: dict[str, str] | None
) -> SippProcess:
    return SippProcess(
        scenario,
        local_port=sip_port,
        media_port=media_port,
        workdir=tmp_path,
        keys=keys,
        recv_timeout_ms=60000,
        name=name,
        extra_args=["-aa"],  # answers the trunk's OPTIONS qualify
    )


async def completed(db: Database, send_id: Any, timeout_s: float = 90) -> None:
    async def done() -> bool:
        return (await sends_store.get_send(db, send_id)).status is SendStatus.completed

    await wait_for(done, timeout_s=timeout_s, interval_s=0.2, what="the send to complete")


async def trunk_failures(db: Database, send_id: Any) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT trunk, count(*) AS n FROM attempts WHERE send_id = $1 AND trunk_failure GROUP BY trunk",
        send_id,
    )
    return {r["trunk"]: r["n"] for r in rows}


def invite_ticks(sipp: SippProcess) -> list[int]:
    """When each INVITE reached a carrier_refuses.xml carrier (ms, SIPp's own clock)."""
    return [int(e["time"]) for e in sipp.log_events() if e.get("event") == "INVITE"]


async def test_retry_after_keeps_every_call_away_for_that_long(
    stack_settings: Settings,
    db: Database,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    # Without the Retry-After, the breakers would probe their trunk 1 s after opening.
    settings = quick(stack_settings)
    refuse = {"retry_after": "20"}
    busy503 = await carrier(
        settings,
        sipp_ports,
        tmp_path,
        "down503",
        scenario=REFUSES,
        keys={**refuse, "code": "503"},
        priority=10,
    )
    limited = await carrier(
        settings,
        sipp_ports,
        tmp_path,
        "limit429",
        scenario=REFUSES,
        keys={**refuse, "code": "429"},
        priority=10,
    )
    live = await carrier(settings, sipp_ports, tmp_path, "live", max_channels=30, max_cps=8, priority=20)
    who = await customer(db, settings, tmp_path, credits=100, seconds=1.0)
    numbers = [f"06220000{i:02d}" for i in range(0, 100, 2)][:40]  # even: listeners (0, 2, 4)
    numbers = [n for n in numbers if n[-1] in "024"]
    async with busy503, limited, live, Engine(settings) as engine:
        send = await create_send(
            db, settings, who.account, message_ref=who.message.ref, targets=targets(numbers), origin="api"
        )
        started = time.monotonic()
        engine.dialer.wake()
        await completed(db, send.id)
        lasted_s = time.monotonic() - started
        breakers = {name: engine.dialer.pool.trunks[name].breaker for name in ("down503", "limit429")}
        assert all(b.state(time.monotonic()) is BreakerState.open for b in breakers.values()), breakers
        assert all(b.open_for_s(time.monotonic()) > 20 - lasted_s - 1 for b in breakers.values())
    # The send outlasted what the breaker alone would have allowed (probes from 1 s on), yet each refusing
    # carrier saw calls only in the first moment: its Retry-After was honoured.
    assert lasted_s > 3, lasted_s
    for sipp in (busy503, limited):
        ticks = invite_ticks(sipp)
        assert ticks, sipp.name
        assert max(ticks) - min(ticks) < 1000, (sipp.name, ticks)
    # Nobody paid for the refusals: every recipient reached by the live carrier, once, on one attempt.
    rows = await sends_store.recipients(db, send.id, limit=100)
    invites = invites_per_number(live)
    for row in rows:
        assert (row["state"], row["outcome"], row["attempts"]) == ("done", "listened", 1), row
        assert invites["0" + row["e164"][3:]] == 1, row
    failures = await trunk_failures(db, send.id)
    assert failures.get("down503", 0) == len(invite_ticks(busy503))
    assert failures.get("limit429", 0) == len(invite_ticks(limited))


async def test_a_dead_carrier_costs_no_attempt_and_its_breaker_lets_it_back_after_the_probe(
    stack_settings: Settings,
    db: Database,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    settings = quick(stack_settings)
    main = await carrier(settings, sipp_ports, tmp_path, "main", max_channels=40, max_cps=5, priority=10)
    backup_port, backup_media = sipp_ports()
    backup = await carrier(
        settings, sipp_ports, tmp_path, "backup", port=backup_port, max_channels=40, max_cps=20, priority=20
    )
    who = await customer(db, settings, tmp_path, credits=200, seconds=1.0)
    # Listeners (numbers ending in 0), enough that calls remain after the backup's death and revival (the
    # backup takes its share from the first cycles on: pooled with the preferred trunk).
    numbers = [f"0623{i:06d}" for i in range(0, 1200, 10)]
    revived = _sipp(CALLEES, backup_port, backup_media, tmp_path, "backup-again", keys=None)
    async with main, Engine(settings) as engine:
        await backup.start()
        send = await create_send(
            db,
            settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets(numbers),
            origin="api",
            retries=1,
            retry_interval_s=0,
        )
        engine.dialer.wake()

        async def backup_busy() -> bool:
            return len(invites_per_number(backup)) >= 10  # the preferred trunk's pace overflows to it

        await wait_for(backup_busy, timeout_s=30, what="calls overflowing to the backup carrier")
        await backup.stop(grace_s=0)  # the carrier dies
        killed_at = time.monotonic()
        pool = engine.dialer.pool

        def backup_out() -> bool:
            state = pool.trunks["backup"]
            return bool(state.unhealthy_reason(time.monotonic()))

        await wait_for(backup_out, timeout_s=15, what="the dead carrier taken out of routing")
        out_at = time.monotonic()
        await revived.start()  # the carrier is back
        await wait_for(
            lambda: (
                pool.trunks["backup"].breaker.state(time.monotonic()) is BreakerState.closed
                and not pool.trunks["backup"].unhealthy_reason(time.monotonic())
            ),
            timeout_s=30,
            what="the backup carrier back in routing after its probe",
        )
        await completed(db, send.id)
        await revived.stop()
    # Out within seconds of its death (no response to its INVITEs, then qualify): a few calls at most.
    assert out_at - killed_at < 10, out_at - killed_at
    rows = await sends_store.recipients(db, send.id, limit=200)
    invites = invites_per_number(main, backup, revived)
    failures = await trunk_failures(db, send.id)
    assert failures.get("backup", 0) >= 1  # the death hit calls in flight
    assert failures.get("main", 0) == 0
    by_number = {
        r["e164"]: r["n"]
        for r in await db.fetch(
            "SELECT r.e164, count(*) AS n FROM attempts a JOIN send_recipients r ON r.id = a.recipient_id "
            "WHERE a.send_id = $1 AND a.trunk_failure GROUP BY r.e164",
            send.id,
        )
    }
    for row in rows:
        # Every recipient reached, and each of its attempts a call a live carrier took: the calls the dead
        # carrier never answered (some of them it logged as it died) were never theirs. (A call already
        # ringing when the carrier died did reach the callee's side: that one is an attempt, and the
        # retry reaches them.)
        received = invites["0" + row["e164"][3:]]
        assert (row["state"], row["outcome"]) == ("done", "listened"), row
        assert 1 <= row["attempts"] <= 2, row
        assert row["attempts"] <= received <= row["attempts"] + by_number.get(row["e164"], 0), (row, received)
    assert len(invites_per_number(revived)) >= 1  # the probe, and calls after it


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _loaded(settings: Settings, name: str) -> bool:
    async with AriClient(
        host="127.0.0.1",
        port=settings.ari_port,
        user=settings.ari_user,
        password=settings.require("ari_password"),
        app="vocalcast-t-check",
    ) as ari:
        return await trunkconf.loaded(ari, name)


async def test_trunk_add_from_a_plain_shell_keeps_a_demo_stack_demo(
    stack_settings: Settings, db: Database, sipp_ports
) -> None:  # type: ignore[no-untyped-def]
    demo = dataclasses.replace(stack_settings, demo=True)
    record = stack_settings.state_dir / INSTANCE_FILE
    kept = record.read_text()
    await upsert_trunk(db, demo_trunk(demo))
    try:
        record.write_text(instance_record(demo))  # the stack runs in demo mode
        await apply_trunks(demo)
        assert await _loaded(demo, "demo")
        port, _ = sipp_ports()
        # An operator's shell: no VOCALCAST_ variable but the instance's state directory (the default one
        # in production, this test instance's here).
        env = {"PATH": os.environ["PATH"], "VOCALCAST_STATE_DIR": str(stack_settings.state_dir)}
        done = run_cli(
            env, "trunk", "add", "opera", "--host", "127.0.0.1", "--port", str(port), "--pai", "0162000000"
        )
        assert done.returncode == 0, done.stderr
        assert "reach real numbers" in done.stderr  # demo mode says a real trunk calls real people
        assert await _loaded(demo, "demo")  # the demo trunk stayed loaded
        assert await _loaded(demo, "opera")
        listed = run_cli(env, "trunk", "list")
        assert "opera" in listed.stdout and "demo" in listed.stdout
    finally:
        record.write_text(kept)
        for name in ("opera", "demo"):
            await remove_trunk(db, name)
        await apply_trunks(stack_settings)
    assert not await _loaded(stack_settings, "demo")


async def test_a_trunk_unloaded_behind_our_back_is_degraded_and_takes_no_call(
    stack_settings: Settings,
    db: Database,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    settings = dataclasses.replace(quick(stack_settings), http_port=0)
    first = await carrier(settings, sipp_ports, tmp_path, "first", priority=10)
    second = await carrier(settings, sipp_ports, tmp_path, "second", priority=20)
    who = await customer(db, settings, tmp_path, credits=100, seconds=1.0)
    async with first, second, Engine(settings) as engine:
        url = f"http://127.0.0.1:{engine.http_port}/healthz"
        async with aiohttp.ClientSession() as http:

            async def health() -> tuple[int, dict[str, Any]]:
                async with http.get(url) as resp:
                    return resp.status, await resp.json()

            await wait_for(lambda: _up(health), timeout_s=15, what="both trunks usable")
            # Behind our back: the first trunk disappears from Asterisk's configuration.
            conf = trunkconf.write(settings, [await _trunk(db, "second")])
            assert "[first]" not in conf.read_text()
            async with AriClient(
                host="127.0.0.1",
                port=settings.ari_port,
                user=settings.ari_user,
                password=settings.require("ari_password"),
                app="vocalcast-t-unload",
            ) as ari:
                await trunkconf.reload(ari)
            seen = time.monotonic()

            async def degraded() -> dict[str, Any] | None:
                status, body = await health()
                return body if status == 200 and body["status"] == "degraded" else None

            body = await wait_for(degraded, timeout_s=settings.qualify_frequency_s + 5, what="degraded")
            assert time.monotonic() - seen < settings.qualify_frequency_s + 3
            assert body["degraded"] == ["first"]
            first_report = next(t for t in body["trunks"] if t["name"] == "first")
            assert first_report["usable"] is False and "not loaded" in first_report["unusable_reason"]
            send = await create_send(
                db,
                settings,
                who.account,
                message_ref=who.message.ref,
                targets=targets([f"0624{i:06d}" for i in range(0, 50, 10)]),
                origin="api",
            )
            engine.dialer.wake()
            await completed(db, send.id)
    assert not invites_per_number(first)  # the preferred trunk, unloaded, took no call
    assert sum(invites_per_number(second).values()) == 5
    await apply_trunks(stack_settings)


async def _up(health: Any) -> bool:
    status, body = await health()
    return bool(status == 200 and body["status"] == "up")


async def _trunk(db: Database, name: str) -> Trunk:
    from engine.store.trunks import list_trunks

    return next(t for t in await list_trunks(db) if t.name == name)


def open_dialogs_at_most(*sipps: SippProcess) -> int:
    """The most dialogs open at once in the carriers' view: each Call-ID from its first message to its
    last, over every given SIPp's message trace (calls out, their transfer legs, calls in). A call the
    carrier offered us and we refused at once (a final response >= 300 to its INVITE) held no channel."""
    spans: dict[str, list[float]] = {}
    refused: set[str] = set()
    for sipp in sipps:
        for message in sipp.messages():
            call_id = message.call_id
            cseq = message.header("CSeq") or ""
            if not call_id or cseq.endswith("OPTIONS"):
                continue
            key = f"{sipp.name}:{call_id}"
            if message.direction == "received" and (message.status or 0) >= 300 and cseq.endswith("INVITE"):
                refused.add(key)
            at = _seconds(message.time)
            span = spans.setdefault(key, [at, at])
            span[0], span[1] = min(span[0], at), max(span[1], at)
    spans = {key: span for key, span in spans.items() if key not in refused}
    events = sorted([(s, 1) for s, _ in spans.values()] + [(e, -1) for _, e in spans.values()])
    most = current = 0
    for _, step in events:  # an end at the same instant as a start is counted first: -1 sorts before 1
        current += step
        most = max(most, current)
    return most


def _seconds(stamp: str) -> float:
    """SIPp's trace time ('2026-12-04 23:44:53.463066' or 'YYYY-MM-DD\tHH:MM:SS.us') as seconds."""
    _day, _, clock = stamp.replace("\t", " ").strip().partition(" ")
    hours, minutes, seconds = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


async def test_transfer_and_inbound_legs_count_toward_the_trunks_channels(
    stack_settings: Settings,
    db: Database,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from tests.support.callee import Behaviour, callee, marker_tone_pcap

    settings = quick(stack_settings, ring_timeout_s=5.0)
    sip_port, media_port = sipp_ports()
    channels = 4
    await add_trunk(
        settings,
        Trunk(
            name="legs",
            host="127.0.0.1",
            port=sip_port,
            number_format="national",
            max_channels=channels,
            max_cps=20,
        ),
    )
    presses_9 = marker_tone_pcap(tmp_path / "transfer.pcap", 700.0, digits="*9", lead_s=0.5)
    centre_says = marker_tone_pcap(tmp_path / "centre.pcap", 1500.0, lead_s=1.0)
    phones = callee(
        tmp_path,
        sip_port=sip_port,
        media_port=media_port,
        name="phones",
        transfer=presses_9,
        centre=centre_says,
    )
    who = await customer(db, settings, tmp_path, credits=100, seconds=8.0)
    # Three calls, two of them asking for a transfer: the first transfer leg takes the trunk's fourth and
    # last channel, the second finds it full and is refused (the callee hears the apology).
    inbound_port, _ = sipp_ports()
    callers = SippProcess(
        "uac",
        local_port=inbound_port,
        remote=f"127.0.0.1:{settings.sip_port}",
        workdir=tmp_path,
        service=settings.recording_number,
        calls=2,
        rate=2,
        pause_ms=3000,
        name="inbound",
        executable="sipp",
    )
    callers.argv[callers.argv.index("-sf") : callers.argv.index("-sf") + 2] = ["-sn", "uac"]
    async with phones, Engine(settings) as engine:
        send = await create_send(
            db,
            settings,
            who.account,
            message_ref=who.message.ref,
            targets=targets(
                [Behaviour.transfer.dial(0), Behaviour.transfer.dial(1), Behaviour.silent.dial(2)]
            ),
            origin="api",
            transfer=Behaviour.centre.number,
            greeting_ref=None,
        )
        engine.dialer.wake()

        def centre_calls() -> list[Any]:
            return [
                m
                for m in phones.messages()
                if m.method == "INVITE"
                and m.direction == "received"
                and Behaviour.centre.number in m.start_line
            ]

        await wait_for(lambda: len(centre_calls()) >= 1, timeout_s=20, what="a transfer leg")
        await callers.start()  # calls to the recording number while the trunk's channels are all taken
        await completed(db, send.id, timeout_s=120)
        await callers.stop()
    assert open_dialogs_at_most(phones, callers) <= channels
    # Not a vacuous bound: the trunk carried one transfer leg, refused the other, and was full when the
    # calls came in.
    assert len(centre_calls()) == 1
    rows = {r["e164"]: r for r in await sends_store.recipients(db, send.id, limit=10)}
    transferred = [e164 for e164, r in rows.items() if r["outcome"] == "transferred"]
    assert len(transferred) == 1, rows
    inbound_finals = [m.status for m in callers.messages() if m.status and m.status >= 200]
    assert inbound_finals and all(code == 486 for code in inbound_finals), inbound_finals


async def test_an_overloaded_asterisk_slows_the_pace_down_and_no_call_fails(
    stack_settings: Settings,
    db: Database,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from tests.support.ariproxy import AriProxy

    async with AriProxy(upstream_port=stack_settings.ari_port) as proxy:
        settings = quick(stack_settings, ari_port=proxy.port, max_cps=20.0, max_channels=60)
        phones = await carrier(settings, sipp_ports, tmp_path, "steady", max_channels=60, max_cps=100)
        who = await customer(db, settings, tmp_path, credits=300, seconds=1.0)
        numbers = [f"0625{i:06d}" for i in range(0, 1000, 10)][:40]  # ending 0: listeners
        async with phones, Engine(settings) as engine:
            pace = engine.dialer.pace
            assert pace is not None
            # Asterisk answers originates slowly, and refuses one in four as overloaded.
            proxy.latency_s, proxy.refuse_every = 1.5, 4
            send = await create_send(
                db, settings, who.account, message_ref=who.message.ref, targets=targets(numbers), origin="api"
            )
            engine.dialer.wake()
            lowest = settings.max_cps

            async def slowed() -> bool:
                nonlocal lowest
                lowest = min(lowest, pace.current(time.monotonic()))
                return proxy.refused >= 3 and lowest <= settings.max_cps / 4

            await wait_for(slowed, timeout_s=30, interval_s=0.05, what="the pace cut down")
            proxy.latency_s, proxy.refuse_every = 0.0, 0  # Asterisk recovers
            await completed(db, send.id, timeout_s=120)
            await wait_for(
                lambda: pace.current(time.monotonic()) >= settings.max_cps,
                timeout_s=30,
                what="the pace back to the engine's limit",
            )
    rows = await sends_store.recipients(db, send.id, limit=200)
    # The refused originates cost nobody anything: every recipient listened, on its one attempt.
    assert all((r["state"], r["outcome"], r["attempts"]) == ("done", "listened", 1) for r in rows), rows
    invites = invites_per_number(phones)
    assert all(invites["0" + r["e164"][3:]] == 1 for r in rows)
    assert proxy.refused >= 3


async def test_removing_the_last_trunk_pauses_the_sends_and_fails_nobody(
    stack_settings: Settings,
    db: Database,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from engine.services.trunks import Trunks

    settings = quick(stack_settings)
    only = await carrier(settings, sipp_ports, tmp_path, "only", max_channels=5, max_cps=5)
    who = await customer(db, settings, tmp_path, credits=100, seconds=1.0)
    numbers = [f"0626{i:06d}" for i in range(0, 300, 10)]
    async with only, Engine(settings) as engine:
        send = await create_send(
            db, settings, who.account, message_ref=who.message.ref, targets=targets(numbers), origin="api"
        )
        engine.dialer.wake()

        async def some_done() -> bool:
            return (await sends_store.progress(db, send.id)).done >= 5

        await wait_for(some_done, timeout_s=30, what="the first calls")
        kept = next(t for t in await Trunks(db, settings).all() if t.name == "only")
        await Trunks(db, settings).remove("only")

        async def paused() -> bool:
            found = await sends_store.get_send(db, send.id)
            return found.status is SendStatus.paused

        await wait_for(paused, timeout_s=15, what="the send paused for want of a trunk")
        reason = await db.fetchval("SELECT pause_reason FROM sends WHERE id = $1", send.id)
        assert reason == "no_trunk"
        await wait_for(lambda: engine.calls.active == 0, timeout_s=20, what="calls in progress to end")
        progress = await sends_store.progress(db, send.id)
        assert progress.pending > 0 and "congestion" not in progress.outcomes  # nobody failed meanwhile
        await Trunks(db, settings).save(kept)  # the operator adds it back
        await completed(db, send.id)
    rows = await sends_store.recipients(db, send.id, limit=100)
    assert all((r["state"], r["outcome"], r["attempts"]) == ("done", "listened", 1) for r in rows), rows
