"""The recording line: its number, code guessing limits, recording limits."""

from __future__ import annotations

from dataclasses import dataclass

from engine.settings.fields import national_number, non_negative_float, positive_int, setting, text


@dataclass(frozen=True)
class IvrSettings:
    """The recording line: its number, code guessing limits, recording limits."""

    # --- the recording number --------------------------------------------------------------------
    recording_number: str = setting(
        "VOCALCAST_RECORDING_NUMBER",
        national_number,
        "0172360170",
        "The recording IVR's number (national form); calls to any other number are refused.",
    )

    # --- recording IVR ---------------------------------------------------------------------------
    ivr_code_tries: int = setting(
        "VOCALCAST_IVR_CODE_TRIES", positive_int, "3", "Wrong personal codes in one call before goodbye."
    )
    ivr_lockout_failures: int = setting(
        "VOCALCAST_IVR_LOCKOUT_FAILURES",
        positive_int,
        "5",
        "Wrong codes from one caller number within the window that block that number.",
    )
    ivr_lockout_window_s: float = setting(
        "VOCALCAST_IVR_LOCKOUT_WINDOW_S",
        non_negative_float,
        "900",
        "Window counting a caller's wrong codes.",
    )
    ivr_lockout_s: float = setting(
        "VOCALCAST_IVR_LOCKOUT_S",
        non_negative_float,
        "1800",
        "How long a blocked caller number stays blocked.",
    )
    ivr_global_failures_per_min: int = setting(
        "VOCALCAST_IVR_GLOBAL_FAILURES_PER_MIN",
        positive_int,
        "60",
        "Wrong codes per minute, all callers together (the guess budget), above which the code checks of "
        "callers never seen typing a right code slow down.",
    )
    ivr_record_max_s: float = setting(
        "VOCALCAST_IVR_RECORD_MAX_S", non_negative_float, "300", "Longest recording by phone."
    )
    ivr_silence_s: float = setting(
        "VOCALCAST_IVR_SILENCE_S", non_negative_float, "5", "Silence that ends a recording by phone."
    )
    ivr_digit_timeout_s: float = setting(
        "VOCALCAST_IVR_DIGIT_TIMEOUT_S", non_negative_float, "6", "How long the IVR waits for a key."
    )

    # --- abuse limits of the recording line (issue 17) -------------------------------------------------
    agi_secret: str = setting(
        "VOCALCAST_AGI_SECRET",
        text,
        None,
        "Secret every FastAGI request carries in its AGI URL (rendered into the dialplan; generated).",
        secret=True,
    )
    ivr_max_calls: int = setting(
        "VOCALCAST_IVR_MAX_CALLS",
        positive_int,
        "10",
        "Simultaneous calls on the recording number; above it a call is refused busy, unanswered.",
    )
    ivr_known_caller_days: int = setting(
        "VOCALCAST_IVR_KNOWN_CALLER_DAYS",
        positive_int,
        "365",
        "Days a caller number that typed a right code keeps its pace while the guess budget is spent.",
    )

    # --- the guess budget's longest wait (test time: tests shorten it) ----------------------------------
    ivr_throttle_max_s: float = setting(
        "VOCALCAST_IVR_THROTTLE_MAX_S",
        non_negative_float,
        "10",
        "Longest wait before a code check while the guess budget is spent (each multiple of the budget "
        "adds 1 s, up to this).",
    )

    # --- unknown callers while the guess budget is spent (issue 17) -------------------------------------
    ivr_unknown_calls_when_spent: int = setting(
        "VOCALCAST_IVR_UNKNOWN_CALLS_WHEN_SPENT",
        positive_int,
        "2",
        "While the guess budget is spent, calls from unknown callers (never seen typing a right code, or "
        "hidden) checking codes at once, every engine together; the next one hears that the line is busy.",
    )
