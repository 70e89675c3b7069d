"""The transfer steps of the call flow: `9` rings the call centre while the callee hears a wait prompt and
ringback; answered, both are bridged until one hangs up (or transfer_max_s); refused or unanswered, the
callee hears an apology and the message once more."""

from __future__ import annotations

from typing import Final

from engine.domain.callcore import CallState, FlowCore, Timer
from engine.domain.callevents import (
    Action,
    BridgeWithTransfer,
    EndReason,
    HangupTransfer,
    OriginateTransfer,
    TransferEnded,
)
from engine.domain.callstage import Media
from engine.domain.outcomes import Outcome, TransferOutcome, classify_transfer_failure

# The machine's own transfer ring timer decides "no answer"; Asterisk's originate timeout is only a
# backstop behind it, so that the outcome does not depend on which of the two fires first.
TRANSFER_ORIGINATE_MARGIN_S: Final = 5.0

# States where `9` starts a transfer (issue 6: "at any time during the greeting or the message").
TRANSFER_STATES: Final = frozenset({CallState.greeting, CallState.star_wait, CallState.message})


class TransferSteps(FlowCore):
    """From `9` to the bridge, or to the apology and the replay."""

    def _may_transfer(self) -> bool:
        return self._state in TRANSFER_STATES and self._plan.can_transfer and not self._on_machine

    def _start_transfer(self, now: float, out: list[Action]) -> None:
        self._stop_playback(out)
        self._cancel_timer(Timer.star_wait, out)
        self._cancel_timer(Timer.playback_grace, out)
        self._state = CallState.transfer_dialing
        self._transfer_started_at = now
        self._transfer_leg = True
        self._play(Media.transfer_wait, self._plan.transfer_wait_media, out)
        out.append(
            OriginateTransfer(
                str(self._plan.transfer_number).strip(),
                self._plan.transfer_ring_timeout_s + TRANSFER_ORIGINATE_MARGIN_S,
            )
        )
        self._start_timer(Timer.transfer_ring, self._plan.transfer_ring_timeout_s, out)

    def _on_transfer_answered(self, now: float, out: list[Action]) -> None:
        if self._state is not CallState.transfer_dialing or not self._transfer_leg:
            return  # too late: we already gave up on that leg and asked for its hang-up
        self._cancel_timer(Timer.transfer_ring, out)
        self._stop_playback(out)
        out.append(BridgeWithTransfer())
        self._bridged = True
        self._state = CallState.bridged
        self._transfer_answered_at = now
        self._transfer_outcome = TransferOutcome.answered
        self._start_timer(Timer.transfer_max, self._plan.transfer_max_s, out)

    def _on_transfer_ended(self, event: TransferEnded, now: float, out: list[Action]) -> None:
        if not self._transfer_leg:
            return  # the leg we hung up ourselves (ring timeout), or no leg at all
        self._transfer_leg = False
        self._transfer_ended_at = now
        if self._state is CallState.transfer_dialing:
            self._transfer_outcome = classify_transfer_failure(event.dialstatus, event.cause, event.sip_code)
            self._transfer_failed(out)
        elif self._state is CallState.bridged:
            self._finish(
                now,
                out,
                end_reason=EndReason.transfer_hangup,
                outcome=Outcome.transferred,
                callee_gone=False,
            )

    def _on_transfer_ring_timeout(self, now: float, out: list[Action]) -> None:
        if self._state is not CallState.transfer_dialing:
            return
        self._transfer_outcome = TransferOutcome.no_answer
        self._transfer_ended_at = now
        self._transfer_leg = False
        out.append(HangupTransfer())
        self._transfer_failed(out)

    def _on_transfer_max(self, now: float, out: list[Action]) -> None:
        if self._state is CallState.bridged:
            self._finish(
                now, out, end_reason=EndReason.transfer_max, outcome=Outcome.transferred, callee_gone=False
            )

    def _on_transfer_media_finished(self, media: Media | None, completed: bool, out: list[Action]) -> None:
        """The wait prompt ended: ringback until the call centre answers (a finite tone is started again)."""
        if media is Media.transfer_wait or (media is Media.ringback and completed):
            self._play(Media.ringback, self._plan.ringback_media, out)

    def _transfer_failed(self, out: list[Action]) -> None:
        self._cancel_timer(Timer.transfer_ring, out)
        self._stop_playback(out)
        self._state = CallState.apology
        self._play(Media.apology, self._plan.transfer_apology_media, out)

    def _resume_transfer(self, now: float, out: list[Action]) -> None:
        """Carry on a transfer: the ring timer for what is left, or the bridge's transfer_max_s."""
        if self._state is CallState.transfer_dialing:
            started = self._transfer_started_at if self._transfer_started_at is not None else now
            if not self._transfer_leg:
                # No leg to wait for (its end was recorded, but not the apology): fail over to it now.
                self._transfer_failed(out)
                return
            self._resume_timer(Timer.transfer_ring, started + self._plan.transfer_ring_timeout_s, now, out)
            if self._playback is None:
                self._play(Media.ringback, self._plan.ringback_media, out)
        elif self._state is CallState.bridged:
            self._bridged = True
            answered = self._transfer_answered_at if self._transfer_answered_at is not None else now
            self._resume_timer(Timer.transfer_max, answered + self._plan.transfer_max_s, now, out)
