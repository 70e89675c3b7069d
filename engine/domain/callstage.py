"""Where one call is: its stage, the snapshot the call flow announces at every change (what must survive
the engine to carry the call on: engine/domain/callflow.py resumes from it), and each stage's deadline.

Pure data and rules, no I/O; the snapshot's text form fits a channel variable or a CDR userfield.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Final

from engine.domain.callplan import CallPlan
from engine.domain.outcomes import TransferOutcome


class Stage(StrEnum):
    """How far a call got. The call flow announces each one it enters (StageChanged)."""

    dialing = "dialing"  # originated, nothing heard from the phone yet
    ringing = "ringing"  # a 180 or 183 came
    amd = "amd"  # answered; answering-machine detection listens
    beep_wait = "beep_wait"  # a machine answered: waiting for its beep before the message
    preamble = "preamble"  # a commercial call says who calls and how to object (issue 18)
    greeting = "greeting"  # the greeting plays (its play number is in the snapshot)
    star_wait = "star_wait"  # the greeting ended: waiting for `*`
    message = "message"  # the message started
    message_done = "message_done"  # the message was heard to its end
    transfer_dialing = "transfer_dialing"  # `9`: the call centre rings, the callee hears the wait
    bridged = "bridged"  # the callee and the call centre talk
    apology = "apology"  # the transfer failed: apologising before the message plays again
    replay = "replay"  # the message once more after a failed transfer
    opt_out = "opt_out"  # the opt-out key was pressed: thanking the callee before the hang-up
    ended = "ended"


class Media(StrEnum):
    """What a playback of the call plays."""

    greeting = "greeting"
    message = "message"
    transfer_wait = "transfer_wait"
    ringback = "ringback"
    apology = "apology"
    preamble = "preamble"
    opt_out = "opt_out"


# A stage that plays a medium ends when its playback's end is reported. If that report is lost (or the
# media server stalls), the stage's deadline ends the call: the medium's length plus this margin.
STAGE_DEADLINE_MARGIN_S: Final = 15.0
# The length assumed for a medium whose length the plan does not give.
UNKNOWN_MEDIA_S: Final = 600.0

_FORMAT = "v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class StageSnapshot:
    """Everything a restarted engine needs to carry a call on from its stage (CallFlow.resume) or, if the
    call ended meanwhile, to give it an outcome (engine/domain/unobserved.py). Times are the call
    flow's clock (epoch seconds in the engine)."""

    stage: Stage
    entered_at: float  # when the call entered this stage
    originated_at: float
    ringing_at: float | None = None
    answered_at: float | None = None
    amd_status: str | None = None
    amd_cause: str | None = None
    on_machine: bool = False  # a mailbox answered (AMD said MACHINE, or the trunk's direct deposit)
    beep_heard_at: float | None = None  # beep_wait: the beep was heard, a short silence now ends the wait
    sound_heard: bool = False  # beep_wait: the greeting was heard at all
    greeting_plays: int = 0
    message_started_at: float | None = None
    # The playback whose end moves the call on (the machine's id; the adapter derives Asterisk's from it).
    playback_id: str | None = None
    playback_media: Media | None = None
    playback_stopped_at: float | None = None  # the message stopped by itself: waiting for the hang-up
    transfer_leg: bool = False  # a second leg exists (ringing or bridged) that the call must hang up
    transfer_outcome: TransferOutcome | None = None
    transfer_started_at: float | None = None
    transfer_answered_at: float | None = None
    transfer_ended_at: float | None = None
    seq: int = 0  # the machine's id counter: a resumed machine never reuses a playback id

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    @property
    def detail(self) -> str:
        """A short description for logs: the greeting's play number, the playback, the beep."""
        parts: list[str] = []
        if self.stage is Stage.greeting:
            parts.append(f"play {self.greeting_plays}")
        if self.playback_id is not None:
            parts.append(self.playback_id)
        if self.playback_stopped_at is not None:
            parts.append("stopped")
        if self.beep_heard_at is not None:
            parts.append("beep heard")
        elif self.sound_heard:
            parts.append("sound heard")
        return " ".join(p for p in parts if p)

    def encode(self) -> str:
        """A compact text form (under 255 characters: a CDR userfield holds it), read back by decode().
        Times other than the origination are relative to it, to the millisecond."""
        items = [_FORMAT, f"stage={self.stage.value}", f"o={self.originated_at:.3f}"]
        for field in fields(self):
            name = field.name
            if name in {"stage", "originated_at"}:
                continue
            value = getattr(self, name)
            if value is None or value is False or (name == "seq" and value == 0):
                continue
            if name in _TIMES:
                text = f"{value - self.originated_at:.3f}"
            elif isinstance(value, bool):
                text = "1"
            elif isinstance(value, StrEnum):
                text = value.value
            else:
                text = str(value)
            items.append(f"{_SHORT[name]}={text}")
        return ";".join(items)

    @classmethod
    def decode(cls, text: str) -> StageSnapshot:
        """The snapshot encode() wrote; ValueError when the text is not one."""
        head, _, rest = text.partition(";")
        if head != _FORMAT:
            raise ValueError(f"not a stage snapshot: {text[:40]!r}")
        pairs = dict(item.split("=", 1) for item in rest.split(";") if "=" in item)
        try:
            origin = float(pairs.pop("o"))
            values: dict[str, object] = {"stage": Stage(pairs.pop("stage")), "originated_at": origin}
            for short, raw in pairs.items():
                name = _LONG[short]
                if name in _TIMES:
                    values[name] = round(origin + float(raw), 3)
                elif name in {"on_machine", "sound_heard", "transfer_leg"}:
                    values[name] = raw == "1"
                elif name in {"greeting_plays", "seq"}:
                    values[name] = int(raw)
                elif name == "playback_media":
                    values[name] = Media(raw)
                elif name == "transfer_outcome":
                    values[name] = TransferOutcome(raw)
                else:
                    values[name] = raw
            snapshot = cls(**values)  # type: ignore[arg-type]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a stage snapshot: {text[:40]!r}") from exc
        if not all(math.isfinite(t) for t in snapshot.times()):
            raise ValueError(f"not a stage snapshot: {text[:40]!r}")
        return snapshot

    def times(self) -> list[float]:
        return [t for t in (getattr(self, name) for name in ("originated_at", *_TIMES)) if t is not None]


_TIMES = (
    "entered_at",
    "ringing_at",
    "answered_at",
    "beep_heard_at",
    "message_started_at",
    "playback_stopped_at",
    "transfer_started_at",
    "transfer_answered_at",
    "transfer_ended_at",
)
_SHORT = {
    "entered_at": "e",
    "ringing_at": "r",
    "answered_at": "a",
    "amd_status": "as",
    "amd_cause": "ac",
    "on_machine": "vm",
    "beep_heard_at": "b",
    "sound_heard": "s",
    "greeting_plays": "g",
    "message_started_at": "m",
    "playback_id": "p",
    "playback_media": "pm",
    "playback_stopped_at": "ps",
    "transfer_leg": "tl",
    "transfer_outcome": "to",
    "transfer_started_at": "t0",
    "transfer_answered_at": "t1",
    "transfer_ended_at": "t2",
    "seq": "q",
}
_LONG = {short: name for name, short in _SHORT.items()}


def stage_deadline_at(plan: CallPlan, snapshot: StageSnapshot) -> float | None:
    """When the stage of `snapshot` has lasted too long: an event was lost, the call is ended.

    Before the answer, the originate's ring timeout plus the margin; while a medium plays, its length
    plus the margin. The other stages end by their own timers (AMD's wait, the beep wait's cap, the `*`
    wait, the transfer's ring timeout, the bridged call's transfer_max_s): None.
    """
    match snapshot.stage:
        case Stage.dialing | Stage.ringing:
            return snapshot.originated_at + plan.ring_timeout_s + STAGE_DEADLINE_MARGIN_S
        case Stage.greeting:
            length = plan.greeting_s
        case Stage.message | Stage.replay:
            length = plan.message_s
        case Stage.apology:
            length = plan.apology_s
        case Stage.preamble:
            length = plan.preamble_s
        case Stage.opt_out:
            length = plan.opt_out_s
        case _:
            return None
    return snapshot.entered_at + (UNKNOWN_MEDIA_S if length is None else length) + STAGE_DEADLINE_MARGIN_S
