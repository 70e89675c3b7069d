"""An uploaded message, converted by the library, is what a callee hears: the RTP captured towards a
SIPp phone, decoded, holds the message's marker tone for the message's duration (±5 %)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from engine.domain.trunks import Trunk
from engine.services.messages import Messages, playback_uri
from engine.settings import Settings
from engine.store import Database
from engine.store.accounts import create_account
from engine.telephony.probe import probe_call
from lab import tones
from lab.dtmfpcap import write_rfc2833_pcap
from lab.rtpcapture import RtpCapture, samples_to
from lab.sipp import SippProcess
from tests.integration.conftest import Ari, add_trunk

pytestmark = pytest.mark.integration
SIPP_DIR = Path(__file__).parent.parent / "sipp"
MARKER_HZ = 1234.0


def marker_mp3(tmp: Path) -> Path:
    """A 44.1 kHz stereo MP3 with silence around a 2.5 s marker tone, as a customer might upload it."""
    mp3 = tmp / "annonce.mp3"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency={MARKER_HZ:g}:duration=2.5:sample_rate=44100",
            "-af",
            "adelay=800|800,apad=pad_dur=1",
            "-ac",
            "2",
            "-b:a",
            "128k",
            str(mp3),
        ],
        check=True,
    )
    return mp3


async def test_uploaded_mp3_reaches_the_callee(
    stack_settings: Settings,
    db: Database,
    ari: Ari,
    sipp_ports,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    mp3 = marker_mp3(tmp_path)
    account = (
        await create_account(db, "ecoute@example.fr", secret_key=stack_settings.require("secret_key"))
    ).account
    message = await Messages(db, stack_settings).add(
        account.id, mp3, origin="file", original_name="annonce.mp3"
    )
    # Trimming kept the tone and a short pad of silence on each side.
    assert 2.5 <= message.duration_s <= 3.0

    sip_port, media_port = sipp_ports()
    pcap = tmp_path / "one.pcap"
    write_rfc2833_pcap(pcap, "1")
    await add_trunk(stack_settings, Trunk(name="listener", host="127.0.0.1", port=sip_port))
    sipp = SippProcess(
        SIPP_DIR / "callee_answer_dtmf.xml",
        local_port=sip_port,
        media_port=media_port,
        workdir=tmp_path,
        keys={"pcap": str(pcap)},
        recv_timeout_ms=20000,
        extra_args=["-aa"],
    )
    async with sipp, RtpCapture([media_port]) as capture:
        result = await probe_call(
            ari.client,
            ari.router,
            endpoint="PJSIP/0612345678@listener",
            media=playback_uri(stack_settings, message),
            ring_timeout_s=10,
            max_duration_s=20,
        )
    assert result.error == "" and result.played_to_end, result
    heard = samples_to(capture.streams, media_port)
    duration = tones.tone_duration_s(heard, MARKER_HZ)
    assert 2.5 * 0.95 <= duration <= 2.5 * 1.05, duration
    # The whole message (tone and its trimmed pad) went out, and nothing else.
    audio_s = len(heard) / 8000
    assert message.duration_s * 0.95 <= audio_s <= message.duration_s * 1.05 + 0.2, (
        audio_s,
        message.duration_s,
    )
