"""Carrier trouble: trunk health, breakers, waits, retries' pace, calling-hours clock."""

from __future__ import annotations

from dataclasses import dataclass

from engine.settings.fields import SettingsError, non_negative_float, port, positive_int, setting, text


@dataclass(frozen=True)
class CarrierSettings:
    """Carrier trouble: trunk health, breakers, waits, retries' pace, calling-hours clock."""

    # --- carrier trouble: trunk health, breakers, waits, pace ------------------------------------
    hep_port: int = setting(
        "VOCALCAST_HEP_PORT",
        port,
        "9060",
        "UDP port (127.0.0.1) where Asterisk mirrors SIP to the engine (HEP): Retry-After, silent trunks.",
    )
    hep_password: str = setting(
        "VOCALCAST_HEP_PASSWORD", text, None, "Password of Asterisk's HEP packets (generated).", secret=True
    )
    qualify_frequency_s: int = setting(
        "VOCALCAST_QUALIFY_FREQUENCY_S",
        positive_int,
        "30",
        "Seconds between OPTIONS pings of a trunk (its reachability); a lost trunk stops taking calls.",
    )
    trunk_check_s: float = setting(
        "VOCALCAST_TRUNK_CHECK_S",
        non_negative_float,
        "2",
        "How often the dialer reads what Asterisk loaded and each trunk's reachability.",
    )
    breaker_window_s: float = setting(
        "VOCALCAST_BREAKER_WINDOW_S", non_negative_float, "30", "Sliding window of a trunk's breaker."
    )
    breaker_min_failures: int = setting(
        "VOCALCAST_BREAKER_MIN_FAILURES",
        positive_int,
        "3",
        "Trunk-side failures within the window that may open a trunk's breaker.",
    )
    breaker_failure_ratio: float = setting(
        "VOCALCAST_BREAKER_FAILURE_RATIO",
        non_negative_float,
        "0.5",
        "Share of the window's calls that failed on the trunk's side for its breaker to open.",
    )
    breaker_cooldown_s: float = setting(
        "VOCALCAST_BREAKER_COOLDOWN_S",
        non_negative_float,
        "10",
        "First pause of an open breaker before its probe call; doubles at each failed probe.",
    )
    breaker_cooldown_max_s: float = setting(
        "VOCALCAST_BREAKER_COOLDOWN_MAX_S", non_negative_float, "300", "Longest pause of an open breaker."
    )
    retry_after_max_s: float = setting(
        "VOCALCAST_RETRY_AFTER_MAX_S",
        non_negative_float,
        "3600",
        "Longest pause a carrier's Retry-After (503, 429) may impose on its trunk.",
    )
    trunk_wait_max_s: float = setting(
        "VOCALCAST_TRUNK_WAIT_MAX_S",
        non_negative_float,
        "86400",
        "How long a recipient may wait for a trunk able to carry its call before it ends as congestion.",
    )
    trunk_retry_s: float = setting(
        "VOCALCAST_TRUNK_RETRY_S",
        non_negative_float,
        "5",
        "Pause before a call refused by every trunk is tried again (it uses none of the send's retries).",
    )
    retry_busy_factor: float = setting(
        "VOCALCAST_RETRY_BUSY_FACTOR",
        non_negative_float,
        "0.5",
        "A busy line is called again after this share of the send's retry interval.",
    )
    retry_no_answer_factor: float = setting(
        "VOCALCAST_RETRY_NO_ANSWER_FACTOR",
        non_negative_float,
        "1",
        "An unanswered call is tried again after this share of the send's retry interval.",
    )
    clock_offset_s: float = setting(
        "VOCALCAST_CLOCK_OFFSET_S",
        float,
        "0",
        "Tests only: seconds added to the dialer's clock (deferred starts, due calls, retries, the calling "
        "hours of commercial sends), so a test can stand at any instant.",
    )
    asr_alarm_ratio: float = setting(
        "VOCALCAST_ASR_ALARM_RATIO",
        non_negative_float,
        "0.5",
        "A trunk answering fewer calls than this share of the other trunks' rate raises an alarm.",
    )
    asr_cutoff_ratio: float = setting(
        "VOCALCAST_ASR_CUTOFF_RATIO",
        non_negative_float,
        "0.2",
        "Below this share of the other trunks' answer rate, a trunk is taken out of routing.",
    )
    asr_min_calls: int = setting(
        "VOCALCAST_ASR_MIN_CALLS",
        positive_int,
        "50",
        "Calls a trunk must have ended in the window before its answer rate is judged.",
    )

    def _check_carrier(self) -> None:
        if not 0 < self.breaker_failure_ratio <= 1:
            raise SettingsError("VOCALCAST_BREAKER_FAILURE_RATIO: expected a share in (0, 1]")
        if not 0 < self.breaker_cooldown_s <= self.breaker_cooldown_max_s:
            raise SettingsError(
                "VOCALCAST_BREAKER_COOLDOWN_S: must be positive and at most VOCALCAST_BREAKER_COOLDOWN_MAX_S"
            )
        if self.retry_busy_factor <= 0 or self.retry_no_answer_factor <= 0:
            raise SettingsError("VOCALCAST_RETRY_BUSY_FACTOR and _NO_ANSWER_FACTOR must be positive")
