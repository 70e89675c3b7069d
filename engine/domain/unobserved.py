"""The outcome of a call that ended while no engine followed it (a crash, an Asterisk restart, a websocket
gap), from the last stage its call flow announced (engine/domain/callstage.py) and what Asterisk's records
say about its end. The rule beside the outcome table (engine/domain/outcomes.py) for these calls:

- never answered: what the CDR says (busy, no answer...), else `failed`;
- answered, the message never started (no `*`, AMD, the beep wait): `not_confirmed`;
- the message started: `listened` (`voicemail` on a machine) when it played to its end, else `partial`;
- the bridge of a transfer was entered: `transferred`;
- a cut on our side (Asterisk, the engine's host or our media failed; not the callee's hang-up) is not
  charged and the recipient is called again without using one of the send's retries, unless the message
  had been heard to its end (or the callee reached the call centre);
- where the truth cannot be known, nothing is charged and the recipient is called again only if the
  send allows retries (`not_confirmed` once answered, `failed` before).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from engine.domain.callstage import Stage, StageSnapshot
from engine.domain.outcomes import Outcome

# A message is heard to its end when it played this close to its length (the CDR's times are whole
# seconds, and the playback starts a little after it was asked for).
LISTENED_TOLERANCE_S: Final = 1.0


class Cut(StrEnum):
    """Who ended a call nobody followed."""

    callee = "callee"  # the callee (or their network) hung up: CEL's hang-up source, a far-end BYE
    ours = "ours"  # Asterisk, the engine's host or our media failed, or the engine hung up after a gap
    unknown = "unknown"


@dataclass(frozen=True, slots=True)
class UnobservedOutcome:
    """What to record for a call that ended unobserved."""

    outcome: Outcome
    # Call the recipient again without using one of the send's retries (a cut of ours).
    free_retry: bool
    # False when the truth could not be known: nothing is charged (outcome retried under the send's policy).
    known: bool

    @property
    def charged(self) -> bool:
        return self.outcome.consumes_credit

    @property
    def retried_under_policy(self) -> bool:
        """Called again only if the send allows retries (and then using one of them)."""
        return self.outcome.retryable and not self.free_retry


def unobserved_outcome(
    snapshot: StageSnapshot | None,
    *,
    cut: Cut,
    ended_at: float | None = None,
    message_s: float | None = None,
    answered: bool | None = None,
    dial_outcome: Outcome | None = None,
) -> UnobservedOutcome:
    """The outcome of a call from its last announced stage (None: none was recorded).

    `ended_at`: when the call ended (the CDR's end), to tell how long the message played; `message_s`:
    the message's length. `answered`: whether the CDR says the call was answered (None: no CDR), which
    catches an answer during the gap the stage could not record. `dial_outcome`: for a call never
    answered, the outcome the CDR's disposition gives (busy, no answer, ...), if any.
    """
    was_answered = (snapshot is not None and snapshot.answered) or answered is True
    if snapshot is None or not was_answered:
        if dial_outcome is not None and not dial_outcome.rule.answered:
            return UnobservedOutcome(dial_outcome, free_retry=False, known=True)
        if was_answered:  # answered during the gap, with nobody to play anything
            return _not_confirmed(cut)
        return UnobservedOutcome(Outcome.failed, free_retry=cut is Cut.ours, known=cut is not Cut.unknown)
    if snapshot.stage is Stage.bridged or snapshot.transfer_answered_at is not None:
        # The callee reached the call centre: what the send was for, whoever cut the call afterwards.
        return UnobservedOutcome(Outcome.transferred, free_retry=False, known=True)
    heard = Outcome.voicemail if snapshot.on_machine else Outcome.listened
    if snapshot.stage is Stage.message_done:
        return UnobservedOutcome(heard, free_retry=False, known=True)
    if snapshot.message_started_at is None:
        return _not_confirmed(cut)
    to_the_end = heard_to_the_end(snapshot, ended_at=ended_at, message_s=message_s)
    if to_the_end:
        return UnobservedOutcome(heard, free_retry=False, known=True)
    if cut is Cut.ours:
        return UnobservedOutcome(Outcome.not_confirmed, free_retry=True, known=True)
    if cut is Cut.unknown:
        return UnobservedOutcome(Outcome.not_confirmed, free_retry=False, known=False)
    # The callee hung up during the message (or after `9`, during the transfer's wait or the apology).
    return UnobservedOutcome(Outcome.partial, free_retry=False, known=True)


def heard_to_the_end(snapshot: StageSnapshot, *, ended_at: float | None, message_s: float | None) -> bool:
    """The message (or its replay after a failed transfer) played to its end before the call ended. False
    when that cannot be told: an unknown end or length, a message stopped by `9` (transfer stages)."""
    if snapshot.stage is Stage.message_done:
        return True
    if snapshot.stage not in (Stage.message, Stage.replay) or message_s is None:
        return False
    start = snapshot.entered_at if snapshot.stage is Stage.replay else snapshot.message_started_at
    end = snapshot.playback_stopped_at if snapshot.playback_stopped_at is not None else ended_at
    if start is None or end is None:
        return False
    return end - start + LISTENED_TOLERANCE_S >= message_s


def _not_confirmed(cut: Cut) -> UnobservedOutcome:
    # Answered, the message never started: nothing to charge; a cut of ours does not use a retry.
    return UnobservedOutcome(Outcome.not_confirmed, free_retry=cut is Cut.ours, known=cut is not Cut.unknown)
