"""The AMD bench's labelled recordings, generated at bench time (nothing big is committed), always the same.

Two halves, fixed here and never mixed:

- **tuning**: what dialplan/amd.conf may be tuned on. The 25 synthetic recordings (pico2wave and espeak-ng)
  the thresholds were first tuned on, and every recording of June, the Canadian French voice of Asterisk's
  core sounds (Debian asterisk-core-sounds-fr-wav).
- **held_out**: what the bench scores, never seen by any tuning: Armelle Desjardins, the French voice of
  Debian's asterisk-prompt-fr-armelle, Allison, the US English voice of asterisk-core-sounds-en-wav (two
  people no tuning ever heard), and synthetic recordings with new words, greetings and beeps.

A person says a word or two (cut from the recordings: "Bonjour", "Merci", "Au revoir", ≤ 1.5 s) and waits
in silence. A machine plays a greeting made of the recordings' own sentences, short (~2 s), typical
(4-8 s) or long (10+ s), then a beep (400 to 1400 Hz, 0.2-1 s) or no beep. Random choices
(levels, pauses, beeps, noise) come from generators seeded with each recording's name.
"""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from operator import mul
from pathlib import Path

from lab import tones

SOUNDS = Path("/usr/share/asterisk/sounds")
TAIL_SILENCE_S = 30.0  # the bench appends this to each recording (bench/amd.py): kept out of the noise

TUNING = "tuning"
HELD_OUT = "held_out"


@dataclass(frozen=True)
class Voice:
    """A person who recorded Asterisk prompts, and where the Debian package put them."""

    name: str
    package: str
    directory: Path
    extension: str
    split: str

    def path(self, prompt: str) -> Path:
        return self.directory / f"{prompt}.{self.extension}"


JUNE = Voice(
    "June (fr-CA)", "asterisk-core-sounds-fr-wav", SOUNDS / "fr_CA_f_June", "wav", TUNING
)  # fmt: skip
ARMELLE = Voice("Armelle (fr-FR)", "asterisk-prompt-fr-armelle", SOUNDS / "fr", "gsm", HELD_OUT)
ALLISON = Voice(
    "Allison (en-US)", "asterisk-core-sounds-en-wav", SOUNDS / "en_US_f_Allison", "wav", HELD_OUT
)  # fmt: skip
VOICES = (JUNE, ARMELLE, ALLISON)
PACKAGES = sorted({voice.package for voice in VOICES})

BEEP_FREQUENCIES_HZ = (425.0, 440.0, 850.0, 1000.0, 1400.0)
BEEP_DURATIONS_S = (0.2, 0.35, 0.5, 0.8, 1.0)


@dataclass(frozen=True)
class Recording:
    """What one phone says on answer. `label` is the flow it must get: "machine" (the message after
    the greeting) or "person" (the send's normal flow); `greeting_end_s` is where a machine starts
    recording (the end of its beep, or of its greeting when it has no beep)."""

    name: str
    source: str  # the voice: a person's name, or the speech synthesiser
    kind: str  # person, machine_beep, machine_no_beep, silence, noise
    label: str
    split: str  # TUNING or HELD_OUT
    samples: array[int]
    greeting_end_s: float | None = None
    beep_hz: float | None = None
    length: str | None = None  # a machine greeting's length class: short, typical, long


# --- audio ----------------------------------------------------------------------------------------------


async def _run(*argv: str) -> bytes:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    if process.returncode != 0:
        raise RuntimeError(
            f"{argv[0]} failed ({process.returncode}): {stderr.decode(errors='replace')[-500:]}"
        )
    return stdout


async def decode_8k(path: Path) -> array[int]:
    """Any audio file (raw GSM included) as 8 kHz mono 16-bit samples (ffmpeg)."""
    fmt = ["-f", "gsm"] if path.suffix == ".gsm" else []
    try:
        raw = await _run(
            "ffmpeg", "-nostdin", "-v", "error", *fmt, "-i", str(path),
            "-ar", "8000", "-ac", "1", "-f", "s16le", "-",
        )  # fmt: skip
    except RuntimeError as exc:
        raise RuntimeError(f"{path}: {exc} (scripts/bootstrap.sh installs the sound packages)") from exc
    samples = array("h")
    samples.frombytes(raw)
    return samples


async def espeak(text: str, workdir: Path, *, words_per_minute: int = 150) -> array[int]:
    """French speech from espeak-ng, 8 kHz."""
    raw = workdir / f"espeak-{uuid.uuid4().hex[:8]}.wav"
    await _run("espeak-ng", "-v", "fr", "-s", str(words_per_minute), "-w", str(raw), text)
    return await decode_8k(raw)


async def pico(text: str, root: Path) -> array[int]:
    """pico2wave's French voice, run inside the Asterisk root (the host has no pico2wave)."""
    name = f"vocalcast-bench-{uuid.uuid4().hex[:8]}.wav"
    inside = root / "tmp" / name
    try:
        await _run("chroot", str(root), "pico2wave", "-l", "fr-FR", "-w", f"/tmp/{name}", text)  # noqa: S108
        return await decode_8k(inside)
    finally:
        inside.unlink(missing_ok=True)


def _frame_dbfs(samples: Sequence[int], start: int, size: int) -> float:
    frame = samples[start : start + size]
    energy = float(sum(map(mul, frame, frame)))
    return -math.inf if energy <= 0 else 10 * math.log10(energy / len(frame) / 32767**2)


def trim(samples: array[int], *, threshold_dbfs: float = -40.0, pad_s: float = 0.03) -> array[int]:
    """The recording without its leading and trailing silence: edges are the first and last runs of 60 ms
    or more above the threshold (20 ms frames), so a click or a breath at an edge is left out."""
    size, run = 160, 3
    loud = [_frame_dbfs(samples, i, size) > threshold_dbfs for i in range(0, len(samples) - size + 1, size)]
    starts = [i for i in range(len(loud) - run + 1) if all(loud[i : i + run])]
    if not starts:
        raise ValueError("a recording without speech")
    pad = round(pad_s * 8000)
    first, last = starts[0] * size, (starts[-1] + run) * size
    return samples[max(0, first - pad) : min(len(samples), last + pad)]


def gain(samples: Sequence[int], db: float) -> array[int]:
    factor = 10 ** (db / 20)
    return array("h", (max(-32768, min(32767, round(v * factor))) for v in samples))


def noise(seconds: float, level_dbfs: float, seed: int | str) -> array[int]:
    """Low-passed random noise (a street, a car, a line), at an RMS level in dBFS."""
    rng = random.Random(seed)
    smooth, previous = [], 0.0
    for _ in range(round(seconds * 8000)):
        previous = 0.7 * previous + 0.3 * rng.gauss(0.0, 1.0)
        smooth.append(previous)
    rms = (sum(v * v for v in smooth) / len(smooth)) ** 0.5 or 1.0
    scale = 32767 * 10 ** (level_dbfs / 20) / rms
    return array("h", (max(-32768, min(32767, round(v * scale))) for v in smooth))


def beep(freq_hz: float, seconds: float, amplitude: float = 0.3) -> array[int]:
    """A voicemail beep with 5 ms ramps (no click)."""
    samples = tones.sine(freq_hz, seconds, amplitude)
    ramp = 40
    for n in range(min(ramp, len(samples) // 2)):
        samples[n] = round(samples[n] * n / ramp)
        samples[-1 - n] = round(samples[-1 - n] * n / ramp)
    return samples


# --- real voices ----------------------------------------------------------------------------------------

# What a person says on answer: prompts of one or two short words (the recordings' own words: "Bonjour",
# "Merci", "Au revoir", "Non", "Bonjour le monde"; Allison says them in English).
PERSON_WORDS = {
    JUNE: ("hello", "auth-thankyou", "vm-goodbye", "vm-no", "hello-world"),
    ARMELLE: ("hello-world", "auth-thankyou", "vm-goodbye", "vm-no", "privacy-thankyou"),
    ALLISON: ("hello", "auth-thankyou", "vm-goodbye", "vm-no", "hello-world"),
}
# A voicemail greeting: sentences of the voice's prompts (a "#" plays the digits of 06 12 34 56 78).
GREETINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "hello-unavailable": ("short", ("hello", "vm-isunavail")),
    "nobody": ("short", ("vm-nobodyavail",)),
    "intro": ("typical", ("vm-intro",)),
    "person-number-unavailable": ("typical", ("hello", "vm-theperson", "#0612", "vm-isunavail")),
    "nobody-leave-message": ("typical", ("vm-nobodyavail", "vm-leavemsg")),
    "person-on-phone": ("typical", ("vm-theperson", "#06", "vm-isonphone", "vm-leavemsg")),
    "hello-nobody-intro": ("long", ("hello", "vm-nobodyavail", "vm-intro")),
    "full-number-intro": ("long", ("vm-theperson", "#0612345678", "vm-isunavail", "vm-intro")),
}
# Greetings without a beep (the machine records once it has spoken); one greeting over line noise.
NO_BEEP = {"nobody-leave-message"}
IN_NOISE = {"intro"}
# Armelle recorded no "hello": her greetings that start with it start with the rest.
MISSING = {ARMELLE: {"hello"}}


class PromptLoader:
    def __init__(self, voice: Voice) -> None:
        self.voice = voice
        self._cache: dict[str, array[int]] = {}

    async def __call__(self, prompt: str) -> array[int]:
        if prompt not in self._cache:
            self._cache[prompt] = trim(await decode_8k(self.voice.path(prompt)))
        return self._cache[prompt]

    async def digits(self, digits: str) -> array[int]:
        out = array("h")
        for index, digit in enumerate(digits):
            if index:
                out += tones.silence(0.08)
            out += await self(f"digits/{digit}")
        return out


async def _sentences(load: PromptLoader, parts: Sequence[str], rng: random.Random) -> array[int]:
    out = array("h")
    for part in parts:
        if part in MISSING.get(load.voice, set()):
            continue
        if out:
            out += tones.silence(rng.uniform(0.2, 0.45))  # a speaker's pause between sentences
        out += await (load.digits(part[1:]) if part.startswith("#") else load(part))
    return out


async def real_voice_recordings(voice: Voice) -> list[Recording]:
    load = PromptLoader(voice)
    out: list[Recording] = []
    for index, prompt in enumerate(PERSON_WORDS[voice]):
        name = f"person-{voice.name}-{prompt}"
        rng = random.Random(name)
        said = gain(await load(prompt), rng.choice((-4.0, 0.0, 2.0)))
        if len(said) > 1.5 * 8000:
            raise ValueError(f"{name}: {len(said) / 8000:.2f} s, longer than a word or two")
        samples = tones.silence(rng.uniform(0.2, 0.6)) + said
        detail = f"{len(said) / 8000:.2f} s"
        if index == 0:  # says it again after a while: nobody answered
            samples += tones.silence(1.5) + said
            detail += ", twice"
        if index == len(PERSON_WORDS[voice]) - 1:  # a mobile in the street
            samples = tones.mix(noise(len(samples) / 8000 + TAIL_SILENCE_S, -48, name), samples)
            detail += ", street noise -48 dBFS"
        out.append(Recording(f"{name} ({detail})", voice.name, "person", "person", voice.split, samples))
    for key, (length, parts) in GREETINGS.items():
        name = f"machine-{voice.name}-{key}"
        rng = random.Random(name)
        greeting = tones.silence(rng.uniform(0.2, 0.5)) + gain(
            await _sentences(load, parts, rng), rng.choice((-3.0, 0.0, 2.0))
        )
        if key in NO_BEEP:
            samples, beep_hz, detail = greeting, None, "no beep"
        else:
            beep_hz = rng.choice(BEEP_FREQUENCIES_HZ)
            beep_s = rng.choice(BEEP_DURATIONS_S)
            samples = (
                greeting + tones.silence(rng.uniform(0.1, 0.8)) + beep(beep_hz, beep_s, rng.uniform(0.2, 0.4))
            )
            detail = f"beep {beep_hz:g} Hz {beep_s:g} s"
        end_s = len(samples) / 8000
        if key in IN_NOISE:
            samples = tones.mix(noise(end_s + TAIL_SILENCE_S, -45, name), samples)
            detail += ", line noise -45 dBFS"
        out.append(
            Recording(
                f"{name} ({length}, {len(greeting) / 8000:.1f} s, {detail})",
                voice.name,
                "machine_no_beep" if beep_hz is None else "machine_beep",
                "machine",
                voice.split,
                samples,
                greeting_end_s=end_s,
                beep_hz=beep_hz,
                length=length,
            )
        )
    return out


# --- synthetic voices -----------------------------------------------------------------------------------

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
# Held out: words and greetings the first tuning never heard.
NEW_PEOPLE_FR = ["Oui, allô ?", "Allô, j'écoute ?", "Oui, c'est moi.", "Bonjour ?"]
NEW_GREETINGS_FR = {
    "garage": "Garage Dupont, bonjour. Nous sommes fermés. Laissez un message.",
    "julie": (
        "Salut, c'est Julie ! Je suis sûrement en train de faire quelque chose de passionnant. "
        "Laisse-moi un petit message, je te rappelle vite."
    ),
    "mairie": (
        "Vous êtes bien à la mairie de Saint-Martin. Nos bureaux sont ouverts du lundi au vendredi de huit "
        "heures trente à douze heures et de quatorze heures à dix-sept heures. En dehors de ces horaires, "
        "vous pouvez laisser un message avec vos coordonnées, nous vous rappellerons."
    ),
    "bref": "Messagerie de Thomas. Laissez un message.",
}
# Held out: voicemail beeps at frequencies and lengths no other recording has (any beep must be heard).
OTHER_BEEPS_FR = {
    "plombier": (
        "Entreprise Lefèvre, plomberie et chauffage. Nous sommes en intervention. Laissez vos coordonnées.",
        400.0,
        0.25,
    ),
    "sophie": ("Bonjour, vous êtes bien chez Sophie et Marc. Laissez-nous un message.", 800.0, 0.6),
    "cabinet": (
        "Cabinet d'avocats Morel, bonjour. Le standard est fermé. Merci de laisser un message détaillé.",
        600.0,
        1.0,
    ),
    "lucas": ("C'est Lucas, je suis sur la route. Un message et je rappelle.", 1200.0, 0.2),
}


async def synthetic_recordings(workdir: Path, root: Path) -> list[Recording]:
    """The 25 recordings amd.conf was first tuned on (tuning half) and new synthetic ones (held out)."""
    silence = tones.silence
    out: list[Recording] = []

    async def es(text: str, wpm: int = 150) -> array[int]:
        return await espeak(text, workdir, words_per_minute=wpm)

    async def pc(text: str) -> array[int]:
        return await pico(text, root)

    def person(name: str, source: str, samples: array[int], split: str = TUNING) -> None:
        out.append(Recording(name, source, "person", "person", split, samples))

    def machine(name: str, source: str, samples: array[int], *, beep_hz: float | None, split: str) -> None:
        kind = "machine_no_beep" if beep_hz is None else "machine_beep"
        out.append(
            Recording(
                name,
                source,
                kind,
                "machine",
                split,
                samples,
                greeting_end_s=len(samples) / 8000,
                beep_hz=beep_hz,
            )
        )

    # The first 25 (tuning). People: a short phrase, then they wait for us (some say it twice).
    people = [
        ("espeak", PEOPLE_FR[0], await es(PEOPLE_FR[0])),
        ("pico", PEOPLE_FR[0], await pc(PEOPLE_FR[0])),
        ("espeak", PEOPLE_FR[1], await es(PEOPLE_FR[1])),
        ("pico", PEOPLE_FR[1], await pc(PEOPLE_FR[1])),
        ("pico", PEOPLE_FR[2], await pc(PEOPLE_FR[2])),
        ("espeak", PEOPLE_FR[3], await es(PEOPLE_FR[3], 170)),
        ("pico", PEOPLE_FR[4], await pc(PEOPLE_FR[4])),
    ]
    for index, (voice, text, said) in enumerate(people):
        person(f"person-{index}-{voice}: {text}", voice, silence(0.3) + said)
    hello = await pc(PEOPLE_FR[0])
    person("person-twice-pico: Allô ? … Allô ?", "pico", silence(0.2) + hello + silence(1.5) + hello)
    noisy = silence(0.3) + await es(PEOPLE_FR[0])
    person(
        "person-in-noise-espeak: Allô ? (street noise -48 dBFS)",
        "espeak",
        tones.mix(noise(len(noisy) / 8000 + TAIL_SILENCE_S, -48, 7), noisy),
    )
    # Voicemail greetings (5-20 s) with a 1000 Hz beep, by both voices, with different gaps and beep lengths.
    for voice, key, gap_s, beep_s in (
        ("pico", "short", 0.3, 0.5),
        ("espeak", "short", 0.6, 0.5),
        ("pico", "marie", 0.4, 0.4),
        ("espeak", "marie", 0.8, 0.6),
        ("pico", "operator", 0.5, 0.5),
        ("espeak", "operator", 0.3, 1.0),
        ("pico", "office", 0.6, 0.5),
        ("espeak", "office", 0.2, 0.3),
    ):
        greeting = await (pc(GREETINGS_FR[key]) if voice == "pico" else es(GREETINGS_FR[key]))
        samples = silence(0.4) + greeting + silence(gap_s) + tones.sine(1000.0, beep_s, 0.3)
        machine(
            f"machine-beep-{voice}-{key} ({len(samples) / 8000:.1f} s, beep {beep_s} s)",
            voice,
            samples,
            beep_hz=1000.0,
            split=TUNING,
        )
    # A greeting with a beep over line noise: the silence after the beep is noise, not silence.
    greeting = silence(0.4) + await pc(GREETINGS_FR["short"]) + silence(0.4) + tones.sine(1000.0, 0.5, 0.3)
    out.append(
        Recording(
            "machine-beep-in-noise-pico-short (line noise -40 dBFS)",
            "pico",
            "machine_beep",
            "machine",
            TUNING,
            tones.mix(noise(len(greeting) / 8000 + TAIL_SILENCE_S, -40, 11), greeting),
            greeting_end_s=len(greeting) / 8000,
            beep_hz=1000.0,
        )
    )
    # Greetings without a beep: the machine records once the greeting is over.
    for voice, key in (("pico", "marie"), ("espeak", "short"), ("pico", "operator"), ("espeak", "marie")):
        greeting = silence(0.4) + await (pc(GREETINGS_FR[key]) if voice == "pico" else es(GREETINGS_FR[key]))
        machine(
            f"machine-no-beep-{voice}-{key} ({len(greeting) / 8000:.1f} s)",
            voice,
            greeting,
            beep_hz=None,
            split=TUNING,
        )
    # Silence on answer: AMD's "initial silence" is a machine waiting to record (an empty greeting).
    out.append(Recording("silence", "-", "silence", "machine", TUNING, silence(1.0), greeting_end_s=0.0))
    out.append(
        Recording(
            "silence-with-hiss (-60 dBFS)",
            "-",
            "silence",
            "machine",
            TUNING,
            noise(25.0, -60, 3),
            greeting_end_s=0.0,
        )
    )
    # Noise and nothing else: no pause, no word, never silent: AMD calls it a machine (long greeting).
    out.append(
        Recording(
            "noise (-30 dBFS)", "-", "noise", "machine", TUNING, noise(40.0, -30, 5), greeting_end_s=0.0
        )
    )

    # Held out: new words, new greetings, other beeps.
    for index, text in enumerate(NEW_PEOPLE_FR):
        voice = ("pico", "espeak")[index % 2]
        said = await (pc(text) if voice == "pico" else es(text, 140 + 10 * index))
        person(f"person-new-{voice}: {text}", voice, silence(0.25 + 0.1 * index) + said, HELD_OUT)
    for index, (key, text) in enumerate(NEW_GREETINGS_FR.items()):
        voice = ("espeak", "pico")[index % 2]
        rng = random.Random(f"synthetic-{key}")
        greeting = silence(0.3) + await (pc(text) if voice == "pico" else es(text))
        beep_hz = (425.0, 440.0, 850.0, 1400.0)[index]
        beep_s = rng.choice(BEEP_DURATIONS_S)
        samples = greeting + silence(rng.uniform(0.1, 0.8)) + beep(beep_hz, beep_s)
        machine(
            f"machine-new-{voice}-{key} ({len(greeting) / 8000:.1f} s, beep {beep_hz:g} Hz {beep_s:g} s)",
            voice,
            samples,
            beep_hz=beep_hz,
            split=HELD_OUT,
        )
    for index, (key, (text, beep_hz, beep_s)) in enumerate(OTHER_BEEPS_FR.items()):
        voice = ("pico", "espeak")[index % 2]
        rng = random.Random(f"synthetic-beep-{key}")
        greeting = silence(0.3) + await (pc(text) if voice == "pico" else es(text))
        samples = greeting + silence(rng.uniform(0.1, 0.8)) + beep(beep_hz, beep_s, rng.uniform(0.2, 0.4))
        machine(
            f"machine-beep-{voice}-{key} ({len(greeting) / 8000:.1f} s, beep {beep_hz:g} Hz {beep_s:g} s)",
            voice,
            samples,
            beep_hz=beep_hz,
            split=HELD_OUT,
        )
    return out


async def make_recordings(
    workdir: Path, root: Path, *, splits: Sequence[str] = (TUNING, HELD_OUT)
) -> list[Recording]:
    """Every recording of the wanted halves, in a fixed order."""
    recordings = await synthetic_recordings(workdir, root)
    for voice in VOICES:
        if voice.split in splits:
            recordings += await real_voice_recordings(voice)
    return [r for r in recordings if r.split in splits]
