"""The Stasis call flow on real calls (issue 6): Asterisk originates through a trunk to SIPp phones
(tests/sipp/callee.xml, one behaviour per called number), the call service runs each call, and every
scenario is checked three ways: the recorded CallResult (outcome, Q.850 cause, SIP code, durations),
the SIP trace on SIPp's side, and, where audio matters, the decoded RTP captured on loopback.

Independent calls run concurrently to keep the file short; all timers come from the CallPlan.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import uuid
from array import array
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from engine.domain.callevents import CallResult, EndReason, StageChanged
from engine.domain.callflow import CallState
from engine.domain.callplan import CallPlan, DropMode
from engine.domain.callstage import Stage, StageSnapshot
from engine.domain.outcomes import Outcome, TransferOutcome
from engine.domain.trunks import Trunk, usable_trunks
from engine.media.paths import host_dir, prompt_uri, sound_uri
from engine.services.dialing.identity import caller_ids
from engine.services.dialing.stages import StageRecorder, stage_variable
from engine.settings import Settings
from engine.stack import apply_trunks, asterisk
from engine.stack.root import read_info, root_path
from engine.store import Database
from engine.store.trunks import list_trunks, remove_trunk
from engine.telephony.ari import AriClient, AriNotFound, events_task
from engine.telephony.callrequest import CallerId, CallRequest
from engine.telephony.calls import CallService
from engine.telephony.stasis import StasisRouter
from engine.telephony.trunks import HEADER, MIN_SESSION_EXPIRES_S, SESSION_EXPIRES_S, render_pjsip
from lab import tones
from lab.rtpcapture import RtpCapture, RtpStream, tone_packet_times
from lab.sipp import SipMessage, SippProcess
from tests.integration.conftest import Ari, add_trunk, wait_for
from tests.support.callee import (
    Behaviour,
    asterisk_media_port,
    audio_pcap,
    callee,
    dialog_of,
    flow,
    invite_to,
    marker_tone_pcap,
    speech,
)

pytestmark = pytest.mark.integration

PAI_NUMBER = "0162000000"  # the trunk's identity, vouched for by the operator
# The trunks' identity settings, as the dialer reads them to build each call's caller IDs.
IDENTITY = Trunk(name="identity", host="127.0.0.1", pai_number=PAI_NUMBER, number_format="national")
VERIFIED_SENDER = "0987654321"
MESSAGE_HZ = 1234.0
MESSAGE_TONE_S = 3.0
MESSAGE_S = 0.3 + MESSAGE_TONE_S + 0.3
CALLEE_MARKER_HZ = 700.0  # what the callee says once bridged with the call centre
CENTRE_MARKER_HZ = 1500.0  # what the call centre says
RING_TIMEOUT_S = 3.0
APOLOGY_S = 5.3  # sounds/fr/transfer_failed.wav


def message_wav(settings: Settings) -> Path:
    """The broadcast message: 0.3 s silence, 3.0 s of a 1234 Hz marker tone, 0.3 s silence."""
    path = settings.media_dir / "tests" / "callflow-message.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = tones.silence(0.3) + tones.sine(MESSAGE_HZ, MESSAGE_TONE_S, 0.4) + tones.silence(0.3)
    tones.write_wav(path, samples)
    return path


@dataclass
class Phones:
    """A SIPp callee.xml process behind its own trunk, and the call service that dials it."""

    settings: Settings
    service: CallService
    sipp: SippProcess
    trunk: str
    media_port: int
    plan: CallPlan

    def request(
        self,
        number: str,
        *,
        plan: CallPlan | None = None,
        caller_id: CallerId | None = None,
        transfer_to: Phones | None = None,
        ring_timeout_s: float = RING_TIMEOUT_S,
    ) -> CallRequest:
        centre = transfer_to
        callee = "+33" + number[1:]
        hidden, transfer = caller_ids(IDENTITY, None, callee)  # what the dialer asks (identity.py)
        return CallRequest(
            attempt_id=str(uuid.uuid4()),
            endpoint=f"PJSIP/{number}@{self.trunk}",
            trunk=self.trunk,
            plan=plan or self.plan,
            caller_id=caller_id or hidden,
            ring_timeout_s=ring_timeout_s,
            callee_number=callee,
            transfer_endpoint=(lambda n: f"PJSIP/{n}@{centre.trunk}") if centre is not None else None,
            transfer_caller_id=transfer,
        )

    async def place(self, number: str, **options: object) -> CallResult:
        return await self.service.place(self.request(number, **options))  # type: ignore[arg-type]

    def messages(self) -> list[SipMessage]:
        return self.sipp.messages()

    def flow(self, number: str) -> list[tuple[str, object]]:
        return flow(self.messages(), number)

    def asterisk_port(self, number: str) -> int:
        return asterisk_media_port(invite_to(self.messages(), number))


@contextlib.asynccontextmanager
async def trunk_to(settings: Settings, port: int) -> AsyncIterator[str]:
    """A trunk to 127.0.0.1:port under a new name, removed afterwards. A new name gives a new contact,
    "unknown" (dialable) rather than the "unreachable" qualify state of an earlier SIPp on that port."""
    name = f"t{port}-{uuid.uuid4().hex[:6]}"
    await add_trunk(settings, Trunk(name=name, host="127.0.0.1", port=port, pai_number=PAI_NUMBER))
    try:
        yield name
    finally:
        async with Database(settings.dsn, min_size=1, max_size=1) as database:
            await remove_trunk(database, name)
        await apply_trunks(settings)


PhonesFactory = Callable[..., "contextlib.AbstractAsyncContextManager[Phones]"]


@pytest.fixture
async def phones(
    stack_settings: Settings, ari: Ari, sipp_ports: Callable[[], tuple[int, int]], tmp_path: Path
) -> AsyncIterator[PhonesFactory]:
    """Start callee.xml phones: `async with phones(name, **pcaps) as p:`; a trunk named after its port."""
    service = CallService(ari.client, ari.router)
    plan = CallPlan(
        message=sound_uri(stack_settings, message_wav(stack_settings)),
        greeting=prompt_uri(stack_settings, "greeting_default"),
        star_wait_s=1.0,
        transfer_wait_media=prompt_uri(stack_settings, "transfer_wait"),
        transfer_apology_media=prompt_uri(stack_settings, "transfer_failed"),
    )

    @contextlib.asynccontextmanager
    async def start(name: str = "callee", **pcaps: Path) -> AsyncIterator[Phones]:
        sip_port, media_port = sipp_ports()
        sipp = callee(tmp_path, sip_port=sip_port, media_port=media_port, name=name, **pcaps)
        async with sipp, trunk_to(stack_settings, sip_port) as trunk:
            yield Phones(stack_settings, service, sipp, trunk, media_port, plan)

    yield start


# --- RTP helpers ----------------------------------------------------------------------------------------


def between(capture: RtpCapture, src_port: int, dst_port: int) -> list[RtpStream]:
    return [s for s in capture.streams if s.key.src_port == src_port and s.key.dst_port == dst_port]


def audio(streams: list[RtpStream]) -> array[int]:
    out = array("h")
    for stream in sorted(streams, key=lambda s: s.first_time_s):
        out += stream.decoded_samples()
    return out


def heard(capture: RtpCapture, phones: Phones, number: str) -> array[int]:
    """What the phone of `number` received from Asterisk (decoded)."""
    return audio(between(capture, phones.asterisk_port(number), phones.media_port))


def said(capture: RtpCapture, phones: Phones, number: str) -> list[RtpStream]:
    """What the phone of `number` sent to Asterisk."""
    return between(capture, phones.media_port, phones.asterisk_port(number))


def within(value: float, expected: float, tolerance: float = 0.05) -> bool:
    return expected * (1 - tolerance) <= value <= expected * (1 + tolerance)


def request_of(messages: list[SipMessage], number: str, method: str, direction: str) -> SipMessage:
    found = [m for m in dialog_of(messages, number) if m.method == method and m.direction == direction]
    assert found, f"no {method} {direction} for {number}"
    return found[0]


# --- before the answer ----------------------------------------------------------------------------------


async def test_refusals_before_the_answer(
    phones: PhonesFactory, stack_settings: Settings, sipp_ports: Callable[[], tuple[int, int]]
) -> None:
    dead_port, _ = sipp_ports()  # nothing listens there: the trunk never answers the INVITE
    async with phones() as p, trunk_to(stack_settings, dead_port) as dead_trunk:
        cases = [
            Behaviour.busy,
            Behaviour.ring_until_cancel,
            Behaviour.decline,
            Behaviour.progress_then_busy,
            Behaviour.unavailable,
            Behaviour.not_found,
        ]
        dead = replace(p, trunk=dead_trunk)
        placed = await asyncio.gather(dead.place(Behaviour.star.number), *(p.place(b.number) for b in cases))
        silent_trunk, results = placed[0], dict(zip(cases, placed[1:], strict=True))

    def check(
        b: Behaviour, outcome: Outcome, cause: int, sip: int | None, status: str | None, *, failover: bool
    ) -> None:
        r = results[b]
        got = (r.outcome, r.cause, r.sip_code, r.dialstatus, r.may_fail_over, r.end_reason)
        assert got == (outcome, cause, sip, status, failover, EndReason.dial_failed), (b, r)
        assert r.answered_at is None and r.talk_s is None and r.message_started_at is None

    check(Behaviour.busy, Outcome.busy, 17, 486, "BUSY", failover=False)
    check(Behaviour.decline, Outcome.rejected, 21, 603, "NOANSWER", failover=False)  # lab: 603 is NOANSWER
    check(
        Behaviour.progress_then_busy, Outcome.busy, 17, 486, "BUSY", failover=False
    )  # it "rang": no failover
    check(
        Behaviour.unavailable, Outcome.congestion, 34, 503, "CONGESTION", failover=True
    )  # next trunk may work
    check(Behaviour.not_found, Outcome.unreachable, 1, 404, "NOANSWER", failover=False)
    # Our ring timeout: Asterisk CANCELs (the phone answers 487) and reports cause 19 with a made-up 480
    # and no final dial status; the SIP code is not recorded, as no phone or trunk sent it.
    check(Behaviour.ring_until_cancel, Outcome.no_answer, 19, None, None, failover=False)
    assert (results[Behaviour.ring_until_cancel].ring_s or 0) >= RING_TIMEOUT_S - 0.5
    # The same timeout with not even a 180/183 from the trunk: a trunk failure, the next trunk may try.
    r = silent_trunk
    assert (r.outcome, r.cause, r.sip_code, r.dialstatus, r.may_fail_over, r.ring_s) == (
        Outcome.failed,
        19,
        None,
        None,
        True,
        None,
    ), r
    assert results[Behaviour.busy].ring_s is None  # no 180/183 before the 486
    assert results[Behaviour.progress_then_busy].ring_s is not None  # the 183 counts as ringing

    # The SIP trace on the phone's side.
    assert p.flow(Behaviour.busy.number) == [("received", "INVITE"), ("sent", 486), ("received", "ACK")]
    assert p.flow(Behaviour.decline.number) == [("received", "INVITE"), ("sent", 603), ("received", "ACK")]
    assert p.flow(Behaviour.unavailable.number) == [
        ("received", "INVITE"),
        ("sent", 503),
        ("received", "ACK"),
    ]
    assert p.flow(Behaviour.progress_then_busy.number) == [
        ("received", "INVITE"),
        ("sent", 183),
        ("sent", 486),
        ("received", "ACK"),
    ]
    assert p.flow(Behaviour.ring_until_cancel.number) == [
        ("received", "INVITE"),
        ("sent", 180),
        ("received", "CANCEL"),
        ("sent", 200),
        ("sent", 487),
        ("received", "ACK"),
    ]


# --- answered calls ------------------------------------------------------------------------------------


async def frozen_dialog(p: Phones) -> CallResult:
    """The phone's SIP stack freezes (SIGSTOP) while the call waits for `*`: no BYE, no answer to the
    session refresh. RTP timeout and the call's own limits are out of reach (10 min); the session timer
    (90 s, the RFC's floor; refreshed at 45 s; the refresh, then the BYE, time out after 64 x T1:
    6.4 s with the tests' VOCALCAST_SIP_T1_MS) ends the call."""
    plan = replace(p.plan, star_wait_s=600.0, greeting_max_plays=1, max_call_s=900.0)
    call = await p.service.start(p.request(Behaviour.silent.number, plan=plan))
    await wait_for(lambda: call.flow.state is not CallState.dialing, 15, what="the answer")
    assert p.sipp.pid is not None
    os.kill(p.sipp.pid, signal.SIGSTOP)
    try:
        return await asyncio.wait_for(call.done, 3 * MIN_SESSION_EXPIRES_S)
    finally:
        os.kill(p.sipp.pid, signal.SIGKILL)
        await p.sipp.wait(5)


@contextlib.asynccontextmanager
async def frozen_beside(f: Phones, settings: Settings, ari: Ari) -> AsyncIterator[asyncio.Task[CallResult]]:
    """frozen_dialog() on the phones ``f``, running while the block runs (its trunk alone gets the
    shortest session timer; the other trunks, and those added later, keep the production timers)."""
    await shorten_trunk_timers(
        settings, ari, rtp_timeout_s=600, session_expires_s=MIN_SESSION_EXPIRES_S, only=f.trunk
    )
    task = asyncio.create_task(frozen_dialog(f))
    try:
        yield task
    finally:
        if not task.done():  # the block failed: the frozen phone is killed, not left stopped
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_answered_calls(
    phones: PhonesFactory, stack_settings: Settings, ari: Ari, tmp_path: Path
) -> None:
    """Every behaviour of an answered call at once, with the RTP both ways captured: the transfers with
    `9` too (check_transfers); then voicemail drops (check_voicemail_drops); and all along (it takes a
    minute) a dialog that stops answering, ended by the session timer."""
    announcement = audio_pcap(tmp_path / "announce.pcap", tones.sine(440, 6.0, 0.2))
    transfer, centre_says = transfer_pcaps(tmp_path)
    machine, human, noisy = await voicemail_pcaps(tmp_path)
    # The frozen dialog first: the other phones' trunks are added (PJSIP reloaded) while it is up.
    async with (
        phones("frozen") as f,
        frozen_beside(f, stack_settings, ari) as frozen,
        phones(announce=announcement) as p,
        phones("transferee", transfer=transfer) as t,
        phones("centre", centre=centre_says) as c,
        phones("machines", machine=machine, human=human) as m,
        phones("noisy", machine=noisy) as noise,
    ):
        hidden = Behaviour.star.dial(0)
        verified = Behaviour.star.dial(1)
        silent = Behaviour.silent.dial(0)
        limited = Behaviour.silent.dial(1)
        announce = Behaviour.announcement.number
        bye_reason = Behaviour.star_then_bye_with_reason.number
        bye_bare = Behaviour.star_then_bye_without_reason.number
        info = Behaviour.star_as_info.number
        inband = Behaviour.star_inband.number
        calls = {
            hidden: {},
            verified: {
                "caller_id": caller_ids(IDENTITY, "+33" + VERIFIED_SENDER[1:], "+33" + verified[1:])[0]
            },
            silent: {},
            limited: {"plan": replace(p.plan, star_wait_s=30.0, greeting_max_plays=1, max_call_s=4.0)},
            announce: {},
            bye_reason: {},
            bye_bare: {},
            info: {},
            inband: {},
        }
        async with RtpCapture([p.media_port, t.media_port, c.media_port]) as capture:
            placed, transferred = await asyncio.gather(
                asyncio.gather(*(p.place(n, **o) for n, o in calls.items())), transfers(t, c)
            )
        results = dict(zip(calls, placed, strict=True))
        # Then, while the frozen dialog still waits for its session timer: voicemail drops.
        async with RtpCapture([m.media_port, noise.media_port]) as drops_capture:
            drops = await voicemail_drops(m, noise)
        ended_by_the_session_timer = await frozen
    messages = p.messages()
    check_transfers(transferred, capture, t, c)
    check_voicemail_drops(drops, drops_capture, m, noise)

    # Listened: `*` during the greeting (as RFC 2833, SIP INFO, in-band), then the whole message.
    for number in (hidden, verified, info, inband):
        r = results[number]
        assert (r.outcome, r.end_reason, r.cause, r.greeting_plays) == (
            Outcome.listened,
            EndReason.message_completed,
            16,
            1,
        ), (number, r)
        assert r.answered_at is not None and r.message_started_at is not None
        assert r.ended_at - r.message_started_at >= MESSAGE_S - 0.1  # the message played to its end
        assert p.flow(number)[-2:] == [("received", "BYE"), ("sent", 200)]  # we hung up
        # The message reached the phone: the marker tone, its full duration (±5 %), once.
        received = heard(capture, p, number)
        segments = tones.tone_segments(received, MESSAGE_HZ)
        assert len(segments) == 1, (number, segments)
        assert within(segments[0][1] - segments[0][0], MESSAGE_TONE_S), (number, segments)

    # How `*` travelled, as SIPp sent it.
    assert "".join(s.dtmf_digits() for s in said(capture, p, hidden)) == "*"
    assert tones.dtmf_digits(audio(said(capture, p, inband))) == "*"
    assert not any(s.dtmf_events() for s in said(capture, p, inband))
    answer = next(m for m in dialog_of(messages, inband) if m.status == 200 and m.direction == "sent")
    assert "telephone-event" not in answer.body  # so Asterisk's DSP listens for in-band DTMF
    assert ("sent", "INFO") in p.flow(info)
    assert request_of(messages, info, "INFO", "sent").body.startswith("Signal=*")

    # Caller ID as the phone saw it in the INVITE.
    invite = invite_to(messages, hidden)
    assert (invite.header("From") or "").startswith('"Anonymous" <sip:anonymous@anonymous.invalid>;tag=')
    assert invite.header("Privacy") == "id"
    assert invite.header("P-Asserted-Identity") == f"<sip:{PAI_NUMBER}@127.0.0.1>"
    assert invite.header("Remote-Party-ID") is None
    # The trunk's codecs in its order (A-law first, as French operators want), and nothing else.
    offer = next(line for line in invite.body.splitlines() if line.startswith("m=audio"))
    assert offer.split()[3:] == ["8", "0", "101"], offer
    invite = invite_to(messages, verified)
    # The presented number in From; PAI stays the number the trunk's carrier vouches for (issue 18).
    assert (invite.header("From") or "").startswith(f"<sip:{VERIFIED_SENDER}@127.0.0.1>;tag=")
    assert invite.header("P-Asserted-Identity") == f"<sip:{PAI_NUMBER}@127.0.0.1>"
    assert invite.header("Privacy") is None

    # Never `*`: the greeting twice, then we hang up; the message never played.
    for number in (silent, announce):
        r = results[number]
        assert (r.outcome, r.end_reason, r.cause, r.greeting_plays) == (
            Outcome.not_confirmed,
            EndReason.no_star,
            16,
            2,
        ), (number, r)
        assert r.message_started_at is None
        assert tones.tone_duration_s(heard(capture, p, number), MESSAGE_HZ) == 0
        assert p.flow(number)[-2:] == [("received", "BYE"), ("sent", 200)]

    # The absolute per-call limit ends a call that would otherwise wait 30 s for `*`.
    r = results[limited]
    assert (r.outcome, r.end_reason, r.cause, r.greeting_plays) == (
        Outcome.not_confirmed,
        EndReason.call_limit,
        16,
        1,
    ), r

    # The callee hangs up during the message: partial, with the cause its BYE gave (or 0 without one).
    for number, cause, reason in ((bye_reason, 16, "Q.850;cause=16"), (bye_bare, 0, None)):
        r = results[number]
        assert (r.outcome, r.end_reason, r.cause, r.sip_code) == (
            Outcome.partial,
            EndReason.callee_hangup,
            cause,
            None,
        ), (number, r)
        assert r.message_started_at is not None and r.ended_at - r.message_started_at < MESSAGE_S
        bye = request_of(messages, number, "BYE", "sent")
        assert bye.header("Reason") == (f'{reason};text="Normal call clearing"' if reason else None)
        assert p.flow(number)[-2:] == [("sent", "BYE"), ("received", 200)]
        played = tones.tone_duration_s(heard(capture, p, number), MESSAGE_HZ)
        assert 0 < played < MESSAGE_TONE_S * 0.95, (number, played)

    # The frozen dialog: Asterisk ended it itself (ours would say no_star or call_limit).
    result = ended_by_the_session_timer
    assert (result.outcome, result.end_reason, result.greeting_plays) == (
        Outcome.not_confirmed,
        EndReason.callee_hangup,
        1,
    ), result
    # Offered, never required: a trunk that does not know session timers still takes the call.
    invite = invite_to(f.messages(), Behaviour.silent.number)
    assert (invite.header("Session-Expires") or "").split(";")[0].strip() == str(MIN_SESSION_EXPIRES_S)
    assert "timer" in (invite.header("Supported") or "")
    assert not any("timer" in value for value in invite.header_values("Require")), invite.headers
    # The other calls' trunk kept the production timer.
    expires = invite_to(messages, hidden).header("Session-Expires") or ""
    assert expires.split(";")[0].strip() == str(SESSION_EXPIRES_S), expires


# --- transfer with 9 ------------------------------------------------------------------------------------


def transfer_pcaps(tmp_path: Path) -> tuple[Path, Path]:
    """The callee: `*`, `9`, then (once bridged) its marker tone. The call centre: its own marker tone."""
    transfer = marker_tone_pcap(tmp_path / "transfer.pcap", CALLEE_MARKER_HZ, digits="*9", lead_s=1.5)
    centre_says = marker_tone_pcap(tmp_path / "centre.pcap", CENTRE_MARKER_HZ, lead_s=1.0)
    return transfer, centre_says


TRANSFER_TARGETS = {
    Behaviour.transfer.dial(0): Behaviour.centre.number,  # answered
    Behaviour.transfer.dial(1): Behaviour.busy.number,
    Behaviour.transfer.dial(2): Behaviour.ring_until_cancel.number,  # no answer
}


async def transfers(p: Phones, c: Phones) -> dict[str, CallResult]:
    """`*`, then `9` during the message, towards each of TRANSFER_TARGETS."""

    def plan(centre_number: str) -> CallPlan:
        return replace(p.plan, transfer_number=centre_number, transfer_ring_timeout_s=2.0, transfer_max_s=60)

    placed = await asyncio.gather(
        *(p.place(n, plan=plan(t), transfer_to=c) for n, t in TRANSFER_TARGETS.items())
    )
    return dict(zip(TRANSFER_TARGETS, placed, strict=True))


def check_transfers(results: dict[str, CallResult], capture: RtpCapture, p: Phones, c: Phones) -> None:
    """Answered (both marker tones cross the bridge), busy, no answer."""
    answered, busy, unanswered = TRANSFER_TARGETS
    targets = TRANSFER_TARGETS

    # Answered: bridged until the call centre hung up (6 s after answering); then we hung up the callee.
    r = results[answered]
    assert (r.outcome, r.end_reason, r.cause, r.transfer_outcome, r.greeting_plays) == (
        Outcome.transferred,
        EndReason.transfer_hangup,
        16,
        TransferOutcome.answered,
        1,
    ), r
    assert r.message_started_at is not None and r.transfer_started_at is not None
    assert r.transfer_answered_at is not None and r.transfer_ended_at is not None
    assert r.message_started_at < r.transfer_started_at <= r.transfer_answered_at < r.transfer_ended_at
    assert (r.transfer_s or 0) >= 5.0  # the centre hangs up 6 s after its answer
    assert c.flow(Behaviour.centre.number) == [
        ("received", "INVITE"),
        ("sent", 180),
        ("sent", 200),
        ("received", "ACK"),
        ("sent", "BYE"),
        ("received", 200),
    ]
    assert p.flow(answered)[-2:] == [("received", "BYE"), ("sent", 200)]
    # The call centre sees the platform's number (From and PAI), and the callee's in Diversion.
    centre_invite = invite_to(c.messages(), Behaviour.centre.number)
    assert (centre_invite.header("From") or "").startswith(f"<sip:{PAI_NUMBER}@127.0.0.1>;tag=")
    assert centre_invite.header("P-Asserted-Identity") == f"<sip:{PAI_NUMBER}@127.0.0.1>"
    assert centre_invite.header("Diversion") == f"<sip:{answered}@127.0.0.1>;reason=unknown;counter=1"
    assert centre_invite.header("Privacy") is None
    # Through the bridge, each side heard the other's marker tone (2 s sent; a few frames may be lost
    # at the edges), and the call centre never heard the message.
    centre_port = asterisk_media_port(centre_invite)
    callee_heard = heard(capture, p, answered)
    centre_heard = audio(between(capture, centre_port, c.media_port))
    assert tones.tone_duration_s(callee_heard, CENTRE_MARKER_HZ) >= 1.8
    assert tones.tone_duration_s(centre_heard, CALLEE_MARKER_HZ) >= 1.8
    assert tones.tone_duration_s(centre_heard, MESSAGE_HZ) == 0
    assert 0 < tones.tone_duration_s(callee_heard, MESSAGE_HZ) < MESSAGE_TONE_S  # cut short by `9`

    # Busy, or no answer within the transfer ring time: apology, the message once more, then we hang up.
    for number, outcome, centre_flow in (
        (busy, TransferOutcome.busy, [("received", "INVITE"), ("sent", 486), ("received", "ACK")]),
        (
            unanswered,
            TransferOutcome.no_answer,
            [
                ("received", "INVITE"),
                ("sent", 180),
                ("received", "CANCEL"),
                ("sent", 200),
                ("sent", 487),
                ("received", "ACK"),
            ],
        ),
    ):
        r = results[number]
        assert (r.outcome, r.end_reason, r.cause, r.transfer_outcome) == (
            Outcome.listened,
            EndReason.message_completed,
            16,
            outcome,
        ), (number, r)
        assert r.transfer_answered_at is None and r.transfer_s is None
        assert c.flow(targets[number]) == centre_flow
        # The message: cut by `9`, then replayed in full after the apology.
        segments = tones.tone_segments(heard(capture, p, number), MESSAGE_HZ)
        assert len(segments) == 2, (number, segments)
        assert segments[0][1] - segments[0][0] < MESSAGE_TONE_S
        assert within(segments[1][1] - segments[1][0], MESSAGE_TONE_S), (number, segments)
        # Between the two, at least the French apology (5.4 s) was played.
        assert segments[1][0] - segments[0][1] >= APOLOGY_S, (number, segments)
        assert p.flow(number)[-2:] == [("received", "BYE"), ("sent", 200)]


# --- voicemail drop, answering-machine mode -----------------------------------------------------------

BEEP_HZ = 1000.0
NOISY_BEEP_HZ = 440.0
MACHINE_GREETING_FR = "Bonjour, vous êtes sur la messagerie de Paul. Laissez votre message après le bip."


async def voicemail_pcaps(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A machine (greeting, 1000 Hz beep, silence), a person ("Allô ?", then `*`), and a machine whose
    440 Hz beep is followed by noise (about -30 dBFS) that never goes quiet."""
    greeting = await speech(MACHINE_GREETING_FR, tmp_path)
    machine = audio_pcap(
        tmp_path / "machine.pcap",
        greeting + tones.silence(0.3) + tones.sine(BEEP_HZ, 0.5, 0.3) + tones.silence(10.0),
    )
    hello = await speech("Allô ?", tmp_path)
    human = audio_pcap(tmp_path / "human.pcap", hello + tones.silence(3.0), then_digits="*")
    rng = random.Random(440)
    hiss = array("h", (max(-32768, min(32767, round(rng.gauss(0.0, 1000.0)))) for _ in range(8000 * 12)))
    noisy = audio_pcap(
        tmp_path / "noisy.pcap", greeting + tones.silence(0.3) + tones.sine(NOISY_BEEP_HZ, 0.5, 0.3) + hiss
    )
    return machine, human, noisy


async def voicemail_drops(p: Phones, n: Phones) -> list[CallResult]:
    """Voicemail drop (AMD on answer) to the machine, the person and a phone that says nothing and hangs
    up while AMD still listens (initial silence: 3.5 s), on ``p``; to the noisy machine on ``n``, its beep
    wait capped at 8 s."""
    plan = replace(p.plan, drop_mode=DropMode.amd)
    numbers = (
        Behaviour.machine.number,
        Behaviour.human.number,
        Behaviour.star_then_bye_with_reason.number,
    )
    return await asyncio.gather(
        *(p.place(number, plan=plan) for number in numbers),
        n.place(Behaviour.machine.number, plan=replace(plan, beep_wait_max_s=8.0)),
    )


def check_voicemail_drops(placed: list[CallResult], capture: RtpCapture, p: Phones, n: Phones) -> None:
    """AMD on answer: a machine gets the message after its beep; a person gets the normal flow (greeting,
    `*`, message). The 440 Hz beep (Asterisk's TONE_DETECT watched 1000 Hz only) on a line that never goes
    quiet after it: no silence can end the beep wait, only the beep heard can, well before the wait's cap.
    Fails on the 1000 Hz detector: the cap started the message."""
    on_machine, on_person, gone_during_amd, on_noisy_machine = placed

    assert (on_machine.outcome, on_machine.end_reason, on_machine.amd_status, on_machine.greeting_plays) == (
        Outcome.voicemail,
        EndReason.message_completed,
        "MACHINE",
        0,
    ), on_machine
    # The whole message reached the machine, and it started after the beep (that SIPp sent).
    number = Behaviour.machine.number
    segments = tones.tone_segments(heard(capture, p, number), MESSAGE_HZ)
    assert len(segments) == 1 and within(segments[0][1] - segments[0][0], MESSAGE_TONE_S), segments
    beep = tone_packet_times(said(capture, p, number), BEEP_HZ)
    message = tone_packet_times(between(capture, p.asterisk_port(number), p.media_port), MESSAGE_HZ)
    assert beep and message
    beep_end = beep[-1] + 0.02
    message_start = message[0] - 0.3  # the message file opens with 0.3 s of silence
    delay_s = message_start - beep_end
    print(f"voicemail drop: message started {delay_s:.2f} s after the end of the beep")
    # After the beep; and well before the beep wait's cap (20 s): the beep, not the cap, started it.
    assert 0 <= delay_s < 3.0, delay_s

    assert (on_person.outcome, on_person.end_reason, on_person.amd_status, on_person.greeting_plays) == (
        Outcome.listened,
        EndReason.message_completed,
        "HUMAN",
        1,
    ), on_person
    # Hung up during AMD: answered, never reached the message, nothing charged.
    r = gone_during_amd
    assert (r.outcome, r.end_reason, r.cause, r.amd_status, r.message_started_at) == (
        Outcome.not_confirmed,
        EndReason.callee_hangup,
        16,
        None,
        None,
    ), r

    # The 440 Hz beep over noise.
    assert (on_noisy_machine.outcome, on_noisy_machine.end_reason, on_noisy_machine.amd_status) == (
        Outcome.voicemail,
        EndReason.message_completed,
        "MACHINE",
    ), on_noisy_machine
    beep = tone_packet_times(said(capture, n, number), NOISY_BEEP_HZ)
    message = tone_packet_times(between(capture, n.asterisk_port(number), n.media_port), MESSAGE_HZ)
    assert beep and message
    delay_s = (message[0] - 0.3) - (beep[-1] + 0.02)  # the message file opens with 0.3 s of silence
    print(f"voicemail drop, 440 Hz beep over noise: message started {delay_s:.2f} s after the beep")
    # The beep, not the cap, ended the wait: within AFTER_BEEP_MAX_S (1 s) of its detection, plus slack.
    assert 0 <= delay_s < 3.0, delay_s


# --- hygiene: nothing holds a slot forever -------------------------------------------------------------


async def shorten_trunk_timers(
    settings: Settings,
    ari: Ari,
    *,
    rtp_timeout_s: int,
    session_expires_s: int = SESSION_EXPIRES_S,
    only: str | None = None,
) -> None:
    """Every trunk (or the trunk ``only``, the others as configured) rendered with these timers and PJSIP
    reloaded; the defaults come back when the test's trunk is removed (apply_trunks renders the table
    again)."""
    async with Database(settings.dsn, min_size=1, max_size=1) as database:
        trunks = usable_trunks(await list_trunks(database), demo=settings.demo)
    shortened = [t for t in trunks if only in {None, t.name}]
    conf = host_dir(settings) / "etc" / "pjsip_trunks.conf"
    text = render_pjsip(shortened, rtp_timeout_s=rtp_timeout_s, session_expires_s=session_expires_s)
    if only is not None:  # the other trunks, with the timers they have in production
        text += render_pjsip([t for t in trunks if t.name != only]).removeprefix(HEADER)
    conf.write_text(text)
    await ari.client.reload_module("res_pjsip.so")


async def test_a_phone_that_dies_is_hung_up_by_the_rtp_timeout(
    phones: PhonesFactory, stack_settings: Settings, ari: Ari, tmp_path: Path
) -> None:
    """SIGKILL the phone mid-call: no BYE will ever come. The trunk's rtp_timeout (2 s here, 60 s in
    production) hangs the channel up, and the call ends with an outcome instead of waiting 30 s for `*`."""
    long_talk = audio_pcap(tmp_path / "talk.pcap", tones.sine(440, 20.0, 0.2))
    async with phones(announce=long_talk) as p:
        await shorten_trunk_timers(stack_settings, ari, rtp_timeout_s=2)

        plan = replace(p.plan, star_wait_s=30.0, greeting_max_plays=1)
        async with RtpCapture([p.media_port]) as capture:
            call = await p.service.start(p.request(Behaviour.announcement.number, plan=plan))
            # Half a second of the phone talking, then it dies.
            await capture.wait_for(
                lambda c: sum(len(s.packets) for s in c.streams_from(p.media_port)) > 25, 10
            )
        assert p.sipp.pid is not None
        os.kill(p.sipp.pid, signal.SIGKILL)
        await p.sipp.wait(5)
        result = await asyncio.wait_for(call.done, 15)

    # Asterisk's RTP timeout: "Requested channel not available" (44).
    assert (result.outcome, result.end_reason, result.cause, result.greeting_plays) == (
        Outcome.not_confirmed,
        EndReason.callee_hangup,
        44,
        1,
    ), result
    assert result.ended_at - (result.answered_at or 0) < plan.star_wait_s


async def test_the_sweep_ends_calls_whose_events_were_lost(
    phones: PhonesFactory, stack_settings: Settings, tmp_path: Path
) -> None:
    """The events websocket drops; meanwhile the callee hangs up mid-message and a channel nobody
    follows sits in our app. After the reconnection, the sweep ends the first call (outcome from how
    far it got, no cause known) and hangs up the second."""
    router = StasisRouter()
    client = AriClient(
        host="127.0.0.1",
        port=stack_settings.ari_port,
        user=stack_settings.ari_user,
        password=stack_settings.require("ari_password"),
        app=f"vocalcast-s{uuid.uuid4().hex[:8]}",
        reconnect_max_s=0.5,
    )
    async with phones() as phones_of_the_test, client:
        service = CallService(client, router)
        p = replace(phones_of_the_test, service=service)
        events = asyncio.create_task(client.run_events(router.dispatch))
        try:
            await client.wait_ready(10)
            call = await service.start(p.request(Behaviour.star_then_bye_with_reason.number))
            stray = str(uuid.uuid4())
            await client.originate(
                endpoint=f"PJSIP/{Behaviour.silent.dial(5)}@{p.trunk}", channel_id=stray, app_args="stray"
            )
            await wait_for(lambda: call.flow.state is CallState.message, what="the message playing")
            events.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await events
            # The callee's BYE (2.5 s after its `*`) arrives while nobody listens to events.
            await wait_for(lambda: _gone(client, call.channel_id), timeout_s=10, what="the callee's hang-up")
            assert not call.done.done()
            events = asyncio.create_task(client.run_events(router.dispatch))
            await client.wait_ready(10)
            report = await service.sweep(confirm_s=0.3, unknown_grace_s=0)
            result = await asyncio.wait_for(call.done, 5)
        finally:
            events.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await events

    assert report.vanished == [call.channel_id] and report.hung_up == [stray], report
    assert (result.outcome, result.end_reason, result.cause) == (Outcome.partial, EndReason.aborted, None), (
        result
    )
    assert result.abort_reason == "channel vanished without events"
    assert p.flow(Behaviour.silent.dial(5))[-2:] == [("received", "BYE"), ("sent", 200)]
    assert not service.calls


async def _gone(client: AriClient, channel_id: str) -> bool:
    return channel_id not in {c["id"] for c in await client.channels()}


# --- another engine carries calls on from their stage (issue 16) ----------------------------------------


async def test_another_engine_carries_calls_on_from_their_last_stage(
    phones: PhonesFactory, stack_settings: Settings
) -> None:
    """The engine following two calls goes away (its websocket closed, its call state dropped) while one
    waits for `*` and the other plays the message. A second engine resumes each from the last stage the
    first announced: the message playing is left to finish (its PlaybackFinished, found by the playback
    id derived from the attempt id, ends the call as listened; the message is heard once, whole); the
    `*` wait goes on for what is left of it, then the greeting plays again, by the second engine."""
    app = f"vocalcast-r{uuid.uuid4().hex[:8]}"

    def engine() -> AriClient:
        return AriClient(
            host="127.0.0.1",
            port=stack_settings.ari_port,
            user=stack_settings.ari_user,
            password=stack_settings.require("ari_password"),
            app=app,
        )

    stages: dict[str, list[StageChanged]] = {}

    def stage_of(request: CallRequest) -> Stage | None:
        seen = stages.get(request.attempt_id)
        return seen[-1].stage if seen else None

    async with phones() as p, RtpCapture([p.media_port]) as capture:
        plan = replace(p.plan, star_wait_s=5.0, greeting_max_plays=2)
        first_router = StasisRouter()
        async with engine() as first, events_task(first, first_router.dispatch):
            await first.wait_ready(10)
            first_service = CallService(
                first, first_router, on_stage=lambda r, c: stages.setdefault(r.attempt_id, []).append(c)
            )
            on_first = replace(p, service=first_service)
            waiting = on_first.request(Behaviour.silent.number, plan=plan)
            listening = on_first.request(Behaviour.star.number, plan=plan)
            calls = [await first_service.start(waiting)]
            await wait_for(lambda: stage_of(waiting) is Stage.star_wait, 20, what="the `*` wait")
            calls.append(await first_service.start(listening))
            await wait_for(lambda: stage_of(listening) is Stage.message, 10, what="the message")
            for call in calls:  # the first engine's calls die with it: no timer, no event, no action
                assert call.route is not None
                call.route.task.cancel()
        second_router = StasisRouter()
        async with engine() as second, events_task(second, second_router.dispatch):
            await second.wait_ready(10)
            second_service = CallService(second, second_router)
            resumed = [
                second_service.resume(r, stages[r.attempt_id][-1].snapshot) for r in (waiting, listening)
            ]
            waited, listened = await asyncio.wait_for(asyncio.gather(*(c.done for c in resumed)), 40)

    assert (waited.outcome, waited.end_reason, waited.greeting_plays, waited.cause) == (
        Outcome.not_confirmed,
        EndReason.no_star,
        2,
        16,
    ), waited
    assert p.flow(Behaviour.silent.number)[-2:] == [("received", "BYE"), ("sent", 200)]
    assert (listened.outcome, listened.end_reason, listened.cause) == (
        Outcome.listened,
        EndReason.message_completed,
        16,
    ), listened
    first_snapshot = stages[listening.attempt_id][-1].snapshot
    assert listened.message_started_at == first_snapshot.message_started_at
    segments = tones.tone_segments(heard(capture, p, Behaviour.star.number), MESSAGE_HZ)
    assert len(segments) == 1 and within(segments[0][1] - segments[0][0], MESSAGE_TONE_S), segments


async def test_a_message_that_ended_while_no_engine_followed_is_listened_not_cut(
    phones: PhonesFactory, stack_settings: Settings
) -> None:
    """The engine following a call goes away while the message plays; the message ends before a second
    engine resumes the call. Its PlaybackFinished was lost with the first engine: the second finds the
    playback gone (GET /playbacks/{id}, its id derived from the attempt id) with the channel still up,
    and records the message as heard to its end (`listened`), not `partial` by the stage's deadline."""
    app = f"vocalcast-r{uuid.uuid4().hex[:8]}"

    def engine() -> AriClient:
        return AriClient(
            host="127.0.0.1",
            port=stack_settings.ari_port,
            user=stack_settings.ari_user,
            password=stack_settings.require("ari_password"),
            app=app,
        )

    stages: list[StageChanged] = []
    async with phones() as p:
        first_router = StasisRouter()
        async with engine() as first, events_task(first, first_router.dispatch):
            await first.wait_ready(10)
            first_service = CallService(first, first_router, on_stage=lambda r, c: stages.append(c))
            listening = replace(p, service=first_service).request(Behaviour.star.number)
            call = await first_service.start(listening)
            await wait_for(lambda: bool(stages) and stages[-1].stage is Stage.message, 20, what="the message")
            assert call.route is not None
            call.route.task.cancel()  # the first engine dies: no timer, no event, no action
        snapshot = stages[-1].snapshot
        assert snapshot.playback_id is not None
        second_router = StasisRouter()
        async with engine() as second, events_task(second, second_router.dispatch):
            await second.wait_ready(10)

            async def message_over() -> bool:
                try:
                    await second.request("GET", f"/playbacks/{listening.attempt_id}-{snapshot.playback_id}")
                except AriNotFound:
                    return True
                return False

            await wait_for(message_over, MESSAGE_S + 10, interval_s=0.2, what="the message to end")
            resumed = CallService(second, second_router).resume(listening, snapshot)
            result = await asyncio.wait_for(resumed.done, 20)
    assert (result.outcome, result.end_reason, result.message_started_at) == (
        Outcome.listened,
        EndReason.message_completed,
        snapshot.message_started_at,
    ), result


async def test_calls_cut_by_an_asterisk_stop_are_ours_not_the_callees(
    phones: PhonesFactory, stack_settings: Settings
) -> None:
    """Asterisk stops (`core stop now`) under a call waiting for `*` and a call playing the message: it
    hangs them up itself (a soft hang-up flagged shutdown, then ChannelDestroyed cause 0, just like a
    callee's BYE without Reason). Both are cuts of ours: not charged, and free_retry (the recipient is
    called again without using one of its attempts) — not `not_confirmed` and `partial` on the callee."""
    stages: dict[str, Stage] = {}
    async with phones() as p:
        p.service.on_stage = lambda r, c: stages.__setitem__(r.attempt_id, c.stage)
        plan = replace(p.plan, star_wait_s=30.0, message_s=MESSAGE_S)
        waiting = p.request(Behaviour.silent.number, plan=plan)
        listening = p.request(Behaviour.star.dial(1), plan=plan)
        calls = [await p.service.start(waiting)]
        await wait_for(lambda: stages.get(waiting.attempt_id) is Stage.star_wait, 20, what="the `*` wait")
        calls.append(await p.service.start(listening))
        await wait_for(lambda: stages.get(listening.attempt_id) is Stage.message, 20, what="the message")
        root = root_path(stack_settings)
        asterisk.stop(stack_settings, root)
        try:
            waited, listened = await asyncio.wait_for(asyncio.gather(*(c.done for c in calls)), 20)
        finally:
            info = read_info(root)
            assert info is not None
            asterisk.start(stack_settings, info)
        await wait_for(lambda: p.service.ari.ready, timeout_s=20, what="ARI back")
    for result in (waited, listened):
        assert (result.outcome, result.cut, result.free_retry) == (Outcome.not_confirmed, "ours", True), (
            result
        )
        assert not result.outcome.consumes_credit


async def test_stages_kept_in_asterisk_never_hold_a_call_back(
    phones: PhonesFactory, stack_settings: Settings, db: Database, tmp_path: Path
) -> None:
    """The stage recorder writes each stage into Asterisk while the call goes on: during the message the
    global variable of the attempt holds the `message` snapshot, the callee's `9` during the message is
    acted on at once (a write queued behind the playback would hold it until the message's end: the call
    would end `listened`). Once the call is over its variable stays until the attempt's result is
    written (a kill -9 in between leaves adoption the stage), then it is gone."""
    seen_in_asterisk: list[str | None] = []
    transfer = marker_tone_pcap(tmp_path / "transfer.pcap", CALLEE_MARKER_HZ, digits="*9", lead_s=1.5)
    centre_says = marker_tone_pcap(tmp_path / "centre.pcap", CENTRE_MARKER_HZ, lead_s=1.0)
    async with phones("callee", transfer=transfer) as p, phones("centre", centre=centre_says) as c:
        recorder = StageRecorder(db, p.service.ari)
        number = Behaviour.transfer.dial(7)
        request = p.request(
            number,
            plan=replace(
                p.plan,
                transfer_number=Behaviour.centre.number,
                transfer_ring_timeout_s=2.0,
                transfer_max_s=60,
                message_s=30.0,
            ),
            transfer_to=c,
        )

        async def hook(r: CallRequest, change: StageChanged) -> None:
            await recorder.on_stage(r, change)
            if change.stage is Stage.message:
                seen_in_asterisk.append(await p.service.ari.get_global(stage_variable(r.attempt_id)))

        p.service.on_stage = hook
        result = await p.service.place(request)
        kept = await p.service.ari.get_global(stage_variable(request.attempt_id))
        await recorder.recorded(request.attempt_id)  # what the attempt says once its result is written
        left = await p.service.ari.get_global(stage_variable(request.attempt_id))
    got = (result.outcome, result.transfer_outcome)
    assert got == (Outcome.transferred, TransferOutcome.answered), result
    # The `9` came during the message: the transfer began before the message could have ended.
    assert result.message_started_at is not None and result.transfer_started_at is not None
    assert result.transfer_started_at < result.message_started_at + MESSAGE_S, result
    assert seen_in_asterisk and all(seen is not None for seen in seen_in_asterisk), seen_in_asterisk
    assert {StageSnapshot.decode(str(seen)).stage for seen in seen_in_asterisk} == {Stage.message}
    assert kept is not None and StageSnapshot.decode(kept).stage is not Stage.ended, kept
    assert left is None
