"""Bench: the voicemail drop's answering-machine mode on real calls. Labelled recordings (people answering,
voicemail greetings of several lengths with beeps of several frequencies or none, silence, noise; real
human voices from Asterisk's sound packages and synthetic ones, bench/support/amd_corpus.py) are played by
SIPp phones; the engine's call flow (AMD, then the beep wait) decides each call, and the captured RTP says
when the message started relative to the end of the greeting (its beep when it has one).

The corpus has two fixed halves: **tuning** (what dialplan/amd.conf may be tuned on: the 25 synthetic
recordings of the first tuning and June's voice) and **held_out** (never seen by any tuning: Armelle's and
Allison's voices, new synthetic words and greetings). Targets, on the held-out half: ≥ 90 % of the calls
right, ≥ 85 % in each class (person, machine), and the message starting ≤ 1 s after the beep. The tuning
half is played and reported too (not a target: it says how well the thresholds fit what they were tuned
on). `python -m bench.amd tune` tries amd.conf candidates on the tuning half only.

It needs the local stack: the benches' own instance (bench/support/instance.py: port block
VOCALCAST_BENCH_PORT_BASE, default 28000, never the tests' one), stopped afterwards unless
VOCALCAST_BENCH_KEEP_STACK=1; run it in its own process (`python -m bench amd`). Needs root: the RTP
capture on lo, and pico2wave runs inside the Asterisk root (chroot).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import structlog

from bench.support import checks, instance, phones
from bench.support.amd_corpus import HELD_OUT, PACKAGES, TAIL_SILENCE_S, TUNING, Recording, make_recordings
from engine.domain.callplan import CallPlan, DropMode
from engine.domain.outcomes import Outcome
from engine.domain.trunks import Trunk
from engine.media.paths import host_dir, prompt_uri, sound_uri
from engine.settings import Settings
from engine.stack import apply_trunks
from engine.stack.root import root_path
from engine.store import Database
from engine.store.trunks import remove_trunk, upsert_trunk
from engine.telephony.ari import AriClient, events_task
from engine.telephony.callrequest import CallerId, CallRequest
from engine.telephony.calls import CallService
from engine.telephony.stasis import StasisRouter
from lab import tones
from lab.dtmfpcap import RtpPcapBuilder
from lab.rtpcapture import RtpCapture, RtpStream, tone_packet_times

MESSAGE_HZ = 1234.0
MESSAGE_LEAD_S = 0.3  # silence at the start of the bench message, before its marker tone
TARGET_ACCURACY = 0.90
TARGET_CLASS_ACCURACY = 0.85
TARGET_BEEP_DELAY_S = 1.0
# Calls placed at once: as many as the first bench played, so the machine's load stays what it was.
BATCH = 25
CALLED_NUMBER = "0612000007"


# --- the calls ------------------------------------------------------------------------------------------


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


def _plan(settings: Settings) -> CallPlan:
    message = settings.media_dir / "bench" / "amd-message.wav"
    message.parent.mkdir(parents=True, exist_ok=True)
    tones.write_wav(
        message, tones.silence(MESSAGE_LEAD_S) + tones.sine(MESSAGE_HZ, 3.0, 0.4) + tones.silence(0.3)
    )
    return CallPlan(
        message=sound_uri(settings, message),
        greeting=prompt_uri(settings, "greeting_default"),
        drop_mode=DropMode.amd,
        star_wait_s=0.5,  # nobody presses `*` here: the greeting being played is the verdict
        greeting_max_plays=1,
    )


def _streams(capture: RtpCapture, src_port: int | None, dst_port: int | None) -> list[RtpStream]:
    return [s for s in capture.streams if s.key.src_port == src_port and s.key.dst_port == dst_port]


async def _batch(
    settings: Settings, recordings: Sequence[Recording], workdir: Path, plan: CallPlan
) -> list[dict[str, Any]]:
    """Place one call per recording, all at once; each case says which flow the call got."""
    answering = []
    for index, recording in enumerate(recordings):
        pcap = workdir / f"r{index}.pcap"
        # A-law, the codec the phone answers with first (bench/support/phones.py).
        builder = RtpPcapBuilder(codec="alaw").audio(recording.samples + tones.silence(TAIL_SILENCE_S))
        builder.silence(0.1).write(pcap)
        answering.append(phones.playing(workdir, index, pcap, name=f"r{index}"))
    router = StasisRouter()
    client = instance.ari_client(settings)
    async with contextlib.AsyncExitStack() as stack:
        for phone in answering:
            await stack.enter_async_context(phone)
        trunks = await stack.enter_async_context(_trunks(settings, [p.local_port for p in answering]))
        await stack.enter_async_context(client)
        await stack.enter_async_context(events_task(client, router.dispatch))
        await client.wait_ready(10)
        service = CallService(client, router)
        media_ports = [p.media_port for p in answering if p.media_port is not None]
        async with RtpCapture(media_ports) as capture:
            results = await asyncio.gather(
                *(
                    service.place(
                        CallRequest(
                            attempt_id=str(uuid.uuid4()),
                            endpoint=f"PJSIP/{CALLED_NUMBER}@{trunk}",
                            trunk=trunk,
                            plan=plan,
                            caller_id=CallerId("0162000000", hidden=True),
                            ring_timeout_s=10,
                            callee_number="+33" + CALLED_NUMBER[1:],
                        )
                    )
                    for trunk in trunks
                )
            )
        leftovers = await instance.wait_no_channels(client)
        if leftovers:
            raise RuntimeError(f"{leftovers} channels were left after the calls")

    cases = []
    for recording, phone, result in zip(recordings, answering, results, strict=True):
        asterisk_port = phones.asterisk_rtp_port(phone)
        from_phone = _streams(capture, phone.media_port, asterisk_port)
        to_phone = _streams(capture, asterisk_port, phone.media_port)
        if result.outcome is Outcome.voicemail:
            flow = "machine"
        elif result.greeting_plays >= 1:
            flow = "person"
        else:
            flow = f"other:{result.outcome.value}"
        case: dict[str, Any] = {
            "name": recording.name,
            "split": recording.split,
            "source": recording.source,
            "kind": recording.kind,
            "label": recording.label,
            "flow": flow,
            "outcome": result.outcome.value,
            "amd": f"{result.amd_status}/{result.amd_cause}",
        }
        if recording.beep_hz is not None:
            case["beep_hz"] = recording.beep_hz
        if recording.length is not None:
            case["length"] = recording.length
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


async def play(settings: Settings, recordings: Sequence[Recording], workdir: Path) -> list[dict[str, Any]]:
    plan = _plan(settings)
    cases: list[dict[str, Any]] = []
    for first in range(0, len(recordings), BATCH):
        batch_dir = workdir / f"batch{first // BATCH}"
        batch_dir.mkdir()
        cases += await _batch(settings, recordings[first : first + BATCH], batch_dir, plan)
    return cases


# --- the figures ----------------------------------------------------------------------------------------


def _delays(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "median_s": round(statistics.median(values), 3),
        "max_s": round(max(values), 3),
        "min_s": round(min(values), 3),
    }


def _accuracy(cases: list[dict[str, Any]]) -> float | None:
    return round(sum(1 for c in cases if c["correct"]) / len(cases), 3) if cases else None


def score(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy (overall, per class, per voice, per greeting length), confusion matrix, beep delays."""
    labels = ["machine", "person"]
    flows = sorted({c["flow"] for c in cases} | set(labels))
    matrix = {label: dict.fromkeys(flows, 0) for label in labels}
    for case in cases:
        matrix[case["label"]][case["flow"]] += 1

    def by(key: str) -> dict[str, Any]:
        groups: dict[str, list[dict[str, Any]]] = {}
        for case in cases:
            if key in case:
                groups.setdefault(str(case[key]), []).append(case)
        return {
            name: {
                "n": len(group),
                "correct": sum(1 for c in group if c["correct"]),
                "accuracy": _accuracy(group),
            }
            for name, group in sorted(groups.items())
        }

    beep_cases = [c for c in cases if c["kind"] == "machine_beep" and "message_after_greeting_s" in c]
    beep_by_hz: dict[str, list[float]] = {}
    for case in beep_cases:
        beep_by_hz.setdefault(f"{case['beep_hz']:g}", []).append(case["message_after_greeting_s"])
    return {
        "recordings": len(cases),
        "correct": sum(1 for c in cases if c["correct"]),
        "accuracy": _accuracy(cases),
        "by_class": by("label"),
        "by_source": by("source"),
        "by_greeting_length": by("length"),
        "confusion_matrix": {"rows": "expected flow", "columns": "flow the call got", "counts": matrix},
        "beep_to_message_s": _delays([c["message_after_greeting_s"] for c in beep_cases]),
        "beep_to_message_s_by_beep_hz": {
            hz: _delays(values) for hz, values in sorted(beep_by_hz.items(), key=lambda kv: float(kv[0]))
        },
        "greeting_end_to_message_s": {
            kind: _delays(
                [
                    c["message_after_greeting_s"]
                    for c in cases
                    if c["kind"] == kind and "message_after_greeting_s" in c
                ]
            )
            for kind in ("machine_no_beep", "silence", "noise")
        },
    }


def summary(cases: list[dict[str, Any]]) -> dict[str, Any]:
    held_out = [c for c in cases if c["split"] == HELD_OUT]
    scored = score(held_out)
    classes = scored["by_class"]
    beep = scored["beep_to_message_s"]
    return {
        "what": "held_out is scored against the targets; tuning is what dialplan/amd.conf may be tuned on "
        "(bench/support/amd_corpus.py says which recording is in which half)",
        "sound_packages": PACKAGES,
        "held_out": scored,
        "tuning": score([c for c in cases if c["split"] == TUNING]),
        "checks": {
            "held_out_accuracy": checks.at_least(scored["accuracy"], TARGET_ACCURACY),
            "held_out_person_accuracy": checks.at_least(
                classes.get("person", {}).get("accuracy"), TARGET_CLASS_ACCURACY
            ),
            "held_out_machine_accuracy": checks.at_least(
                classes.get("machine", {}).get("accuracy"), TARGET_CLASS_ACCURACY
            ),
            "held_out_beep_to_message_s_max": checks.at_most(beep.get("max_s"), TARGET_BEEP_DELAY_S),
        },
        "cases": cases,
    }


async def _bench(settings: Settings, splits: Sequence[str]) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="vocalcast-bench-amd-") as tmp:
        workdir = Path(tmp)
        recordings = await make_recordings(workdir, root_path(settings), splits=splits)
        return await play(settings, recordings, workdir)


def run() -> dict[str, Any]:
    with instance.bench_stack() as settings:
        return {"bench": "amd", **summary(asyncio.run(_bench(settings, (TUNING, HELD_OUT))))}


# --- tuning (on the tuning half only) ----------------------------------------------------------------------

# amd.conf values tried by `python -m bench.amd tune` (each on top of dialplan/amd.conf's).
CANDIDATES: list[dict[str, int]] = [
    {},
    {"between_words_silence": 100},
    {"between_words_silence": 100, "maximum_number_of_words": 4},
    {"between_words_silence": 150, "maximum_number_of_words": 4},
    {"greeting": 2000, "between_words_silence": 100, "maximum_number_of_words": 4},
    {"after_greeting_silence": 1000, "between_words_silence": 100, "maximum_number_of_words": 4},
]


def amd_conf(values: dict[str, int]) -> str:
    """dialplan/amd.conf with some values replaced."""
    lines = []
    for line in (Path(__file__).parent.parent / "dialplan" / "amd.conf").read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        lines.append(f"{key} = {values[key]}" if key in values and "=" in line else line)
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _conf_restored(path: Path) -> Iterator[None]:
    saved = path.with_suffix(".conf.bench-saved")
    shutil.copy2(path, saved)
    try:
        yield
    finally:
        shutil.copy2(saved, path)
        saved.unlink()


async def _reload_amd(settings: Settings) -> None:
    async with AriClient(
        host="127.0.0.1",
        port=settings.ari_port,
        user=settings.ari_user,
        password=settings.require("ari_password"),
        app=f"bench-tune-{uuid.uuid4().hex[:6]}",
    ) as client:
        await client.reload_module("app_amd.so")


async def _tune(settings: Settings) -> list[dict[str, Any]]:
    conf = host_dir(settings) / "etc" / "amd.conf"
    out = []
    with tempfile.TemporaryDirectory(prefix="vocalcast-bench-amd-tune-") as tmp, _conf_restored(conf):
        workdir = Path(tmp)
        recordings = await make_recordings(workdir, root_path(settings), splits=(TUNING,))
        for index, values in enumerate(CANDIDATES):
            conf.write_text(amd_conf(values))
            await _reload_amd(settings)
            run_dir = workdir / f"candidate{index}"
            run_dir.mkdir()
            cases = await play(settings, recordings, run_dir)
            scored = score(cases)
            wrong = [f"{c['name']}: {c['flow']} ({c['amd']})" for c in cases if not c["correct"]]
            out.append(
                {
                    "values": values,
                    "accuracy": scored["accuracy"],
                    "by_class": scored["by_class"],
                    "wrong": wrong,
                }
            )
            print(json.dumps(out[-1], ensure_ascii=False), file=sys.stderr)
    await _reload_amd(settings)
    return out


def tune() -> list[dict[str, Any]]:
    with instance.bench_stack() as settings:
        return asyncio.run(_tune(settings))


if __name__ == "__main__":
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    print(json.dumps(tune() if sys.argv[1:] == ["tune"] else run(), indent=2, ensure_ascii=False))
