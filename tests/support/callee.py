"""The per-number SIPp callee (tests/sipp/callee.xml): its behaviours by number, the pcaps it plays,
and readers for what it saw (the INVITE of a number, the RTP port Asterisk offered in it).

Used by the call-flow integration tests and by the AMD bench.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from array import array
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from lab import tones
from lab.dtmfpcap import RtpPcapBuilder
from lab.sipp import SipMessage, SippProcess

SCENARIO = Path(__file__).parent.parent / "sipp" / "callee.xml"
NUMBER_PREFIX = "0612"  # + a 4-digit line + the two digits of the behaviour: a French mobile number


class Behaviour(StrEnum):
    """The last two digits of the called number, and what the callee does (see callee.xml)."""

    star = "01"
    silent = "02"
    announcement = "03"
    transfer = "04"
    centre = "05"
    human = "06"
    machine = "07"
    long_centre = "08"
    busy = "10"
    ring_until_cancel = "11"
    decline = "12"
    progress_then_busy = "13"
    unavailable = "14"
    not_found = "15"
    star_then_bye_with_reason = "20"
    star_then_bye_without_reason = "21"
    hangup_in_greeting = "22"
    star_as_info = "30"
    star_inband = "31"

    @property
    def number(self) -> str:
        return self.dial()

    def dial(self, line: int = 0) -> str:
        """A number with this behaviour; `line` tells several calls of one behaviour apart."""
        return f"{NUMBER_PREFIX}{line:04d}{self.value}"


# Every pcap the scenario names; SIPp reads them all at start-up, so each run gets all of them.
PCAP_KEYS = ("star", "announce", "transfer", "centre", "human", "machine", "inband")


def silence_pcap(path: Path, seconds: float = 0.1) -> Path:
    RtpPcapBuilder().silence(seconds).write(path)
    return path


def callee_keys(workdir: Path, **pcaps: Path) -> dict[str, str]:
    """-key values for callee.xml: the given pcaps, a short silence for the others, except `star`
    (a `*` as RFC 2833) and `inband` (a `*` as in-band DTMF), which have working defaults."""
    workdir.mkdir(parents=True, exist_ok=True)
    unknown = set(pcaps) - set(PCAP_KEYS)
    if unknown:
        raise ValueError(f"callee.xml plays no pcap named {sorted(unknown)}")
    keys: dict[str, str] = {}
    for key in PCAP_KEYS:
        path = pcaps.get(key)
        if path is None:
            path = workdir / f"default-{key}.pcap"
            if key == "star":
                RtpPcapBuilder().silence(0.1).digits("*").silence(0.1).write(path)
            elif key == "inband":
                # Asterisk's DSP wants ~40 ms or more of each tone; 120 ms is a slow, clear key press.
                RtpPcapBuilder().silence(0.2).inband_digits("*", tone_s=0.12).silence(0.3).write(path)
            else:
                silence_pcap(path)
        keys[key] = str(path)
    return keys


def callee(
    workdir: Path,
    *,
    sip_port: int,
    media_port: int,
    name: str = "callee",
    recv_timeout_ms: int = 60000,
    **pcaps: Path,
) -> SippProcess:
    """A callee.xml UAS (answers OPTIONS too: `-aa`, in case a trunk qualifies it)."""
    return SippProcess(
        SCENARIO,
        local_port=sip_port,
        media_port=media_port,
        workdir=workdir,
        keys=callee_keys(workdir / f"{name}-pcaps", **pcaps),
        recv_timeout_ms=recv_timeout_ms,
        name=name,
        extra_args=["-aa"],
    )


# --- audio for the pcaps -------------------------------------------------------------------------


def marker_tone_pcap(
    path: Path, freq_hz: float, *, lead_s: float = 0.0, tone_s: float = 2.0, digits: str = ""
) -> Path:
    """Optional RFC 2833 digits (0.4 s apart), lead_s of silence, then a marker tone, then 0.2 s silence."""
    builder = RtpPcapBuilder()
    builder.silence(0.1)
    if digits:
        builder.digits(digits, pause_s=0.4)
    if lead_s:
        builder.silence(lead_s)
    builder.audio(tones.sine(freq_hz, tone_s, 0.3)).silence(0.2)
    builder.write(path)
    return path


def audio_pcap(path: Path, samples: Sequence[int], *, then_digits: str = "", gap_s: float = 0.0) -> Path:
    """8 kHz samples as G.711 RTP, optionally followed by gap_s of silence and RFC 2833 digits."""
    builder = RtpPcapBuilder().audio(samples)
    if then_digits:
        builder.silence(gap_s).digits(then_digits)
    builder.silence(0.1)
    builder.write(path)
    return path


async def _run(*argv: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    if process.returncode != 0:
        raise RuntimeError(
            f"{argv[0]} failed ({process.returncode}): {stderr.decode(errors='replace')[-500:]}"
        )


async def to_8k(source: Path, target: Path) -> array[int]:
    """Any audio file as 8 kHz mono 16-bit samples (ffmpeg), also written to `target` as a WAV."""
    await _run("ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), "-ar", "8000", "-ac", "1",
               "-sample_fmt", "s16", str(target))  # fmt: skip
    samples, _ = tones.read_wav(target)
    return samples


async def speech(text: str, workdir: Path, *, voice: str = "fr", words_per_minute: int = 150) -> array[int]:
    """French speech from espeak-ng, 8 kHz (its files go to `workdir`, which must exist)."""
    raw = workdir / f"espeak-{uuid.uuid4().hex[:8]}.wav"
    await _run("espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(raw), text)
    return await to_8k(raw, raw.with_suffix(".8k.wav"))


# --- reading what the callee saw -------------------------------------------------------------------

_MEDIA_PORT = re.compile(r"^m=audio (\d+) ", re.MULTILINE)


def dialog_of(messages: Sequence[SipMessage], number: str) -> list[SipMessage]:
    """Every message of the dialog(s) whose INVITE went to `number`, in order."""
    call_ids = {
        m.call_id
        for m in messages
        if m.method == "INVITE"
        and m.direction == "received"
        and m.start_line.split()[1].startswith(f"sip:{number}@")
    }
    return [m for m in messages if m.call_id in call_ids]


def invite_to(messages: Sequence[SipMessage], number: str) -> SipMessage:
    dialog = dialog_of(messages, number)
    invites = [m for m in dialog if m.method == "INVITE" and m.direction == "received"]
    if not invites:
        raise AssertionError(f"no INVITE to {number} in the SIPp trace")
    return invites[0]


def asterisk_media_port(invite: SipMessage) -> int:
    """The RTP port Asterisk offered in its INVITE: the source port of what it sends to this call."""
    found = _MEDIA_PORT.search(invite.body)
    if found is None:
        raise AssertionError(f"no m=audio line in the INVITE: {invite.body!r}")
    return int(found.group(1))


def flow(messages: Sequence[SipMessage], number: str) -> list[tuple[str, Any]]:
    """(direction, method or status) of a number's dialog, without retransmitted duplicates of 1xx."""
    out: list[tuple[str, Any]] = []
    for m in dialog_of(messages, number):
        step = (m.direction, m.method or m.status)
        if out and out[-1] == step:
            continue
        out.append(step)
    return out


def log_events(sipp: SippProcess, number: str) -> list[str]:
    """The callee's own log events (INVITE, ANSWER, BYE_SENT...) for one number, in order."""
    return [e.get("event", "") for e in sipp.log_events() if e.get("number") == number]
