"""A library message played to a SIPp phone through a trunk, and what the phone heard: the "tone heard
whole" check of tests/integration/test_message_playback.py (the library's conversion, in the test
process) and tests/security/test_service_user.py (the engine's, as the service user)."""

from __future__ import annotations

import subprocess
from array import array
from collections.abc import Callable
from pathlib import Path

from engine.domain.accounts import Message
from engine.domain.trunks import Trunk
from engine.services.messages import playback_uri
from engine.settings import Settings
from engine.telephony.ari import AriClient
from engine.telephony.probe import probe_call
from engine.telephony.stasis import StasisRouter
from lab.dtmfpcap import write_rfc2833_pcap
from lab.rtpcapture import RtpCapture, samples_to
from lab.sipp import SippProcess
from tests.integration.conftest import add_trunk

SIPP_DIR = Path(__file__).parent.parent / "sipp"
MARKER_HZ = 1234.0


def marker_mp3(path: Path, *, tone_s: float, lead_s: float, pad_s: float) -> Path:
    """A 44.1 kHz stereo MP3, as a customer might upload it (ffmpeg's most work: decoded, resampled,
    mixed down): ``lead_s`` of silence, ``tone_s`` of the marker tone, ``pad_s`` of silence."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
         "-i", f"sine=frequency={MARKER_HZ:g}:duration={tone_s:g}:sample_rate=44100",
         "-af", f"adelay={lead_s * 1000:g}|{lead_s * 1000:g},apad=pad_dur={pad_s:g}",
         "-ac", "2", "-b:a", "128k", str(path)],
        check=True, timeout=30,
    )  # fmt: skip
    return path


async def heard_by_a_phone(  # noqa: PLR0917 - what the call needs
    settings: Settings,
    ari: AriClient,
    router: StasisRouter,
    ports: Callable[[], tuple[int, int]],
    workdir: Path,
    message: Message,
    trunk: str,
) -> array[int]:
    """Add the trunk ``trunk`` (stored, rendered, PJSIP reloaded live, as `vocalcast trunk add` does)
    towards a new SIPp phone, play ``message`` to it, and return what it heard (8 kHz samples), once
    the playback went to its end."""
    sip_port, media_port = ports()
    await add_trunk(settings, Trunk(name=trunk, host="127.0.0.1", port=sip_port))
    pcap = workdir / "one.pcap"
    write_rfc2833_pcap(pcap, "1")
    sipp = SippProcess(
        SIPP_DIR / "callee_answer_dtmf.xml",
        local_port=sip_port,
        media_port=media_port,
        workdir=workdir,
        keys={"pcap": str(pcap)},
        recv_timeout_ms=20000,
        extra_args=["-aa"],
    )
    async with sipp, RtpCapture([media_port]) as capture:
        result = await probe_call(
            ari,
            router,
            endpoint=f"PJSIP/0612345678@{trunk}",
            media=playback_uri(settings, message),
            ring_timeout_s=10,
            max_duration_s=20,
        )
    assert result.error == "" and result.played_to_end, result
    return samples_to(capture.streams, media_port)
