"""Personal data: how long callee numbers and deleted messages' traces are kept (issue 20, RGPD)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.settings.fields import SettingsError, non_negative_float, positive_int, setting


@dataclass(frozen=True)
class PrivacySettings:
    """Personal data: how long callee numbers and deleted messages' traces are kept (issue 20, RGPD)."""

    # --- personal data: retention (README « Données personnelles ») ------------------------------------
    retention_numbers_days: int = setting(
        "VOCALCAST_RETENTION_NUMBERS_DAYS",
        positive_int,
        "365",
        "Days after a send's end (a CDR's start, a refusal) its callee numbers are replaced by a keyed hash "
        "(at least 60: the French-law caps read them).",
    )
    retention_deleted_messages_days: int = setting(
        "VOCALCAST_RETENTION_DELETED_MESSAGES_DAYS",
        positive_int,
        "30",
        "Days a deleted message keeps its title and file name (its audio is removed at deletion).",
    )
    # issue 17: calls from strangers to the recording line (and busy refusals, call-backs) leave CDRs that
    # no attempt names; they go whole after this many days.
    retention_inbound_cdr_days: int = setting(
        "VOCALCAST_RETENTION_INBOUND_CDR_DAYS",
        positive_int,
        "90",
        "Days the CDR of an inbound call (recording line, call-back, refused busy) is kept, then deleted.",
    )
    retention_purge_every_s: float = setting(
        "VOCALCAST_RETENTION_PURGE_EVERY_S",
        non_negative_float,
        "86400",
        "How often the retention purge runs (it also runs at each engine start).",
    )

    def _check_privacy(self) -> None:
        if self.retention_numbers_days < 60:
            raise SettingsError(
                "VOCALCAST_RETENTION_NUMBERS_DAYS: at least 60 (the French-law caps read 60 days of numbers)"
            )
        if self.retention_purge_every_s <= 0:
            raise SettingsError("VOCALCAST_RETENTION_PURGE_EVERY_S: expected positive seconds")
