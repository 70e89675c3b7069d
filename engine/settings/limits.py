"""What one account may spend and hold: greetings' length, daily spending, transfers (issue 17)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.settings.fields import non_negative_float, non_negative_int, setting


@dataclass(frozen=True)
class LimitSettings:
    """What one account may spend and hold: greetings' length, daily spending, transfers (issue 17)."""

    # --- per-account limits ------------------------------------------------------------------------------
    greeting_max_s: float = setting(
        "VOCALCAST_GREETING_MAX_S",
        non_negative_float,
        "30",
        "Longest greeting (message d'accueil) after trimming silence; a longer one is refused.",
    )
    daily_spend_cap: int = setting(
        "VOCALCAST_DAILY_SPEND_CAP",
        non_negative_int,
        "0",
        "Credits an account's calls may spend per day (Europe/Paris) unless the account has its own cap; "
        "0: no cap. Reached, its calls wait for the next day (reason shown in the report).",
    )
    account_max_transfers: int = setting(
        "VOCALCAST_ACCOUNT_MAX_TRANSFERS",
        non_negative_int,
        "10",
        "Simultaneous transfers (touche 9) per account, all engines together, unless the account has its "
        "own cap (`vocalcast account transfers`); "
        "beyond, the callee hears the apology. 0: no transfer.",
    )
    transfer_minute_credits: int = setting(
        "VOCALCAST_TRANSFER_MINUTE_CREDITS",
        non_negative_int,
        "0",
        "Credits per started minute of a transferred conversation beyond the first (0: transfers free).",
    )
