"""The recording IVR on the real stack: SIPp customers call the recording number through a trunk,
type their code as RFC 2833 events and speak as G.711 A-law; Asterisk runs the dialplan and reaches
our FastAGI server, started here in the test process.

Proven from the outside: what the caller heard is the RTP captured towards SIPp, decoded and matched
against the prompt files (tests/support/audiomatch.py); the call's end is SIPp's own log (who sent
BYE); what was stored is the database and the media directory; no outbound dial is Asterisk's own CDRs
and SIPp's SIP trace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import subprocess
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest
import structlog.testing

from engine.domain.numbers import Number, normalize
from engine.domain.preamble import callback_text, opt_out_text
from engine.domain.recordings import ANONYMOUS
from engine.domain.sends import Target
from engine.domain.stoplists import number_hash
from engine.domain.trunks import Trunk
from engine.errors import InvalidInput
from engine.media.paths import host_dir
from engine.media.spoken import spoken
from engine.services import build
from engine.services.callbacks import Callbacks
from engine.services.recordings import Recordings
from engine.services.sends import create_send
from engine.settings import Settings
from engine.stack.asterisk import cli
from engine.store import Database, credits
from engine.store import accounts as accounts_store
from engine.store import ivr as ivr_store
from engine.store import messages as messages_store
from engine.store.senders import declare_sender, verify_sender
from ivr.fastagi import FastAGIServer
from ivr.service import download_dir, serve
from lab import tones
from lab.dtmfpcap import RtpPcapBuilder
from lab.rtpcapture import RtpCapture, samples_to
from lab.sipp import SippProcess
from tests.integration.conftest import Ari, add_trunk, wait_for
from tests.support import audiomatch
from tests.support.audiomatch import Heard

pytestmark = pytest.mark.integration

SIPP_DIR = Path(__file__).parent.parent / "sipp"
DID = "0172360170"
CALLER = "+33612345678"  # From: of tests/sipp/ivr_caller.xml, as the lockout keys it
TRUNK = "ivrcaller"
LEAD_S = 1.5  # Answer(), AGI connection, first GET DATA: digits before that would be lost
KEY_S = 0.1  # RFC 2833 key length and the pause between two keys
SPEECH_TEXT = "Bonjour, ceci est un message de test, enregistré par téléphone."
TRIM_THRESHOLD = 32768 * 10 ** (-50 / 20)  # engine.media.audio trims below −50 dBFS …
TRIM_PAD_S = 0.2  # … and keeps this much around the voice


def prompt_s(name: str) -> float:
    return len(audiomatch.prompt(name)) / audiomatch.RATE_HZ


# --- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> array[int]:
    return french_speech(tmp_path_factory.mktemp("speech"))


def french_speech(work: Path) -> array[int]:
    """About 3.5 s of French speech, 8 kHz mono, made with espeak-ng."""
    raw, wav = work / "speech.wav", work / "speech8k.wav"
    subprocess.run(["espeak-ng", "-v", "fr", "-w", str(raw), SPEECH_TEXT], check=True, timeout=30)
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            str(raw),
            "-ar",
            "8000",
            "-ac",
            "1",
            "-c:a",
            "pcm_s16le",
            str(wav),
        ],
        check=True,
        timeout=30,
    )
    samples, _ = tones.read_wav(wav)
    return samples


@pytest.fixture
def ivr_settings(stack_settings: Settings) -> Settings:
    """Short timers: calls of a few seconds."""
    return dataclasses.replace(
        stack_settings, ivr_digit_timeout_s=3, ivr_silence_s=2, ivr_record_max_s=20, ivr_code_tries=3
    )


@pytest.fixture
async def ivr(ivr_settings: Settings, db: Database) -> AsyncIterator[FastAGIServer]:
    """Our FastAGI server on the port the test instance's dialplan calls."""
    async with serve(ivr_settings, recordings(ivr_settings, db)) as server:
        yield server


def recordings(settings: Settings, db: Database) -> Recordings:
    """The recording IVR's backend, as the engine builds it."""
    return build(settings, db).recordings


def spool_dir(settings: Settings) -> Path:
    return host_dir(settings) / "spool" / "recording"


@dataclass
class Call:
    sipp: SippProcess
    heard: Heard
    returncode: int

    @property
    def events(self) -> list[str]:
        return [event.get("event", "") for event in self.sipp.log_events()]

    @property
    def ended_by_asterisk(self) -> bool:
        return "BYE_RECEIVED" in self.events

    def count(self, prompt: str, *, first_s: float | None = None) -> int:
        """How often the caller heard ``prompt`` (its first ``first_s`` seconds: a prompt cut by a key)."""
        return len(audiomatch.find_prompt(self.heard, prompt, first_s=first_s))


class Caller:
    """Places SIPp calls from one trunk address; each call replays one pcap."""

    def __init__(self, settings: Settings, ports: Callable[[], tuple[int, int]], workdir: Path) -> None:
        self.settings = settings
        self.ports = ports
        self.workdir = workdir
        self.calls = 0

    async def call(
        self,
        pcap: RtpPcapBuilder,
        *,
        number: str = DID,
        to: str | None = None,
        to_name: str = "",
        hang_up_after_s: float | None = None,
        timeout_s: float = 60.0,
        during: Callable[[], Awaitable[object]] | None = None,
        caller_id: str = "0612345678",
    ) -> Call:
        """Call ``number`` (Request-URI; the To header says ``to``, by default the same, after the display
        name ``to_name``) from ``caller_id``, play the pcap; Asterisk must hang up unless ``hang_up_after_s``
        is given."""
        self.calls += 1
        name = f"call{self.calls}"
        sip_port, media_port = self.ports()
        path = pcap.write(self.workdir / f"{name}.pcap")
        wait_ms = round((hang_up_after_s or timeout_s) * 1000)
        sipp = SippProcess(
            SIPP_DIR / "ivr_caller.xml",
            local_port=sip_port,
            media_port=media_port,
            remote=f"127.0.0.1:{self.settings.sip_port}",
            service=number,
            calls=1,
            recv_timeout_ms=wait_ms,
            keys={
                "pcap": str(path),
                "to": number if to is None else to,
                "to_name": to_name,
                "from": caller_id,
            },
            workdir=self.workdir,
            name=name,
            extra_args=["-aa"],
        )
        async with RtpCapture([media_port]) as capture, sipp:
            task = asyncio.ensure_future(during()) if during is not None else None
            returncode = await sipp.wait(timeout_s + 10)
            if task is not None:
                await task
        heard = Heard(samples_to(capture.streams, media_port))
        return Call(sipp, heard, returncode)


@pytest.fixture
async def caller(ivr_settings: Settings, sipp_ports, tmp_path: Path) -> Caller:  # type: ignore[no-untyped-def]
    # Inbound calls are accepted from trunk addresses only (identify by IP); the port is the first
    # caller's, so an outbound dial through this trunk would reach a SIPp that logs it.
    first = sipp_ports()
    await add_trunk(ivr_settings, Trunk(name=TRUNK, host="127.0.0.1", port=first[0]))
    pending = [first]

    def ports() -> tuple[int, int]:
        return pending.pop() if pending else sipp_ports()

    return Caller(ivr_settings, ports, tmp_path)


async def new_account(settings: Settings, db: Database, *, next_ref: int = 1) -> tuple[UUID, str]:
    created = await accounts_store.create_account(
        db, f"client{next_ref}@example.fr", secret_key=settings.require("secret_key")
    )
    await db.execute("UPDATE accounts SET next_message_ref = $2 WHERE id = $1", created.account.id, next_ref)
    return created.account.id, created.code


def code_entry(pcap: RtpPcapBuilder, digits: str) -> RtpPcapBuilder:
    return pcap.digits(digits + "#", tone_s=KEY_S, pause_s=KEY_S)


def voiced(samples: array[int]) -> array[int]:
    """The speech without its leading and trailing silence, as engine.media.audio trims it (< −50 dBFS)."""
    loud = [i for i, value in enumerate(samples) if abs(value) > TRIM_THRESHOLD]
    return samples[loud[0] : loud[-1] + 1]


def spool_files(spool: Path) -> list[str]:
    return sorted(p.name for p in spool.glob("ivr-*"))


# --- the matcher can fail ---------------------------------------------------------------------------------


def test_audiomatch_tells_the_right_number_from_its_neighbours() -> None:
    from lab import g711

    heard = array("h", bytes(8000))
    for name in ("ivr_menu", "ivr_saved_prefix", "num_2", "num_100", "num_32", "ivr_goodbye"):
        heard += audiomatch.prompt(name)
    heard = g711.decode(g711.encode(heard, "alaw"), "alaw")  # as it comes back from an A-law call
    said = Heard(heard)
    assert audiomatch.find_sequence(said, ["ivr_saved_prefix", "num_2", "num_100", "num_32"]) is not None
    for wrong in (
        ["num_2", "num_100", "num_33"],
        ["num_2", "num_100", "num_22"],
        ["num_3", "num_100", "num_32"],
    ):
        assert audiomatch.find_sequence(said, ["ivr_saved_prefix", *wrong]) is None, wrong
    assert audiomatch.find_sequence(said, ["ivr_saved_prefix", "num_32"]) is None  # not "trente-deux" alone
    assert audiomatch.find_prompt(said, "num_42") == []  # "quarante-deux" shares "deux", still no match
    at = (
        len(array("h", bytes(8000)))
        + len(audiomatch.prompt("ivr_menu"))
        + len(audiomatch.prompt("ivr_saved_prefix"))
    )
    assert [m.offset for m in audiomatch.find_prompt(said, "num_2")] == [
        at
    ]  # "deux" alone, not in "trente-deux"


# --- the lockout store on the real PostgreSQL ------------------------------------------------------------


async def test_store_blocks_at_the_fifth_failure_within_the_window(db: Database) -> None:
    caller = "+33600000001"
    await db.execute(
        "INSERT INTO ivr_code_failures (caller, at) VALUES ($1, now() - interval '20 minutes')", caller
    )  # out of the window: does not count
    counts = [
        await ivr_store.record_failure(db, caller, window_s=900, max_failures=5, lockout_s=1800)
        for _ in range(5)
    ]
    assert [c.failures for c in counts] == [1, 2, 3, 4, 5]
    assert [c.blocked for c in counts] == [False, False, False, False, True]
    until = await ivr_store.blocked_until(db, caller)
    assert until is not None
    assert await ivr_store.blocked_until(db, "+33600000002") is None
    assert await ivr_store.recent_failures(db, window_s=60) == 5
    # A later failure never shortens the block.
    again = await ivr_store.record_failure(db, caller, window_s=900, max_failures=5, lockout_s=1)
    assert again.blocked_until == until
    assert await ivr_store.unblock(db, caller) is True
    assert await ivr_store.blocked_until(db, caller) is None


async def test_store_counts_concurrent_failures_exactly(db: Database) -> None:
    caller = "+33600000003"
    counts = await asyncio.gather(
        *(
            ivr_store.record_failure(db, caller, window_s=900, max_failures=5, lockout_s=1800)
            for _ in range(10)
        )
    )
    assert sorted(c.failures for c in counts) == list(range(1, 11))
    assert sum(c.blocked for c in counts) == 6


async def test_hidden_numbers_are_never_locked_out_but_count_in_the_budget(
    ivr_settings: Settings, db: Database
) -> None:
    """Issue 17: hidden callers share one key, so blocking it would let one stranger lock out every
    customer who hides its number; their wrong codes still spend the line's global budget."""
    line = recordings(ivr_settings, db)
    before = await ivr_store.recent_failures(db, window_s=60)
    blocked = [await line.record_failure(ANONYMOUS) for _ in range(ivr_settings.ivr_lockout_failures + 3)]
    assert blocked == [False] * len(blocked)
    assert not await line.is_blocked(ANONYMOUS)
    assert await ivr_store.blocked_until(db, ANONYMOUS) is None
    assert await ivr_store.recent_failures(db, window_s=60) == before + len(blocked)
    caller = "+33600000006"  # a presented number is still blocked at the limit
    shown = [await line.record_failure(caller) for _ in range(ivr_settings.ivr_lockout_failures)]
    assert shown[-1] is True
    assert await line.is_blocked(caller)
    await ivr_store.unblock(db, caller)


async def test_store_purge_and_expired_blocks(db: Database) -> None:
    await db.execute(
        "INSERT INTO ivr_code_failures (caller, at) VALUES ('+33600000004', now() - interval '2 hours'), "
        "('+33600000004', now())"
    )
    await db.execute(
        "INSERT INTO ivr_blocked_callers (caller, blocked_at, blocked_until, failures) "
        "VALUES ('+33600000005', now() - interval '2 hours', now() - interval '1 hour', 5)"
    )
    assert await ivr_store.blocked_until(db, "+33600000005") is None  # ended
    assert await ivr_store.purge(db, keep_s=900) == 2
    assert await db.fetchval("SELECT count(*) FROM ivr_code_failures") == 1


# --- the backend on the real store and library -----------------------------------------------------------


async def test_greeting_by_phone_waits_for_confirmation_before_it_is_the_default(
    ivr_settings: Settings, db: Database, speech: array[int], tmp_path: Path
) -> None:
    account_id, code = await new_account(ivr_settings, db)
    backend = recordings(ivr_settings, db)
    assert await backend.find_account(code) == account_id
    assert await backend.find_account("00000000" if code != "00000000" else "11111111") is None
    raw = tones.write_wav(tmp_path / "take.wav", tones.silence(0.5) + speech + tones.silence(0.5))

    greeting = await backend.save(account_id, raw, is_greeting=True)

    account = await accounts_store.get_account(db, account_id)
    assert greeting.is_greeting and greeting.origin == "phone" and greeting.greeting_pending
    assert account.defaults.greeting_message_id is None  # issue 17: only once the customer confirms it
    await backend.settled()  # its e-mail (no relay here: logged)
    await messages_store.settle_pending_greeting(db, account_id, greeting.ref, make_default=True)
    account = await accounts_store.get_account(db, account_id)
    assert account.defaults.greeting_message_id == greeting.id
    assert account.defaults.greeting_enabled is False  # using it by default stays the customer's choice
    assert raw.exists()  # the IVR, not the library, removes the raw recording
    silent = tones.write_wav(tmp_path / "silent.wav", tones.silence(4.0))
    with pytest.raises(InvalidInput) as refused:
        await backend.save(account_id, silent, is_greeting=False)
    assert refused.value.code == "silence"
    assert [m.id for m in await messages_store.list_messages(db, account_id)] == [greeting.id]


# --- calls ---------------------------------------------------------------------------------------------


async def test_recording_by_phone_from_code_to_announced_reference(
    ivr_settings: Settings, db: Database, caller: Caller, speech: array[int], tmp_path: Path
) -> None:
    """The whole recording call, with the IVR as on another host than its media server
    (VOCALCAST_MEDIA_TRANSPORT=http, issue 19): the engine shares no directory with Asterisk (its state
    dir is elsewhere), prompts are the media server's (VC_SOUNDS), the recording is fetched through the
    ARI of the media server the AGI URL names, stored in the library, then deleted on Asterisk. (The
    same call with the IVR beside Asterisk, reading its spool: tests/security/test_service_user.py.)"""
    remote = dataclasses.replace(ivr_settings, media_transport="http", state_dir=tmp_path / "engine")
    assert host_dir(remote) != host_dir(ivr_settings)  # the engine's idea of the spool: not Asterisk's
    spool = spool_dir(ivr_settings)
    account_id, code = await new_account(remote, db, next_ref=232)
    pcap = RtpPcapBuilder(codec="alaw").silence(LEAD_S)
    code_entry(pcap, code).silence(1.0).digits("1", tone_s=KEY_S)  # main menu: record a message
    pcap.silence(prompt_s("ivr_record") + 1.5)  # the instructions and the beep
    pcap.audio(speech).silence(0.6).digits("#", tone_s=KEY_S)
    pcap.silence(1.0).digits("2", tone_s=KEY_S)  # validate, during the review menu
    pcap.silence(1.0)

    with structlog.testing.capture_logs() as logs:
        async with serve(remote, recordings(remote, db)):
            call = await caller.call(pcap, timeout_s=40)

    assert call.ended_by_asterisk, call.sipp.diagnostics()
    fetched = [e for e in logs if e["event"] == "ivr.recording_fetched"]
    assert [e["server"] for e in fetched] == [remote.node_name]
    # Stored like an upload: one phone message, reference 232, as long as the voice streamed.
    messages = await messages_store.list_messages(db, account_id)
    assert [(m.ref, m.origin, m.is_greeting) for m in messages] == [(232, "phone", False)]
    message = messages[0]
    voice = voiced(speech)
    assert message.duration_s == pytest.approx(len(voice) / 8000 + 2 * TRIM_PAD_S, abs=0.25)
    stored, _ = tones.read_wav(message.wav(remote.media_dir))
    assert tones.rms_dbfs(stored) > -35  # normalised speech, not silence
    matches = audiomatch.find(stored, voice)  # the very voice streamed, sample for sample
    assert [m.offset for m in matches] == [pytest.approx(TRIM_PAD_S * 8000, abs=400)], matches
    # What the caller heard: the reference in words, right after "…sous la référence", then goodbye.
    said = audiomatch.find_sequence(call.heard, ["ivr_saved_prefix", "num_2", "num_100", "num_32"])
    assert said is not None
    for wrong in (
        ["num_2", "num_100", "num_33"],
        ["num_2", "num_100", "num_31"],
        ["num_3", "num_100", "num_32"],
    ):
        assert audiomatch.find_sequence(call.heard, ["ivr_saved_prefix", *wrong]) is None
    goodbye = audiomatch.find_prompt(call.heard, "ivr_goodbye")
    assert len(goodbye) == 1 and goodbye[0].offset > said[-1].offset
    assert call.count("ivr_bad_code") == 0
    assert spool_files(spool) == []  # deleted on the media server, through its ARI
    assert list(download_dir(remote).glob("ivr-*")) == []


async def test_wrong_codes_goodbye_then_lockout_at_the_last_failure_across_a_restart(
    ivr_settings: Settings, db: Database, caller: Caller
) -> None:
    """Two tries a call and a lockout at the 4th failure (3 and 5 by default: one wrong code less per call
    on the line; tests/unit/test_ivr_conversation.py runs the defaults' counts)."""
    settings = dataclasses.replace(ivr_settings, ivr_code_tries=2, ivr_lockout_failures=4)
    account_id, code = await new_account(settings, db)
    gap_s = prompt_s("ivr_bad_code") + 1.0

    async with serve(settings, recordings(settings, db)):
        # Call 1: two wrong codes, "Code incorrect" each time, goodbye, Asterisk hangs up. Not blocked.
        pcap = RtpPcapBuilder(codec="alaw").silence(LEAD_S)
        for wrong in ("00000000", "1234"):
            code_entry(pcap, wrong).silence(gap_s)
        first = await caller.call(pcap.silence(1.0), timeout_s=30)
        assert first.ended_by_asterisk, first.sipp.diagnostics()
        assert first.count("ivr_bad_code") == 2
        assert first.count("ivr_goodbye") == 1
        assert first.count("ivr_blocked") == 0
        assert await ivr_store.blocked_until(db, CALLER) is None

        # Call 2: the 3rd failure still hears "Code incorrect"; the 4th blocks at once.
        pcap = RtpPcapBuilder(codec="alaw").silence(LEAD_S)
        code_entry(pcap, "11111111").silence(gap_s)
        code_entry(pcap, "22222222").silence(prompt_s("ivr_blocked") + 1.0)
        second = await caller.call(pcap, timeout_s=30)
        assert second.ended_by_asterisk, second.sipp.diagnostics()
        bad, blocked = (
            audiomatch.find_prompt(second.heard, "ivr_bad_code"),
            audiomatch.find_prompt(second.heard, "ivr_blocked"),
        )
        assert len(bad) == 1 and len(blocked) == 1 and bad[0].offset < blocked[0].offset
        assert await ivr_store.blocked_until(db, CALLER) is not None

    # The engine restarts (a new FastAGI server, no memory of the calls): the number stays blocked,
    # and is refused before any code is asked, even typing the right one.
    async with serve(settings, recordings(settings, db)):
        pcap = RtpPcapBuilder(codec="alaw").silence(LEAD_S)
        code_entry(pcap, code).silence(1.0).digits("1", tone_s=KEY_S).silence(prompt_s("ivr_blocked"))
        third = await caller.call(pcap, timeout_s=30)
    assert third.ended_by_asterisk, third.sipp.diagnostics()
    assert third.count("ivr_blocked") == 1
    assert third.count("ivr_welcome", first_s=0.6) == 0
    assert third.count("ivr_main_menu", first_s=0.6) == 0
    assert await db.fetchval("SELECT count(*) FROM ivr_code_failures WHERE caller = $1", CALLER) == 4
    assert await messages_store.list_messages(db, account_id) == []
    # The account itself is not locked: only that caller number is.
    assert not await recordings(settings, db).is_blocked("+33698765432")


async def test_hang_up_mid_recording_stores_nothing(
    ivr_settings: Settings, ivr: FastAGIServer, db: Database, caller: Caller, speech: array[int]
) -> None:
    spool = spool_dir(ivr_settings)
    account_id, code = await new_account(ivr_settings, db)
    pcap = RtpPcapBuilder(codec="alaw").silence(LEAD_S)
    code_entry(pcap, code).silence(1.0).digits("1", tone_s=KEY_S)
    pcap.silence(prompt_s("ivr_record") + 1.5)
    record_starts_s = pcap.duration_s
    pcap.audio(speech).audio(speech)
    seen_recording: list[str] = []

    async def watch_spool() -> None:
        # The recording really was under way: Asterisk's raw file appears in the spool.
        seen_recording.extend(
            await wait_for(lambda: spool_files(spool), timeout_s=20, what="a raw recording")
        )

    call = await caller.call(pcap, hang_up_after_s=record_starts_s + 3.0, during=watch_spool)

    assert "CALLER_BYE" in call.events, call.sipp.diagnostics()
    assert seen_recording
    assert call.count("ivr_main_menu", first_s=0.6) == 1  # the code was accepted, message chosen
    await wait_for(lambda: ivr.active_sessions == 0, what="the IVR session to end")
    assert spool_files(spool) == []
    assert await messages_store.list_messages(db, account_id) == []
    assert await db.fetchval("SELECT count(*) FROM messages") == 0
    account_media = ivr_settings.media_dir / str(account_id)
    assert not account_media.exists() or list(account_media.iterdir()) == []


async def test_other_numbers_are_unallocated_and_never_dialled_out(
    ivr_settings: Settings, ivr: FastAGIServer, db: Database, caller: Caller, ari: Ari
) -> None:
    numbers = ["0612345678", "+442079460958", "0172360171", "3615"]
    seen_channels: set[str] = set()
    most_at_once = 0
    # A channel of an earlier test may still be hanging up: only this test's channels count.
    earlier = {c["id"] for c in await ari.client.channels()}

    calls_ended = asyncio.Event()

    async def watch_channels() -> None:
        """Every channel, from before the first call until after the last one ended (one last look)."""
        nonlocal most_at_once
        while True:
            ended = calls_ended.is_set()
            channels = [c for c in await ari.client.channels() if c["id"] not in earlier]
            seen_channels.update(c["name"] for c in channels)
            most_at_once = max(most_at_once, len(channels))
            if ended:
                return
            await asyncio.sleep(0.1)

    pcaps = [RtpPcapBuilder(codec="alaw").silence(prompt_s("unallocated") + 2.0) for _ in numbers]
    watcher = asyncio.create_task(watch_channels())
    try:
        calls = await asyncio.gather(
            *(
                caller.call(pcap, number=number, timeout_s=20)
                for number, pcap in zip(numbers, pcaps, strict=True)
            )
        )
    finally:
        calls_ended.set()
        await watcher

    for number, call in zip(numbers, calls, strict=True):
        assert call.ended_by_asterisk, (number, call.sipp.diagnostics())
        assert call.count("unallocated") == 1, number
        assert call.count("ivr_welcome") == 0, number
        # An outbound dial through the trunk would have reached this SIPp: it received no INVITE.
        received = [m.method for m in call.sipp.messages() if m.direction == "received" and m.method]
        assert "INVITE" not in received, received
    # Only the inbound channels ever existed, and each one's CDR shows no second leg.
    assert all(name.startswith(f"PJSIP/{TRUNK}-") for name in seen_channels), seen_channels
    assert most_at_once <= len(numbers), (most_at_once, seen_channels)
    rows = await wait_for(
        lambda: _cdrs(db, len(numbers)), timeout_s=10, what=f"{len(numbers)} CDRs from Asterisk"
    )
    assert len(rows) == len(seen_channels) == len(numbers)
    for row in rows:
        assert row["channel"].startswith(f"PJSIP/{TRUNK}-"), dict(row)
        assert not row["dstchannel"], dict(row)  # no second leg: nothing was dialled
        assert (row["dst"], row["lastapp"]) == ("unallocated", "Hangup"), dict(row)
    assert ivr.active_sessions == 0
    assert await db.fetchval("SELECT count(*) FROM ivr_code_failures") == 0
    # And no dialplan could dial anyway: this Asterisk has no Dial application at all.
    root = Path((ivr_settings.state_dir / "run" / "asterisk.root").read_text().strip())
    dial = await asyncio.to_thread(cli, ivr_settings, root, "core show application Dial")
    assert "not registered" in dial, dial
    assert "Playback" in await asyncio.to_thread(cli, ivr_settings, root, "core show application Playback")


async def _cdrs(db: Database, count: int) -> list[object] | None:
    rows = await db.fetch("SELECT channel, dstchannel, dst, lastapp FROM asterisk_cdr ORDER BY id")
    return rows if len(rows) >= count else None


async def test_a_client_dropping_mid_headers_does_not_stall_a_real_call(
    ivr_settings: Settings, ivr: FastAGIServer, db: Database, caller: Caller
) -> None:
    _, code = await new_account(ivr_settings, db)
    # Two broken FastAGI clients: one sends half a header block and disconnects, one stays silent.
    dropped = socket.create_connection(("127.0.0.1", ivr_settings.agi_port), timeout=5)
    dropped.sendall(b"agi_network: yes\nagi_network_script: record\n")
    dropped.close()
    stalled = socket.create_connection(("127.0.0.1", ivr_settings.agi_port), timeout=5)
    stalled.sendall(b"agi_network: yes\n")
    try:
        pcap = RtpPcapBuilder(codec="alaw").silence(LEAD_S)
        code_entry(pcap, code).silence(1.0).digits("3", tone_s=KEY_S)  # an invalid choice …
        pcap.silence(prompt_s("ivr_invalid_choice") + 1.0).digits("1", tone_s=KEY_S)  # … then a message
        pcap.silence(prompt_s("ivr_record") + 1.0)
        call = await caller.call(pcap, hang_up_after_s=pcap.duration_s)
    finally:
        stalled.close()
    assert "CALLER_BYE" in call.events, call.sipp.diagnostics()
    assert call.count("ivr_main_menu", first_s=0.6) == 2  # cut by "3", then by "1"
    assert call.count("ivr_invalid_choice") == 1
    assert call.count("ivr_record") == 1  # the IVR answered every step while the bad clients hung
    await wait_for(lambda: ivr.active_sessions == 0, what="every session to end")


# Crafted called numbers (issue 17): (Request-URI user, To user, To display name, where the call must end).
# Asterisk URL-decodes the Request-URI's user part into ${EXTEN} (%22 is a quote there), truncated to 79
# characters; the To header comes back from PJSIP_HEADER() with its user part escaped again, but its display
# name raw: the dialplan's CUT at ":" hands whatever follows a ":" in the display name to VC_TO. Filtered to
# digits (and "+"), each value is the number it carries: the recording number with junk around it reaches
# the IVR, any other number the unallocated announcement (through the callback check, issue 18).
CRAFTED = [
    ("0172360170" + "%22%7C" * 60, "0999999999", "", "ivr_welcome"),  # overlong, quotes and "|"
    ("+33172360170%22)%20%26%20(%22", "0999999999", "", "ivr_welcome"),  # +33172360170") & ("
    ("trunkuser", "0999999999", '"x:0172360170\\" | \\"" ', "ivr_welcome"),  # 0172360170" | "" <sip
    ("0999999999%22%20%7C%20%221", "0999999999", "", "unallocated"),  # 0999999999" | "1: true unfiltered
    ("0999999999&(1),2$", "0172360170&(1),2$", "", "unallocated"),  # unescaped: a comma in DIALPLAN_EXISTS
    ("0999999999%24%7BEXTEN%7D", "0999999999", '"x:${EXTEN}\\" = \\"" ', "unallocated"),  # ${…} in both
    ("trunkuser", "0999999999", '"x:+33172360170 & (1" ', "unallocated"),  # +33172360170 & (1" <sip
    ("9" * 120, "+33%20172360170", "", "unallocated"),  # overlong digits; a space (escaped) in To
]
# Where Asterisk's warnings come from when an expression does not parse (ast_expr2.fl: "ast_yyerror():
# syntax error: …") or a function, an application or a Goto gets arguments it does not expect.
EXPRESSION_ERRORS = ("ast_expr", "yyerror", "syntax error", "Ambiguous", "func_", "pbx.c", "pbx_")


async def test_the_recording_number_in_every_form_from_the_request_uri_or_the_to_header(
    ivr_settings: Settings, ivr: FastAGIServer, db: Database, caller: Caller
) -> None:
    cases = [  # (Request-URI user, To user)
        ("+33172360170", "+33172360170"),
        ("0033172360170", "0033172360170"),
        ("33172360170", "33172360170"),
        ("172360170", "172360170"),
        ("0999999999", DID),  # a wrong number in the Request-URI: the To header decides
        ("trunkuser", "+33172360170"),  # a name in the Request-URI, the DID in To only
    ]
    every = [(ruri, to, "", "ivr_welcome") for ruri, to in cases] + CRAFTED
    log = host_dir(ivr_settings) / "log" / "messages.log"
    log_start = log.stat().st_size
    started = await db.fetchval("SELECT date_trunc('second', now())")  # CDRs keep whole seconds
    pcaps = [RtpPcapBuilder(codec="alaw").silence(3.0) for _ in every]
    calls = await asyncio.gather(
        *(
            caller.call(pcap, number=ruri, to=to, to_name=name, hang_up_after_s=3.0)
            for (ruri, to, name, _), pcap in zip(every, pcaps, strict=True)
        )
    )
    for case, call in zip(every, calls, strict=True):
        heard = case[3]
        other = "unallocated" if heard == "ivr_welcome" else "ivr_welcome"
        assert "CALLER_BYE" in call.events, (case, call.sipp.diagnostics())
        assert call.count(heard, first_s=1.0) == 1, case
        assert call.count(other, first_s=1.0) == 0, case
    await wait_for(lambda: ivr.active_sessions == 0, what="every session to end")
    # Each channel ended in the route's context, at the IVR's AGI or the announcement, with no second leg.
    rows = await wait_for(
        lambda: _cdrs_since(db, started, len(every)), timeout_s=10, what=f"{len(every)} CDRs from Asterisk"
    )
    ended = sorted((row["dcontext"], row["dst"], row["lastapp"], row["dstchannel"] or "") for row in rows)
    route = "vocalcast-inbound-route"
    at = {"ivr_welcome": (route, "record", "AGI", ""), "unallocated": (route, "unallocated", "Playback", "")}
    assert ended == sorted(at[case[3]] for case in every)
    # No expression of the dialplan met a quote, an operator or a comma of the caller's.
    with log.open("rb") as file:
        file.seek(log_start if log.stat().st_size >= log_start else 0)  # unless the engine rotated it
        lines = file.read().decode(errors="replace").splitlines()
    errors = [
        line
        for line in lines
        if ("WARNING[" in line or "ERROR[" in line) and any(word in line for word in EXPRESSION_ERRORS)
    ]
    assert errors == []


async def _cdrs_since(db: Database, started: object, count: int) -> list[object] | None:
    rows = await db.fetch(
        "SELECT dcontext, dst, lastapp, dstchannel FROM asterisk_cdr WHERE start >= $1 ORDER BY id", started
    )
    return rows if len(rows) >= count else None


async def test_a_call_back_of_a_presented_number_says_who_called_and_takes_the_opt_out_key(
    ivr_settings: Settings, db: Database, caller: Caller, tmp_path: Path
) -> None:
    """Issue 18: the person a send called (SIPp's From, 0612345678) calls the presented number back,
    hears who called them, presses 0: their number is on that account's stop list (source callback)
    and the send leaves it out; a number no send presented still hears the unallocated announcement."""
    account_id, _ = await new_account(ivr_settings, db)
    await accounts_store.set_company_name(db, account_id, "Acme Énergie")
    await declare_sender(db, account_id, "0162000001")
    await verify_sender(db, account_id, "0162000001")
    wav = tmp_path / "message.wav"
    tones.write_wav(wav, tones.sine(700.0, 1.0, 0.4))
    message = await build(ivr_settings, db).messages.add(account_id, wav, title="Test", origin="file")
    await credits.credit(db, account_id, 10)
    account = await accounts_store.get_account(db, account_id)
    callee = normalize("0612345678")
    assert isinstance(callee, Number)
    send = await create_send(
        db,
        ivr_settings,
        account,
        message_ref=message.ref,
        targets=[Target(callee)],
        origin="api",
        purpose="information",
        sender="0162000001",
    )
    announcement = (await spoken(ivr_settings.media_dir, callback_text("Acme Énergie", "0"))).path
    thanks = (await spoken(ivr_settings.media_dir, opt_out_text("Acme Énergie"))).path
    thanks_s = len(tones.read_wav(thanks.with_suffix(".wav"))[0]) / 8000
    async with serve(ivr_settings, recordings(ivr_settings, db), Callbacks(db, ivr_settings)):
        pcap = RtpPcapBuilder(codec="alaw").silence(LEAD_S).digits("0", tone_s=KEY_S).silence(thanks_s + 2.0)
        back, other = await asyncio.gather(
            caller.call(pcap, number="+33162000001", timeout_s=20),
            caller.call(
                RtpPcapBuilder(codec="alaw").silence(prompt_s("unallocated") + 2.0), number="0162000009"
            ),
        )
    assert back.ended_by_asterisk, back.sipp.diagnostics()
    heard_first = tones.read_wav(announcement.with_suffix(".wav"))[0][: 8000 * 3 // 4]
    assert len(audiomatch.find(back.heard, heard_first, trim_end=0)) == 1
    assert len(audiomatch.find(back.heard, tones.read_wav(thanks.with_suffix(".wav"))[0])) == 1
    assert back.count("unallocated") == 0
    row = await db.fetchrow(
        "SELECT source FROM account_stop_list WHERE account_id = $1 AND number_hash = $2",
        account_id,
        number_hash(callee.e164),
    )
    assert row is not None and row["source"] == "callback"
    state = await db.fetchval("SELECT state FROM send_recipients WHERE send_id = $1", send.id)
    assert state == "cancelled"
    assert other.ended_by_asterisk and other.count("unallocated") == 1
