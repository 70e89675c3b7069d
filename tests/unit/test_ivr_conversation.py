"""The recording IVR's conversation through the real FastAGI server and a fake Asterisk speaking the
protocol over TCP (Asterisk 22 reply forms), with an in-memory backend: every branch, fast.

Each test is the transcript of one or more calls: the commands the IVR must send, in order, and what
Asterisk answers. A hang-up at any step must leave no saved message and no raw recording.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from uuid import UUID

import pytest
import structlog

from engine.domain.accounts import Message
from engine.domain.recordings import (
    ANONYMOUS,
    budget_spent,
    caller_key,
    can_be_locked_out,
    needs_a_place,
    place_lease_s,
    throttle_delay_s,
)
from engine.errors import DatabaseUnavailable, InvalidInput
from engine.settings import Settings
from ivr.fastagi import FastAGIServer
from ivr.recording import IvrOptions, RecordingIVR, Spool, reference_prompts

WAIT_S = 5.0  # bound on every wait; never asserted
SOUNDS = "/srv/vc-test/sounds"
SPOOL = "/srv/vc-test/spool/recording"
GOOD_CODE = "12345678"
CALLER = "0612345678"
ACCOUNT = UUID("00000000-0000-4000-8000-000000000001")
TIMEOUT_MS = 2000


def env(caller: str | None = CALLER) -> dict[str, str]:
    return {
        "agi_network": "yes",
        "agi_network_script": "record",
        "agi_request": "agi://127.0.0.1:4573/record",
        "agi_channel": "PJSIP/trunk-00000001",
        "agi_uniqueid": "1732550000.1",
        "agi_callerid": caller or "unknown",
        "agi_context": "vocalcast-inbound-route",
        "agi_extension": "record",
    }


# --- the fake engine side ----------------------------------------------------------------------------


@dataclass
class FakeBackend:
    """Lockout, accounts and library in memory, with the production rule: the 5th failure blocks."""

    max_failures: int = 5
    delay_s: float = 0.0
    refuse: list[str] = field(default_factory=list)  # InvalidInput codes for the next saves
    ref: int = 32
    failures: dict[str, int] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)
    known: set[str] = field(default_factory=set)
    saved: list[tuple[UUID, bytes, bool]] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    broken: bool = False
    places: int | None = None  # places for unknown callers while the budget is spent; None: it holds
    holding: set[str] = field(default_factory=set)  # the calls holding a place
    released: int = 0

    async def is_blocked(self, caller: str) -> bool:
        if self.broken:
            raise DatabaseUnavailable("PostgreSQL unavailable: test")
        return caller in self.blocked

    async def record_failure(self, caller: str) -> bool:
        self.failures[caller] = self.failures.get(caller, 0) + 1
        if self.failures[caller] >= self.max_failures:
            self.blocked.add(caller)
            return True
        return False

    async def throttle_delay_s(self, caller: str) -> float:
        return 0.0 if caller in self.known else self.delay_s

    async def admit(self, caller: str, call: str) -> bool:
        if self.places is None or caller in self.known or call in self.holding:
            return True
        if len(self.holding) >= self.places:
            return False
        self.holding.add(call)
        return True

    async def release(self, call: str) -> None:
        self.released += 1
        self.holding.discard(call)

    async def record_success(self, caller: str) -> None:
        self.known.add(caller)

    async def find_account(self, code: str) -> UUID | None:
        self.checks.append(code)
        return ACCOUNT if code == GOOD_CODE else None

    async def save(self, account_id: UUID, recording: Path, *, is_greeting: bool) -> Message:
        if self.refuse:
            code = self.refuse.pop(0)
            raise InvalidInput(code, f"refused: {code}")
        self.saved.append((account_id, recording.read_bytes(), is_greeting))  # noqa: ASYNC240 -- tiny tmp file
        now = datetime.now(UTC)
        return Message(
            id=uuid.uuid4(),
            account_id=account_id,
            ref=self.ref,
            title="Message",
            origin="phone",
            is_greeting=is_greeting,
            duration_s=3.0,
            audio_stem=PurePosixPath(f"{account_id}/x"),
            original_file=PurePosixPath(f"{account_id}/x.wav"),
            original_name=None,
            loudness_lufs=-20.0,
            true_peak_dbfs=-1.0,
            created_at=now,
        )


class FakeAsterisk:
    """The Asterisk side of one FastAGI connection; RECORD FILE writes the file into the spool dir."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, spool: Path) -> None:
        self.reader, self.writer, self.spool = reader, writer, spool
        self.recordings: list[Path] = []

    async def send(self, *lines: str) -> None:
        self.writer.write("".join(f"{line}\n" for line in lines).encode())
        await self.writer.drain()

    async def expect(self, command: str, *replies: str) -> str:
        """Read the next command, check it (a regex when it starts with ^), answer with ``replies``."""
        line = (await asyncio.wait_for(self.reader.readline(), WAIT_S)).decode().rstrip("\n")
        if command.startswith("^"):
            assert re.fullmatch(command, line), line
        else:
            assert line == command
        await self.send(*replies)
        return line

    # Shorthands for the commands of this IVR.
    async def play(self, name: str, *replies: str) -> None:
        await self.expect(f'STREAM FILE {SOUNDS}/{name} ""', *(replies or ("200 result=0 endpos=8000",)))

    async def get_data(self, prompt: str, max_digits: int, *replies: str) -> None:
        await self.expect(f"GET DATA {SOUNDS}/{prompt} {TIMEOUT_MS} {max_digits}", *replies)

    async def code(self, digits: str) -> None:
        await self.get_data("ivr_welcome", 9, f"200 result={digits}")

    async def main_menu(self, *replies: str) -> None:
        await self.get_data("ivr_main_menu", 1, *replies)

    async def review(self, *replies: str) -> None:
        await self.get_data("ivr_menu", 1, *replies)

    async def record(
        self, samples: int = 40000, how: str = "(dtmf)", result: int = 35, *, max_ms: int = 300000
    ) -> Path:
        """The record prompt, then RECORD FILE (at most ``max_ms``); Asterisk's file gets ``samples``
        16-bit samples."""
        await self.play("ivr_record")
        line = (await asyncio.wait_for(self.reader.readline(), WAIT_S)).decode().rstrip("\n")
        match = re.fullmatch(rf"RECORD FILE {SPOOL}/(ivr-[0-9a-f-]{{36}}) wav # {max_ms} 0 BEEP s=2", line)
        assert match, line
        path = self.spool / f"{match[1]}.wav"
        path.write_bytes(b"RIFF" + bytes(40) + bytes(2 * samples))
        self.recordings.append(path)
        await self.send("100 result=0 Trying...", f"200 result={result} {how} endpos={samples}")
        return path

    async def goodbye(self) -> None:
        await self.play("ivr_goodbye")
        await self.expect("HANGUP", "200 result=1")

    async def closed_by_server(self) -> bool:
        try:
            rest = await asyncio.wait_for(self.reader.read(), WAIT_S)
        except ConnectionResetError:
            return True
        return rest == b""


@dataclass
class Rig:
    server: FastAGIServer
    backend: FakeBackend
    spool: Path
    sleeps: list[float]
    clients: list[FakeAsterisk] = field(default_factory=list)

    async def call(self, caller: str | None = CALLER) -> FakeAsterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        writer.write("".join(f"{k}: {v}\n" for k, v in env(caller).items()).encode() + b"\n")
        client = FakeAsterisk(reader, writer, self.spool)
        self.clients.append(client)
        return client

    async def ended(self, client: FakeAsterisk) -> None:
        """The IVR closed the connection and the session is over."""
        assert await client.closed_by_server()
        async with asyncio.timeout(WAIT_S):
            while self.server.active_sessions:  # noqa: ASYNC110 -- a counter, polled with a deadline
                await asyncio.sleep(0.005)

    def spool_files(self) -> list[str]:
        return sorted(p.name for p in self.spool.iterdir())


@asynccontextmanager
async def rig(tmp_path: Path, backend: FakeBackend | None = None) -> AsyncIterator[Rig]:
    backend = backend or FakeBackend()
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    options = IvrOptions(
        prompts_dir=PurePosixPath(SOUNDS), code_tries=3, digit_timeout_s=2, record_max_s=300, silence_s=2
    )
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    ivr = RecordingIVR(options, backend, Spool(PurePosixPath(SPOOL), spool_dir), sleep=sleep)
    async with FastAGIServer({"record": ivr}, host="127.0.0.1", port=0) as server:
        the_rig = Rig(server, backend, spool_dir, sleeps)
        try:
            yield the_rig
        finally:
            for client in the_rig.clients:
                client.writer.close()
                with suppress(OSError):
                    await client.writer.wait_closed()


# --- pure helpers ------------------------------------------------------------------------------------


def test_caller_key_forms() -> None:
    same = {"0612345678", "+33612345678", "0033612345678", "33612345678", " +33 6 12 34 56 78 "}
    assert {caller_key(raw) for raw in same} == {"+33612345678"}
    assert caller_key("+442079460958") == "+442079460958"
    assert caller_key("00442079460958") == "+442079460958"
    assert caller_key("3615") == "3615"
    assert caller_key(None) == caller_key("") == caller_key("anonymous") == ANONYMOUS
    assert not can_be_locked_out(ANONYMOUS)  # one stranger would lock out every hidden caller
    assert can_be_locked_out(caller_key("0612345678"))
    assert len(caller_key("1" * 200)) == 64


def test_throttle_grows_with_the_global_failure_rate_up_to_a_ceiling() -> None:
    assert throttle_delay_s(0, 60, 10.0) == 0
    assert throttle_delay_s(59, 60, 10.0) == 0
    assert throttle_delay_s(60, 60, 10.0) == 1.0
    assert throttle_delay_s(180, 60, 10.0) == 3.0
    assert throttle_delay_s(6000, 60, 10.0) == 10.0
    assert throttle_delay_s(180, 60, 2.5) == 2.5  # the ceiling is VOCALCAST_IVR_THROTTLE_MAX_S
    assert Settings.from_env({}).ivr_throttle_max_s == 10.0  # 10 s unless an operator says otherwise


def test_only_unknown_callers_need_a_place_and_only_while_the_budget_is_spent() -> None:
    assert not budget_spent(59, 60) and budget_spent(60, 60) and budget_spent(600, 60)
    assert not budget_spent(10, 0)  # no budget set: never spent
    unknown, hidden = caller_key("0612345678"), ANONYMOUS
    for caller in (unknown, hidden):
        assert not needs_a_place(59, 60, caller=caller, known=False)  # the budget holds: everyone checks
        assert needs_a_place(60, 60, caller=caller, known=False)
    assert not needs_a_place(60, 60, caller=unknown, known=True)  # a known number is never refused
    assert needs_a_place(6000, 60, caller=hidden, known=True)  # a hidden number is never known
    # The lease outlives the longest wait between two renewals: a whole code at the digit timeout, the
    # slowest check, and the prompt.
    assert place_lease_s(6.0, 9, 10.0) > 9 * 6.0 + throttle_delay_s(10**6, 1, 10.0) + 10.0
    assert place_lease_s(20.0, 9, 10.0) > place_lease_s(6.0, 9, 10.0)
    assert place_lease_s(6.0, 9, 20.0) > place_lease_s(6.0, 9, 10.0)


def test_reference_prompts() -> None:
    assert reference_prompts(32) == ["num_32"]
    assert reference_prompts(232) == ["num_2", "num_100", "num_32"]
    assert reference_prompts(1_234_567) == [f"num_{d}" for d in "1234567"]


# --- happy paths ---------------------------------------------------------------------------------------


async def test_message_recorded_listened_validated_and_reference_said(tmp_path: Path) -> None:
    async with rig(tmp_path, FakeBackend(ref=232)) as r:
        ast = await r.call()
        await ast.code(GOOD_CODE)
        await ast.main_menu("200 result=1")
        raw = await ast.record(samples=40000)
        await ast.review("200 result=1")  # listen
        await ast.expect(f"STREAM FILE {SPOOL}/{raw.stem} 123", "200 result=0 endpos=40000")
        await ast.review("200 result=2")  # validate
        await ast.play("ivr_saved_prefix")
        for name in ("num_2", "num_100", "num_32"):
            await ast.play(name)
        await ast.goodbye()
        await r.ended(ast)
        assert r.backend.saved == [(ACCOUNT, b"RIFF" + bytes(40) + bytes(80000), False)]
        assert r.backend.checks == [GOOD_CODE]
        assert r.spool_files() == []  # the raw recording is gone once saved
        assert r.sleeps == []


async def test_greeting_recorded_and_saved_as_greeting(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        ast = await r.call()
        await ast.code(GOOD_CODE)
        await ast.main_menu("200 result=2")
        # A greeting's recording stops at VOCALCAST_GREETING_MAX_S (30 s), a message's at 300 s.
        await ast.record(how="(timeout)", result=0, max_ms=30000)  # stopped by silence
        await ast.review("200 result=2")
        await ast.play("ivr_greeting_saved")
        await ast.goodbye()
        await r.ended(ast)
        assert [(account, greeting) for account, _, greeting in r.backend.saved] == [(ACCOUNT, True)]
        assert r.spool_files() == []


async def test_key_pressed_while_listening_answers_the_menu(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        ast = await r.call()
        await ast.code(GOOD_CODE)
        await ast.main_menu("200 result=1")
        raw = await ast.record()
        await ast.review("200 result=1")
        await ast.expect(f"STREAM FILE {SPOOL}/{raw.stem} 123", "200 result=50 endpos=1200")  # '2'
        await ast.play("ivr_saved_prefix")
        await ast.play("num_32")
        await ast.goodbye()
        await r.ended(ast)
        assert len(r.backend.saved) == 1


async def test_record_again_discards_the_first_take(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        ast = await r.call()
        await ast.code(GOOD_CODE)
        await ast.main_menu("200 result=1")
        first = await ast.record(samples=16000)
        await ast.review("200 result=3")
        second = await ast.record(samples=24000)
        assert not first.exists()  # dropped as soon as the caller asked for another take
        await ast.review("200 result=2")
        await ast.play("ivr_saved_prefix")
        await ast.play("num_32")
        await ast.goodbye()
        await r.ended(ast)
        assert [len(data) for _, data, _ in r.backend.saved] == [44 + 48000]
        assert not second.exists()


# --- personal code -------------------------------------------------------------------------------------


async def test_three_wrong_codes_then_goodbye_and_nothing_else(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        ast = await r.call()
        for code in ("87654321", "1234", "123456789"):  # wrong, too short, too long: all wrong codes
            await ast.code(code)
            await ast.play("ivr_bad_code")
        await ast.goodbye()
        await r.ended(ast)
        assert r.backend.failures == {"+33612345678": 3}
        assert r.backend.checks == ["87654321"]  # malformed codes never reach the lookup
        assert r.backend.saved == []


async def test_wrong_code_then_right_code(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        ast = await r.call()
        await ast.code("11111111")
        await ast.play("ivr_bad_code")
        await ast.code(GOOD_CODE)
        await ast.main_menu("200 result= (timeout)")
        await ast.main_menu("200 result= (timeout)")
        await ast.main_menu("200 result= (timeout)")
        await ast.goodbye()
        await r.ended(ast)
        assert r.backend.failures == {"+33612345678": 1}


async def test_no_code_typed_uses_a_try_but_is_no_failure(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        ast = await r.call()
        for _ in range(3):
            await ast.code(" (timeout)")
        await ast.goodbye()
        await r.ended(ast)
        assert r.backend.failures == {}
        assert r.backend.checks == []


async def test_code_typed_without_hash_is_still_checked(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        ast = await r.call()
        await ast.code(f"{GOOD_CODE} (timeout)")
        await ast.main_menu("200 result=1")
        await ast.record(samples=0, how="(dtmf)")  # # at the beep: nothing recorded
        await ast.play("ivr_nothing_heard")
        await ast.expect(f'STREAM FILE {SOUNDS}/ivr_record ""', "200 result=-1 endpos=0", "HANGUP")
        await r.ended(ast)
        assert r.backend.saved == []
        assert r.spool_files() == []


async def test_lockout_exactly_at_the_fifth_failure_and_across_calls(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        first = await r.call()
        for _ in range(3):
            await first.code("00000000")
            await first.play("ivr_bad_code")
        await first.goodbye()
        await r.ended(first)

        # The same number in another form: failures 4 (not blocked yet) and 5 (blocked at once).
        second = await r.call("+33612345678")
        await second.code("00000000")
        await second.play("ivr_bad_code")  # the 4th failure still hears "Code incorrect"
        assert r.backend.blocked == set()
        await second.code("00000000")
        await second.play("ivr_blocked")
        await second.expect("HANGUP", "200 result=1")
        await r.ended(second)
        assert r.backend.blocked == {"+33612345678"}

        # A blocked number is refused before any code is asked, even if it knows a good one.
        third = await r.call("0033612345678")
        await third.play("ivr_blocked")
        await third.expect("HANGUP", "200 result=1")
        await r.ended(third)

        # Another number is not affected.
        other = await r.call("0698765432")
        await other.code(GOOD_CODE)
        await other.main_menu("200 result=")  # # alone
        await other.play("ivr_invalid_choice", "200 result=-1 endpos=0", "HANGUP")
        await r.ended(other)
        assert r.backend.checks.count(GOOD_CODE) == 1
        assert r.backend.saved == []


async def test_four_failures_do_not_block_a_right_code(tmp_path: Path) -> None:
    backend = FakeBackend(failures={"+33612345678": 3})
    async with rig(tmp_path, backend) as r:
        ast = await r.call()
        await ast.code("99999999")  # 4th
        await ast.play("ivr_bad_code")
        await ast.code(GOOD_CODE)
        await ast.main_menu("200 result=-1", "HANGUP")
        await r.ended(ast)
        assert backend.blocked == set()
        assert backend.checks == ["99999999", GOOD_CODE]


async def test_blocked_meanwhile_by_a_parallel_call(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        ast = await r.call()
        await ast.code("00000000")
        r.backend.blocked.add("+33612345678")  # another call from the same number reached the limit
        await ast.play("ivr_bad_code")
        await ast.play("ivr_blocked")
        await ast.expect("HANGUP", "200 result=1")
        await r.ended(ast)


async def test_global_throttle_delays_every_code_check_right_or_wrong(tmp_path: Path) -> None:
    async with rig(tmp_path, FakeBackend(delay_s=3.0)) as r:
        ast = await r.call()
        await ast.code("00000000")
        await ast.play("ivr_bad_code")
        await ast.code(" (timeout)")  # nothing typed: nothing to check, no wait
        await ast.code(GOOD_CODE)
        await ast.main_menu("200 result=-1", "HANGUP")
        await r.ended(ast)
        assert r.sleeps == [3.0, 3.0]


async def test_a_caller_that_typed_a_right_code_before_keeps_its_pace_when_the_budget_is_spent(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, FakeBackend(delay_s=3.0)) as r:
        ast = await r.call()  # unknown yet: its checks wait, the right one included
        await ast.code(GOOD_CODE)
        await ast.main_menu("200 result=-1", "HANGUP")
        await r.ended(ast)
        assert r.backend.known == {caller_key(CALLER)}
        ast = await r.call()  # the same number calls again: no wait, right or wrong code
        await ast.code("00000000")
        await ast.play("ivr_bad_code")
        await ast.code(GOOD_CODE)
        await ast.main_menu("200 result=-1", "HANGUP")
        await r.ended(ast)
        ast = await r.call(caller="+33698765432")  # another number still waits
        await ast.code("00000000")
        await ast.play("ivr_bad_code")
        await ast.get_data("ivr_welcome", 9, "200 result=-1", "HANGUP")  # hangs up at the next prompt
        await r.ended(ast)
        assert r.sleeps == [3.0, 3.0]
        assert r.backend.known == {caller_key(CALLER)}  # a wrong code teaches nothing


async def test_an_unknown_caller_beyond_the_places_hears_busy_before_any_check(tmp_path: Path) -> None:
    backend = FakeBackend(places=1, known={caller_key("0698765432")})
    async with rig(tmp_path, backend) as r:
        holder = await r.call("0611111111")  # takes the only place for unknown callers
        await holder.code("00000000")
        await holder.play("ivr_bad_code")
        assert len(backend.holding) == 1
        # Another unknown number, and a hidden one: busy, hung up, nothing checked.
        for number in ("0622222222", None):
            other = await r.call(number)
            await other.play("ivr_busy")
            await other.expect("HANGUP", "200 result=1")
            assert await other.closed_by_server()  # (the holder's session is still on)
        assert backend.checks == ["00000000"]
        # A known number is never refused.
        known = await r.call("0698765432")
        await known.code(GOOD_CODE)
        await known.main_menu("200 result=-1", "HANGUP")
        assert await known.closed_by_server()
        # The holder keeps its place for its next code, then frees it when its call stops checking.
        await holder.code(GOOD_CODE)
        await holder.main_menu("200 result=-1", "HANGUP")
        await r.ended(holder)
        assert backend.holding == set()
        after = await r.call("0622222222")  # the place is free again
        await after.code("00000000")
        await after.play("ivr_bad_code")
        await after.get_data("ivr_welcome", 9, "200 result=-1", "HANGUP")
        await r.ended(after)
        assert backend.checks == ["00000000", GOOD_CODE, GOOD_CODE, "00000000"]
        assert backend.holding == set() and backend.released == 5


async def test_spent_while_the_caller_typed_busy_before_its_code_is_checked(tmp_path: Path) -> None:
    backend = FakeBackend()
    async with rig(tmp_path, backend) as r:
        ast = await r.call()
        await ast.get_data("ivr_welcome", 9)  # the prompt is on, the caller types ...
        backend.places, backend.holding = 1, {"another call"}  # ... the budget is spent meanwhile
        await ast.send(f"200 result={GOOD_CODE}")
        await ast.play("ivr_busy")
        await ast.expect("HANGUP", "200 result=1")
        await r.ended(ast)
        assert backend.checks == []  # the code typed was never checked


# --- menus ---------------------------------------------------------------------------------------------


async def test_main_menu_repeats_on_timeout_and_wrong_keys_then_gives_up(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        ast = await r.call()
        await ast.code(GOOD_CODE)
        await ast.main_menu("200 result= (timeout)")
        await ast.main_menu("200 result=7")
        await ast.play("ivr_invalid_choice")
        await ast.main_menu("200 result=9")
        await ast.play("ivr_invalid_choice")
        await ast.goodbye()
        await r.ended(ast)


async def test_review_menu_repeats_then_gives_up_without_saving(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        ast = await r.call()
        await ast.code(GOOD_CODE)
        await ast.main_menu("200 result= (timeout)")
        await ast.main_menu("200 result=1")
        raw = await ast.record()
        await ast.review("200 result= (timeout)")
        await ast.review("200 result=5")
        await ast.play("ivr_invalid_choice")
        await ast.review("200 result=1")  # listening starts the count again
        await ast.expect(f"STREAM FILE {SPOOL}/{raw.stem} 123", "200 result=0 endpos=40000")
        await ast.review("200 result= (timeout)")
        await ast.review("200 result=")  # # alone
        await ast.play("ivr_invalid_choice")
        await ast.review("200 result= (timeout)")
        await ast.goodbye()
        await r.ended(ast)
        assert r.backend.saved == []
        assert r.spool_files() == []


async def test_refused_recordings_ask_again_then_give_up(tmp_path: Path) -> None:
    backend = FakeBackend(refuse=["silence", "too_short"])
    async with rig(tmp_path, backend) as r:
        ast = await r.call()
        await ast.code(GOOD_CODE)
        await ast.main_menu("200 result=1")
        await ast.record()
        await ast.review("200 result=2")
        await ast.play("ivr_nothing_heard")  # only silence
        await ast.record()
        await ast.review("200 result=2")
        await ast.play("ivr_nothing_heard")  # too short
        await ast.record(samples=100)  # nothing at all
        await ast.play("ivr_nothing_heard")
        await ast.goodbye()
        await r.ended(ast)
        assert backend.saved == []
        assert r.spool_files() == []


async def test_a_refused_take_then_a_good_one(tmp_path: Path) -> None:
    async with rig(tmp_path, FakeBackend(refuse=["silence"], ref=7)) as r:
        ast = await r.call()
        await ast.code(GOOD_CODE)
        await ast.main_menu("200 result=1")
        await ast.record()
        await ast.review("200 result=2")
        await ast.play("ivr_nothing_heard")
        await ast.record()
        await ast.review("200 result=2")
        await ast.play("ivr_saved_prefix")
        await ast.play("num_7")
        await ast.goodbye()
        await r.ended(ast)
        assert len(r.backend.saved) == 1


# --- hang-ups and failures ------------------------------------------------------------------------------

HANGUP_STEPS = [
    "welcome",
    "bad_code",
    "main_menu",
    "record_prompt",
    "recording",
    "review",
    "listening",
    "nothing_heard",
]


@pytest.mark.parametrize("step", HANGUP_STEPS)
async def test_hang_up_at_any_step_leaves_nothing(tmp_path: Path, step: str) -> None:
    dead = ("200 result=-1", "HANGUP")
    async with rig(tmp_path, FakeBackend(refuse=["silence"])) as r:
        with structlog.testing.capture_logs() as logs:
            ast = await r.call()
            if step == "welcome":
                await ast.get_data("ivr_welcome", 9, "HANGUP", "200 result=-1")
            else:
                await ast.code("00000000" if step == "bad_code" else GOOD_CODE)
            if step == "bad_code":
                await ast.play("ivr_bad_code", "200 result=-1 endpos=100", "HANGUP")
            if step == "main_menu":
                await ast.main_menu(*dead)
            if step in {"record_prompt", "recording", "review", "listening", "nothing_heard"}:
                await ast.main_menu("200 result=1")
            if step == "record_prompt":
                await ast.play("ivr_record", "200 result=-1 endpos=100", "HANGUP")
            if step == "recording":
                await ast.play("ivr_record")
                line = await ast.expect(r"^RECORD FILE .*", "HANGUP")
                partial = r.spool / (line.split()[2].rsplit("/", 1)[1] + ".wav")
                partial.write_bytes(b"RIFF" + bytes(9000))  # what Asterisk wrote before the hang-up
                await ast.send("200 result=-1 (hangup) endpos=4480")
            if step in {"review", "listening", "nothing_heard"}:
                raw = await ast.record()
            if step == "review":
                await ast.review(*dead)
            if step == "listening":
                await ast.review("200 result=1")
                await ast.expect(f"STREAM FILE {SPOOL}/{raw.stem} 123", "200 result=-1 endpos=10", "HANGUP")
            if step == "nothing_heard":
                await ast.review("200 result=2")  # refused as silence
                await ast.play("ivr_nothing_heard", "HANGUP", "200 result=-1 endpos=0")
            await r.ended(ast)
        assert r.backend.saved == []
        assert r.spool_files() == []
        hung_up = [entry for entry in logs if entry["event"] == "ivr.hung_up"]
        assert len(hung_up) == 1


async def test_database_failure_says_goodbye(tmp_path: Path) -> None:
    async with rig(tmp_path, FakeBackend(broken=True)) as r:
        ast = await r.call()
        await ast.goodbye()
        await r.ended(ast)


def test_spool_purge_keeps_recent_recordings(tmp_path: Path) -> None:
    spool = Spool(PurePosixPath(SPOOL), tmp_path)
    old, new = spool.make(), spool.make()
    old.host_file.write_bytes(b"x")
    new.host_file.write_bytes(b"x")
    (tmp_path / "someone-else.wav").write_bytes(b"x")
    os.utime(old.host_file, (1000.0, 1000.0))
    assert spool.purge(3600, now_s=1000.0 + 3601) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([new.host_file.name, "someone-else.wav"])
    assert new.agi_path == f"{SPOOL}/{new.host_file.stem}"
