"""Bench: the voicemail drop's answering-machine mode on real calls. Labelled recordings made here
(people answering, French voicemail greetings with and without a beep, silence, noise) are played by
SIPp phones; the engine's call flow (AMD, then the beep wait) decides each call, and the captured RTP
says when the message started relative to the end of the greeting (its beep when it has one).

``run()`` returns the confusion matrix, the accuracy and the beep-to-message delays; targets are
>= 90 % correct and the message starting <= 1 s after the beep.

It needs the local stack: the benches' own test instance (bench/stackutil.py: port block
VOCALCAST_BENCH_PORT_BASE, default 28000, never the tests' one), stopped afterwards unless
VOCALCAST_BENCH_KEEP_STACK=1; run it in its own process (`python -m bench amd`). Needs root: the RTP
capture on lo, and pico2wave runs inside the Asterisk root (chroot).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import statistics
import sys
import tempfile
import uuid
from array import array
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from bench import stackutil
from engine.domain.callplan import CallPlan, DropMode
from engine.domain.outcomes import Outcome
from engine.domain.trunks import Trunk
from engine.media.paths import prompt_uri, sound_uri
from engine.settings import Settings
from engine.stack import apply_trunks
from engine.stack.root import root_path
from engine.store import Database
from engine.store.trunks import remove_trunk, upsert_trunk
from engine.telephony.ari import events_task
from engine.telephony.callrequest import CallerId, CallRequest
from engine.telephony.calls import CallService
from engine.telephony.stasis import StasisRouter
from tests.support import tones
from tests.support.callee import Behaviour, asterisk_media_port, audio_pcap, callee, invite_to, speech, to_8k
from tests.support.rtpcapture import RtpCapture, tone_packet_times

MESSAGE_HZ = 1234.0
MESSAGE_LEAD_S = 0.3  # silence at the start of the bench message, before its marker tone
BEEP_HZ = 1000.0
TARGET_ACCURACY = 0.90
TARGET_BEEP_DELAY_S = 1.0
# After its recording, each phone stays on the line in silence long enough for the slowest outcome
# (the beep wait's 20 s cap, then the message).
TAIL_SILENCE_S = 30.0

GREETINGS_FR = {
    "short": "Bonjour, vous êtes sur la messagerie de Paul. Laissez votre message après le bip.",
    "marie": (
        "Bonjour, c'est Marie. Je ne peux pas vous répondre pour le moment, mais laissez-moi un message "
        "et je vous rappelle dès que possible. Merci, et à bientôt !"
    ),
    "operator": (
        "Bonjour, vous êtes bien sur la messagerie vocale du zéro six, douze, trente-quatre, "
        "cinquante-six, soixante-dix-huit. Votre correspondant n'est pas disponible pour le moment. "
        "Vous pouvez laisser un message après le bip sonore."
    ),
    "office": (
        "Bonjour, vous êtes bien au cabinet du docteur Martin. Le cabinet est ouvert du lundi au vendredi, "
        "de neuf heures à dix-neuf heures, et le samedi matin. En cas d'urgence, composez le quinze. "
        "Pour prendre rendez-vous, laissez votre nom et votre numéro de téléphone après le signal sonore, "
        "nous vous rappellerons dans la journée."
    ),
}
PEOPLE_FR = ["Allô ?", "Oui, bonjour.", "Allô, oui ?", "Oui ?", "Bonjour, j'écoute."]


@dataclass(frozen=True)
class Recording:
    """What one phone says on answer. `label` is the flow it must get: "machine" (the message after
    the greeting) or "person" (the send's normal flow); `greeting_end_s` is where a machine starts
    recording (the end of its beep, or of its greeting when it has no beep)."""

    name: str
    kind: str  # person, machine_beep, machine_no_beep, silence, noise
    label: str
    samples: array[int]
    greeting_end_s: float | None = None
    beep: bool = False


# --- recordings --------------------------------------------------------------------------------------


async def _pico(text: str, workdir: Path, root: Path) -> array[int]:
    """pico2wave's French voice, run inside the Asterisk root (the host has no pico2wave)."""
    name = f"vocalcast-bench-{uuid.uuid4().hex[:8]}.wav"
    inside = root / "tmp" / name
    process = await asyncio.create_subprocess_exec(
        "chroot", str(root), "pico2wave", "-l", "fr-FR",
        "-w", f"/tmp/{name}", text,  # noqa: S108 - the root's /tmp, cleaned below
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    if process.returncode != 0:
        raise RuntimeError(f"pico2wave failed: {stderr.decode(errors='replace')[-300:]}")
    try:
        return await to_8k(inside, workdir / f"{name}.8k.wav")
    finally:
        inside.unlink(missing_ok=True)


def _noise(seconds: float, level_dbfs: float, seed: int) -> array[int]:
    """Low-passed random noise (a street or a car), at an RMS level in dBFS."""
    rng = random.Random(seed)
    raw = [rng.gauss(0.0, 1.0) for _ in range(round(seconds * 8000))]
    smooth, previous = [], 0.0
    for value in raw:
        previous = 0.7 * previous + 0.3 * value
        smooth.append(previous)
    rms = (sum(v * v for v in smooth) / len(smooth)) ** 0.5 or 1.0
    scale = 32767 * 10 ** (level_dbfs / 20) / rms
    return array("h", (max(-32768, min(32767, round(v * scale))) for v in smooth))


def _mix(a: array[int], b: array[int]) -> array[int]:
    return tones.mix(a, b)


async def make_recordings(workdir: Path, root: Path) -> list[Recording]:
    silence = tones.silence
    out: list[Recording] = []

    async def espeak(text: str, wpm: int = 150) -> array[int]:
        return await speech(text, workdir, words_per_minute=wpm)

    async def pico(text: str) -> array[int]:
        return await _pico(text, workdir, root)

    # People: a short phrase, then they wait for us (some say it twice).
    people = [
        ("espeak", PEOPLE_FR[0], await espeak(PEOPLE_FR[0])),
        ("pico", PEOPLE_FR[0], await pico(PEOPLE_FR[0])),
        ("espeak", PEOPLE_FR[1], await espeak(PEOPLE_FR[1])),
        ("pico", PEOPLE_FR[1], await pico(PEOPLE_FR[1])),
        ("pico", PEOPLE_FR[2], await pico(PEOPLE_FR[2])),
        ("espeak", PEOPLE_FR[3], await espeak(PEOPLE_FR[3], 170)),
        ("pico", PEOPLE_FR[4], await pico(PEOPLE_FR[4])),
    ]
    for index, (voice, text, said) in enumerate(people):
        out.append(Recording(f"person-{index}-{voice}: {text}", "person", "person", silence(0.3) + said))
    hello = await pico(PEOPLE_FR[0])
    out.append(
        Recording(
            "person-twice-pico: Allô ? … Allô ?",
            "person",
            "person",
            silence(0.2) + hello + silence(1.5) + hello,
        )
    )
    noisy = silence(0.3) + await espeak(PEOPLE_FR[0])
    out.append(
        Recording(
            "person-in-noise-espeak: Allô ? (street noise -48 dBFS)",
            "person",
            "person",
            _mix(_noise(len(noisy) / 8000 + TAIL_SILENCE_S, -48, 7), noisy),
        )
    )

    # Voicemail greetings (5-20 s) with a beep, by both voices, with different gaps and beep lengths.
    beep_cases = [
        ("pico", "short", 0.3, 0.5),
        ("espeak", "short", 0.6, 0.5),
        ("pico", "marie", 0.4, 0.4),
        ("espeak", "marie", 0.8, 0.6),
        ("pico", "operator", 0.5, 0.5),
        ("espeak", "operator", 0.3, 1.0),
        ("pico", "office", 0.6, 0.5),
        ("espeak", "office", 0.2, 0.3),
    ]
    for voice, key, gap_s, beep_s in beep_cases:
        greeting = await (pico(GREETINGS_FR[key]) if voice == "pico" else espeak(GREETINGS_FR[key]))
        samples = silence(0.4) + greeting + silence(gap_s) + tones.sine(BEEP_HZ, beep_s, 0.3)
        out.append(
            Recording(
                f"machine-beep-{voice}-{key} ({len(samples) / 8000:.1f} s, beep {beep_s} s)",
                "machine_beep",
                "machine",
                samples,
                greeting_end_s=len(samples) / 8000,
                beep=True,
            )
        )
    # A greeting with a beep over line noise: the silence after the beep is noise, not silence.
    greeting = silence(0.4) + await pico(GREETINGS_FR["short"]) + silence(0.4) + tones.sine(BEEP_HZ, 0.5, 0.3)
    out.append(
        Recording(
            "machine-beep-in-noise-pico-short (line noise -40 dBFS)",
            "machine_beep",
            "machine",
            _mix(_noise(len(greeting) / 8000 + TAIL_SILENCE_S, -40, 11), greeting),
            greeting_end_s=len(greeting) / 8000,
            beep=True,
        )
    )

    # Greetings without a beep: the machine records once the greeting is over.
    for voice, key in (("pico", "marie"), ("espeak", "short"), ("pico", "operator"), ("espeak", "marie")):
        greeting = silence(0.4) + await (
            pico(GREETINGS_FR[key]) if voice == "pico" else espeak(GREETINGS_FR[key])
        )
        out.append(
            Recording(
                f"machine-no-beep-{voice}-{key} ({len(greeting) / 8000:.1f} s)",
                "machine_no_beep",
                "machine",
                greeting,
                greeting_end_s=len(greeting) / 8000,
            )
        )

    # Silence on answer: AMD's "initial silence" is a machine waiting to record (an empty greeting).
    out.append(Recording("silence", "silence", "machine", silence(1.0), greeting_end_s=0.0))
    out.append(
        Recording(
            "silence-with-hiss (-60 dBFS)", "silence", "machine", _noise(25.0, -60, 3), greeting_end_s=0.0
        )
    )
    # Noise and nothing else: no pause, no word, never silent: AMD calls it a machine (long greeting).
    out.append(Recording("noise (-30 dBFS)", "noise", "machine", _noise(40.0, -30, 5), greeting_end_s=0.0))
    return out


# --- the stack and the calls ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _trunks(settings: Settings, ports: list[int]) -> AsyncIterator[list[str]]:
    names = [f"b{port}-{uuid.uuid4().hex[:6]}" for port in ports]
    async with Database(settings.dsn, min_size=1, max_size=1) as database:
        for name, port in zip(names, ports, strict=True):
            await upsert_trunk(database, Trunk(name=name, host="127.0.0.1", port=port))
    await apply_trunks(settings)
    try:
        yield names
    finally:
        async with Database(settings.dsn, min_size=1, max_size=1) as database:
            for name in names:
                await remove_trunk(database, name)
        await apply_trunks(settings)


async def _calls(settings: Settings, recordings: list[Recording], workdir: Path) -> list[dict[str, Any]]:
    message = settings.media_dir / "bench" / "amd-message.wav"
    message.parent.mkdir(parents=True, exist_ok=True)
    tones.write_wav(
        message, tones.silence(MESSAGE_LEAD_S) + tones.sine(MESSAGE_HZ, 3.0, 0.4) + tones.silence(0.3)
    )
    plan = CallPlan(
        message=sound_uri(settings, message),
        greeting=prompt_uri(settings, "greeting_default"),
        drop_mode=DropMode.amd,
        star_wait_s=0.5,  # nobody presses `*` here: the greeting being played is the verdict
        greeting_max_plays=1,
    )
    phones = []
    for index, recording in enumerate(recordings):
        pcap = audio_pcap(workdir / f"r{index}.pcap", recording.samples + tones.silence(TAIL_SILENCE_S))
        phone = callee(
            workdir,
            sip_port=stackutil.sipp_ports(index)[0],
            media_port=stackutil.sipp_ports(index)[1],
            name=f"r{index}",
            machine=pcap,
        )
        phones.append(phone)
    number = Behaviour.machine.number
    router = StasisRouter()
    client = stackutil.ari_client(settings)
    async with contextlib.AsyncExitStack() as stack:
        for phone in phones:
            await stack.enter_async_context(phone)
        trunks = await stack.enter_async_context(_trunks(settings, [p.local_port for p in phones]))
        await stack.enter_async_context(client)
        await stack.enter_async_context(events_task(client, router.dispatch))
        await client.wait_ready(10)
        service = CallService(client, router)
        media_ports = [p.media_port for p in phones if p.media_port is not None]
        async with RtpCapture(media_ports) as capture:
            results = await asyncio.gather(
                *(
                    service.place(
                        CallRequest(
                            attempt_id=str(uuid.uuid4()),
                            endpoint=f"PJSIP/{number}@{trunk}",
                            trunk=trunk,
                            plan=plan,
                            caller_id=CallerId("0162000000", hidden=True),
                            ring_timeout_s=10,
                            callee_number="+33" + number[1:],
                        )
                    )
                    for trunk in trunks
                )
            )
        leftovers = await stackutil.wait_no_channels(client)
        if leftovers:
            raise RuntimeError(f"{leftovers} channels were left after the calls")

    cases = []
    for recording, phone, result in zip(recordings, phones, results, strict=True):
        asterisk_port = asterisk_media_port(invite_to(phone.messages(), number))
        from_phone = capture_between(capture, phone.media_port, asterisk_port)
        to_phone = capture_between(capture, asterisk_port, phone.media_port)
        if result.outcome is Outcome.voicemail:
            flow = "machine"
        elif result.greeting_plays >= 1:
            flow = "person"
        else:
            flow = f"other:{result.outcome.value}"
        case: dict[str, Any] = {
            "name": recording.name,
            "kind": recording.kind,
            "label": recording.label,
            "flow": flow,
            "outcome": result.outcome.value,
            "amd": f"{result.amd_status}/{result.amd_cause}",
        }
        message_times = tone_packet_times(to_phone, MESSAGE_HZ)
        if recording.greeting_end_s is not None and from_phone and message_times:
            started = min(s.first_time_s for s in from_phone)  # SIPp starts the recording on its ACK
            message_start = message_times[0] - MESSAGE_LEAD_S
            case["message_after_greeting_s"] = round(message_start - (started + recording.greeting_end_s), 3)
        # A machine's message must start once its greeting (and beep) is over, not during it.
        case["correct"] = flow == recording.label and (
            recording.label != "machine" or case.get("message_after_greeting_s", -1.0) >= -0.1
        )
        cases.append(case)
    return cases


def capture_between(capture: Any, src_port: int | None, dst_port: int | None) -> list[Any]:
    return [s for s in capture.streams if s.key.src_port == src_port and s.key.dst_port == dst_port]


def _summary(cases: list[dict[str, Any]]) -> dict[str, Any]:
    labels = ["machine", "person"]
    flows = sorted({c["flow"] for c in cases} | set(labels))
    matrix = {label: dict.fromkeys(flows, 0) for label in labels}
    for case in cases:
        matrix[case["label"]][case["flow"]] += 1
    correct = sum(1 for c in cases if c["correct"])
    beep_delays = [
        c["message_after_greeting_s"]
        for c in cases
        if c["kind"] == "machine_beep" and "message_after_greeting_s" in c
    ]
    other_delays = {
        kind: [
            c["message_after_greeting_s"]
            for c in cases
            if c["kind"] == kind and "message_after_greeting_s" in c
        ]
        for kind in ("machine_no_beep", "silence", "noise")
    }

    def stats(values: list[float]) -> dict[str, Any]:
        if not values:
            return {"n": 0}
        return {
            "n": len(values),
            "median_s": round(statistics.median(values), 3),
            "max_s": round(max(values), 3),
            "min_s": round(min(values), 3),
        }

    accuracy = correct / len(cases) if cases else 0.0
    beep = stats(beep_delays)
    return {
        "recordings": len(cases),
        "correct": correct,
        "accuracy": round(accuracy, 3),
        "confusion_matrix": {"rows": "expected flow", "columns": "flow the call got", "counts": matrix},
        "beep_to_message_s": beep,
        "greeting_end_to_message_s": {kind: stats(values) for kind, values in other_delays.items()},
        "targets": {"accuracy": TARGET_ACCURACY, "beep_to_message_s": TARGET_BEEP_DELAY_S},
        "targets_met": {
            "accuracy": accuracy >= TARGET_ACCURACY,
            "beep_to_message_s": bool(beep_delays) and max(beep_delays) <= TARGET_BEEP_DELAY_S,
        },
        "cases": cases,
    }


async def _bench(settings: Settings) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vocalcast-bench-amd-") as tmp:
        workdir = Path(tmp)
        recordings = await make_recordings(workdir, root_path(settings))
        cases = await _calls(settings, recordings, workdir)
    return _summary(cases)


def run() -> dict[str, Any]:
    with stackutil.bench_stack() as settings:
        return {"bench": "amd", **asyncio.run(_bench(settings))}


if __name__ == "__main__":
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    print(json.dumps(run(), indent=2, ensure_ascii=False))
