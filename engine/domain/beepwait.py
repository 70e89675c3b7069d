"""The voicemail drop's answering-machine steps: AMD's verdict, then the wait for the machine's beep.

AMD said MACHINE while the greeting still plays; the machine records after the greeting's beep, so the
message starts when the beep ends. Two detectors listen to what the callee sends: the tone detector for
the beep itself (at any frequency), and the talk detector, whose "talking finished" marks the end of sound.
Before a beep is heard only a long silence ends the wait (a greeting without a beep: pauses between
sentences are shorter); once the beep is heard, a short silence does, or AFTER_BEEP_MAX_S.
No sound at all for NO_SOUND_S means the greeting is already over. bench/amd.py measures all this.
"""

from __future__ import annotations

from typing import Final

from engine.domain.callcore import CallState, FlowCore, Timer
from engine.domain.callevents import Action, ListenForBeep, SetTalkDetection, StopDetection

# The beep is heard at any frequency (400, 425, 440, 800, 850, 1000, 1400 Hz...): engine/domain/beeptone.py,
# fed the callee's audio. (Asterisk's TONE_DETECT watches a single frequency per channel.)
BEEP_MIN_MS: Final = 150  # shorter than voicemail beeps; speech does not hold a pure tone that long
GREETING_END_SILENCE_MS: Final = 1500
AFTER_BEEP_SILENCE_MS: Final = 200
TALK_THRESHOLD: Final = 256  # Asterisk's default energy threshold between silence and sound
# A beep is over within this long after it was detected, even when line noise hides the silence after it.
AFTER_BEEP_MAX_S: Final = 1.0
# No sound at all this long after the wait began: the greeting is already over (AMD heard it out, or
# heard only silence); nothing is left to wait for.
NO_SOUND_S: Final = 2.0


class BeepWaitSteps(FlowCore):
    """AMD's result and the beep wait."""

    def _on_amd_result(self, status: str, cause: str | None, now: float, out: list[Action]) -> None:
        if self._state is not CallState.amd:
            return
        self._cancel_timer(Timer.amd_wait, out)
        self._amd_status = status
        self._amd_cause = cause
        if status.strip().upper() == "MACHINE":
            self._on_machine = True
            self._state = CallState.beep_wait
            self._detecting = True
            out.append(SetTalkDetection(GREETING_END_SILENCE_MS, TALK_THRESHOLD))
            out.append(ListenForBeep(BEEP_MIN_MS))
            self._start_timer(Timer.beep_wait, self._plan.beep_wait_max_s, out)
            self._start_timer(Timer.no_sound, NO_SOUND_S, out)
        else:
            # HUMAN, and also NOTSURE: a person must never wait in silence for a beep; the greeting's `*`
            # (when the send has one) still keeps a machine from getting the message.
            self._start_normal_flow(now, out)

    def _on_tone(self, now: float, out: list[Action]) -> None:
        if self._state is not CallState.beep_wait or self._beep_heard_at is not None:
            return
        # The beep: from now on, the first short silence means it ended.
        self._beep_heard_at = now
        self._start_timer(Timer.after_beep, AFTER_BEEP_MAX_S, out)
        out.append(SetTalkDetection(AFTER_BEEP_SILENCE_MS, TALK_THRESHOLD))

    def _on_talking_started(self, out: list[Action]) -> None:
        if self._state is CallState.beep_wait and not self._sound_heard:
            # A greeting is playing: its end, or the cap, ends the wait.
            self._sound_heard = True
            self._cancel_timer(Timer.no_sound, out)

    def _on_talking_finished(self, now: float, out: list[Action]) -> None:
        # The greeting (and its beep) ended and silence followed: the machine is recording.
        if self._state is CallState.beep_wait:
            self._end_beep_wait(now, out)

    def _on_beep_timer(self, timer: Timer, now: float, out: list[Action]) -> None:
        if self._state is not CallState.beep_wait:
            return
        self._end_beep_wait(now, out)

    def _end_beep_wait(self, now: float, out: list[Action]) -> None:
        for timer in (Timer.beep_wait, Timer.no_sound, Timer.after_beep):
            self._cancel_timer(timer, out)
        if self._detecting:
            self._detecting = False
            out.append(StopDetection())
        self._beep_heard_at = None
        self._sound_heard = False
        # A machine cannot press `*`: the greeting is skipped.
        self._start_machine_message(now, out)

    def _resume_beep_wait(self, now: float, out: list[Action]) -> None:
        """Carry a beep wait on: the detectors again (Asterisk keeps them while the channel lives, but
        setting them is cheap and sure), and what is left of each of its timers."""
        entered = self._stage_entered_at
        self._detecting = True
        if self._beep_heard_at is None:
            out.append(SetTalkDetection(GREETING_END_SILENCE_MS, TALK_THRESHOLD))
            out.append(ListenForBeep(BEEP_MIN_MS))
        else:
            out.append(SetTalkDetection(AFTER_BEEP_SILENCE_MS, TALK_THRESHOLD))
            self._resume_timer(Timer.after_beep, self._beep_heard_at + AFTER_BEEP_MAX_S, now, out)
        self._resume_timer(Timer.beep_wait, entered + self._plan.beep_wait_max_s, now, out)
        if not self._sound_heard:
            self._resume_timer(Timer.no_sound, entered + NO_SOUND_S, now, out)
