"""The vocabulary of the call flow: the events the ARI adapter observes, the actions it must carry out,
and the record of a finished call. Pure data (engine/domain/callflow.py holds the machine)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from engine.domain.callstage import Stage, StageSnapshot
from engine.domain.outcomes import Outcome, TransferOutcome

# --- Events: what the adapter observed -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Originated:
    """POST /channels succeeded (optional: events may arrive before the reply)."""


@dataclass(frozen=True, slots=True)
class OriginateFailed:
    """POST /channels got an error reply: no channel exists, nothing was dialled.

    Never feed it when the request may have reached Asterisk (timeout, reset): that attempt is reconciled.
    """

    reason: str


@dataclass(frozen=True, slots=True)
class Ringing:
    """180 (Dial RINGING, or the channel state became Ringing)."""


@dataclass(frozen=True, slots=True)
class Progress:
    """183 / early media (Dial PROGRESS): may be an operator announcement, not the callee."""


@dataclass(frozen=True, slots=True)
class Answered:
    """The callee's channel is up and in our Stasis application (first StasisStart)."""


@dataclass(frozen=True, slots=True)
class AmdResult:
    """The channel came back from AMD() (StasisStart args: amd, AMDSTATUS, AMDCAUSE)."""

    status: str  # HUMAN, MACHINE, NOTSURE (anything else is treated as NOTSURE)
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class ToneDetected:
    """The beep listener heard the voicemail beep, at whatever frequency (engine/domain/beeptone.py)."""


@dataclass(frozen=True, slots=True)
class TalkingStarted:
    """The talk detector heard sound from the callee (ChannelTalkingStarted)."""


@dataclass(frozen=True, slots=True)
class TalkingFinished:
    """The talk detector heard the callee's sound stop for its silence length (ChannelTalkingFinished)."""


@dataclass(frozen=True, slots=True)
class PlaybackStarted:
    playback_id: str


@dataclass(frozen=True, slots=True)
class PlaybackFinished:
    """`completed` is true only when the media played to its natural end (ARI state "done")."""

    playback_id: str
    completed: bool


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A StartTimer ran out (queued by the adapter's own timer, behind the events already received)."""

    name: str


@dataclass(frozen=True, slots=True)
class TransferAnswered:
    """The second leg (the call centre) answered and is in our Stasis application."""


@dataclass(frozen=True, slots=True)
class TransferEnded:
    """The second leg is gone: its ChannelDestroyed, or its originate was refused (all fields None)."""

    cause: int | None = None
    sip_code: int | None = None
    dialstatus: str | None = None


@dataclass(frozen=True, slots=True)
class HangupRequested:
    """ChannelHangupRequest on the callee's channel (`sip_code`: ARI's tech_cause, when present)."""

    cause: int | None = None
    sip_code: int | None = None


@dataclass(frozen=True, slots=True)
class Hangup:
    """ChannelDestroyed on the callee's channel, with the last final dial status the adapter saw (None:
    none came, as when the originate's own ring timeout ended the call: the machine tells that case by
    the time, see CallPlan.ring_timeout_s)."""

    cause: int | None = None
    sip_code: int | None = None
    dialstatus: str | None = None


@dataclass(frozen=True, slots=True)
class Abort:
    """End the call now (an ARI error on this channel, the sweep, engine shutdown).

    `channel_gone`: the callee's channel no longer exists (the sweep found it missing, its events were
    lost): nothing to hang up, and no cause is known. `cut` (a Cut of engine/domain/unobserved.py), when
    known, says who ended the call meanwhile and `ended_at` when: the outcome is then the unobserved
    rule's, from the call's last stage.
    """

    reason: str
    channel_gone: bool = False
    cut: str | None = None
    ended_at: float | None = None


Event = (
    Originated
    | OriginateFailed
    | Ringing
    | Progress
    | Answered
    | AmdResult
    | ToneDetected
    | TalkingStarted
    | TalkingFinished
    | PlaybackStarted
    | PlaybackFinished
    | Dtmf
    | TimerFired
    | TransferAnswered
    | TransferEnded
    | HangupRequested
    | Hangup
    | Abort
)


# --- Actions: what the adapter must do, in order ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Play:
    """POST /channels/{id}/play/{playback id}. Ids are unique within the call: prefix them with the
    channel id to make them unique in Asterisk."""

    playback_id: str
    media: str


@dataclass(frozen=True, slots=True)
class StopPlayback:
    playback_id: str


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Feed TimerFired(name) after `seconds`, unless CancelTimer(name) comes first. Names never repeat."""

    name: str
    seconds: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: str


@dataclass(frozen=True, slots=True)
class RunAmd:
    """Send the channel through the AMD dialplan context; it comes back as AmdResult."""


@dataclass(frozen=True, slots=True)
class SetTalkDetection:
    """Start, or retune, the talk detector on what the callee sends (TALK_DETECT(set)): report
    TalkingStarted, and TalkingFinished after `silence_ms` of silence; `threshold` is the energy level
    between silence and sound. A failure only costs time (the stage's timers still end it)."""

    silence_ms: int
    threshold: int


@dataclass(frozen=True, slots=True)
class ListenForBeep:
    """Listen to what the callee sends for a voicemail beep of any frequency: report ToneDetected once a
    steady pure tone has lasted `min_ms` (engine/domain/beeptone.py, fed the callee's audio)."""

    min_ms: int


@dataclass(frozen=True, slots=True)
class StopDetection:
    """Remove the talk detector from the callee's channel and stop listening for the beep."""


@dataclass(frozen=True, slots=True)
class OriginateTransfer:
    """Originate the second leg; report TransferAnswered, then TransferEnded when it is gone."""

    number: str
    timeout_s: float


@dataclass(frozen=True, slots=True)
class BridgeWithTransfer:
    """Create a mixing bridge and put the callee and the answered second leg in it."""


@dataclass(frozen=True, slots=True)
class HangupTransfer:
    """Hang up the second leg (it may still be ringing, or its originate may still be in flight)."""


@dataclass(frozen=True, slots=True)
class DestroyBridge:
    pass


class EndReason(StrEnum):
    """Why the call ended (logs, diagnostics); the outcome is what counts."""

    dial_failed = "dial_failed"  # never answered: busy, no answer, rejected...
    originate_failed = "originate_failed"
    callee_hangup = "callee_hangup"
    message_completed = "message_completed"
    no_star = "no_star"  # greeting played greeting_max_plays times without `*`
    transfer_hangup = "transfer_hangup"  # the call centre hung up a bridged call
    transfer_max = "transfer_max"
    playback_failed = "playback_failed"
    amd_timeout = "amd_timeout"
    call_limit = "call_limit"
    stage_deadline = "stage_deadline"  # the stage lasted past its deadline: an event was lost
    opted_out = "opted_out"  # the opt-out key, then the thanks: the callee objects to further calls
    aborted = "aborted"


@dataclass(frozen=True, slots=True)
class HangupCallee:
    """DELETE /channels/{id}?reason=normal on the callee's channel."""

    reason: EndReason


@dataclass(frozen=True, slots=True)
class CallResult:
    """Everything recorded about one attempt. Times are in the clock the adapter passes as `now`."""

    outcome: Outcome
    end_reason: EndReason
    cause: int | None  # Q.850; None or 0 when unknown (a BYE without Reason); 16 when we hung up
    sip_code: int | None
    dialstatus: str | None
    may_fail_over: bool  # refused before any 180/183 by the trunk: the dialer may try the next trunk
    originated_at: float
    ringing_at: float | None
    answered_at: float | None
    ended_at: float
    message_started_at: float | None
    greeting_plays: int
    amd_status: str | None
    amd_cause: str | None
    transfer_outcome: TransferOutcome | None
    transfer_started_at: float | None
    transfer_answered_at: float | None
    transfer_ended_at: float | None
    abort_reason: str | None = None
    # A call that ended while no engine followed it (engine/domain/unobserved.py): who cut it ("ours",
    # "callee", "unknown"), and whether its recipient is called again without using one of its attempts.
    cut: str | None = None
    free_retry: bool = False
    # The callee pressed the opt-out key (issue 18): the number goes on the account's stop list.
    opted_out: bool = False

    @property
    def ring_s(self) -> float | None:
        """From the first 180/183 to the answer, or to the end when never answered."""
        if self.ringing_at is None:
            return None
        until = self.answered_at if self.answered_at is not None else self.ended_at
        return max(0.0, until - self.ringing_at)

    @property
    def talk_s(self) -> float | None:
        """From the answer to the end of the call (transfer included)."""
        if self.answered_at is None:
            return None
        return max(0.0, self.ended_at - self.answered_at)

    @property
    def transfer_s(self) -> float | None:
        """How long the callee and the call centre were bridged."""
        if self.transfer_answered_at is None or self.transfer_ended_at is None:
            return None
        return max(0.0, self.transfer_ended_at - self.transfer_answered_at)


@dataclass(frozen=True, slots=True)
class StageChanged:
    """The call entered `stage` at `at`, or what must survive within the stage changed (the greeting's
    play, the playback, the beep heard...). `snapshot` is what to keep where a restarted engine finds it
    (CallFlow.resume takes it back). Announced after the actions it describes, so that a crash between
    the two leaves the call at the earlier stage: never further than it really got."""

    stage: Stage
    at: float
    detail: str
    snapshot: StageSnapshot


@dataclass(frozen=True, slots=True)
class Finished:
    """The call is over: record `result`. Always the last action, exactly once per call."""

    result: CallResult


Action = (
    Play
    | StopPlayback
    | StartTimer
    | CancelTimer
    | RunAmd
    | SetTalkDetection
    | ListenForBeep
    | StopDetection
    | OriginateTransfer
    | BridgeWithTransfer
    | HangupTransfer
    | DestroyBridge
    | HangupCallee
    | StageChanged
    | Finished
)
