"""The first real call: the engine originates through ARI and a trunk to a SIPp phone, plays a
prompt with a marker tone, receives RFC 2833 DTMF, and hangs up. Proven from the wire: the RTP
captured on loopback, decoded, holds the marker tone for its duration, and SIPp's own SIP trace
shows the dialog."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.domain.trunks import Trunk
from engine.media.paths import sound_uri
from engine.settings import Settings
from engine.telephony.probe import probe_call
from lab import tones
from lab.dtmfpcap import write_rfc2833_pcap
from lab.rtpcapture import RtpCapture, samples_to
from lab.sipp import SippProcess
from tests.integration.conftest import Ari, add_trunk

pytestmark = pytest.mark.integration

SIPP_DIR = Path(__file__).parent.parent / "sipp"
MARKER_HZ = 1234.0
MARKER_S = 2.0


def marker_prompt(settings: Settings) -> Path:
    """0.3 s of silence, 2.0 s of a 1234 Hz tone, 0.3 s of silence, in the media dir Asterisk reads."""
    path = settings.media_dir / "tests" / "marker.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = tones.silence(0.3) + tones.sine(MARKER_HZ, MARKER_S, 0.4) + tones.silence(0.3)
    tones.write_wav(path, samples)
    return path


async def test_first_call_plays_the_marker_and_receives_dtmf(
    stack_settings: Settings,
    ari: Ari,
    sipp_ports,
    tmp_path: Path,
    artifacts: Path,  # type: ignore[no-untyped-def]
) -> None:
    sip_port, media_port = sipp_ports()
    pcap = tmp_path / "star9.pcap"
    write_rfc2833_pcap(pcap, "*9")
    await add_trunk(stack_settings, Trunk(name="callee", host="127.0.0.1", port=sip_port))
    prompt = marker_prompt(stack_settings)

    sipp = SippProcess(
        SIPP_DIR / "callee_answer_dtmf.xml",
        local_port=sip_port,
        media_port=media_port,
        workdir=tmp_path,
        keys={"pcap": str(pcap)},
        recv_timeout_ms=20000,
    )
    async with sipp, RtpCapture([media_port]) as capture:
        result = await probe_call(
            ari.client,
            ari.router,
            endpoint="PJSIP/0612345678@callee",
            media=sound_uri(stack_settings, prompt),
            ring_timeout_s=10,
            max_duration_s=20,
        )
        await capture.wait_for(lambda c: any(s.dtmf_digits() for s in c.streams_from(media_port)), 2)
    capture.save_pcap(artifacts / "first_call.pcap")

    # What our side saw, in order.
    assert result.error == ""
    assert result.answered and result.played_to_end
    assert result.digits == "*9"
    assert result.cause == 16
    order = [
        e
        for e in result.events
        if e
        in {
            "StasisStart",
            "PlaybackStarted",
            "ChannelDtmfReceived",
            "PlaybackFinished",
            "ChannelHangupRequest",
            "StasisEnd",
            "ChannelDestroyed",
        }
    ]
    assert order == [
        "StasisStart",
        "PlaybackStarted",
        "ChannelDtmfReceived",
        "ChannelDtmfReceived",
        "PlaybackFinished",
        "ChannelHangupRequest",
        "StasisEnd",
        "ChannelDestroyed",
    ]

    # What reached the phone: the marker tone, for its duration (±5 %).
    heard = samples_to(capture.streams, media_port)
    duration = tones.tone_duration_s(heard, MARKER_HZ)
    assert MARKER_S * 0.95 <= duration <= MARKER_S * 1.05, duration
    assert tones.tone_duration_s(heard, 1000.0) == 0  # a neighbouring frequency is absent
    # What the phone sent: both digits, as RFC 2833 events.
    sent = "".join(s.dtmf_digits() for s in capture.streams_from(media_port))
    assert sent == "*9"

    # The SIP dialog on SIPp's side: INVITE to the number, 180, 200, ACK, then our BYE, 200.
    dialog = [(m.direction, m.method or m.status) for m in sipp.messages()]
    assert [d for d in dialog if d[1] in {"INVITE", 180, 200, "ACK", "BYE"}] == [
        ("received", "INVITE"),
        ("sent", 180),
        ("sent", 200),
        ("received", "ACK"),
        ("received", "BYE"),
        ("sent", 200),
    ], sipp.diagnostics()
    invite = next(m for m in sipp.messages() if m.method == "INVITE")
    assert invite.start_line.startswith("INVITE sip:0612345678@")
