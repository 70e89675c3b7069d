"""Status webhooks: who may be reached, timeouts, retries, the delivery log."""

from __future__ import annotations

from dataclasses import dataclass

from engine.settings.fields import SettingsError, boolean, non_negative_float, positive_int, setting


@dataclass(frozen=True)
class WebhookSettings:
    """Status webhooks: who may be reached, timeouts, retries, the delivery log."""

    # --- webhooks --------------------------------------------------------------------------------
    webhook_allow_private: bool = setting(
        "VOCALCAST_WEBHOOK_ALLOW_PRIVATE",
        boolean,
        "0",
        "Let webhooks reach loopback, private and link-local addresses (never metadata nor multicast).",
    )
    webhook_timeout_s: float = setting(
        "VOCALCAST_WEBHOOK_TIMEOUT_S", non_negative_float, "5", "Longest wait for one webhook delivery."
    )
    webhook_retry_base_s: float = setting(
        "VOCALCAST_WEBHOOK_RETRY_BASE_S",
        non_negative_float,
        "5",
        "First wait before a failed webhook is tried again; doubles at each try.",
    )
    webhook_retry_max_s: float = setting(
        "VOCALCAST_WEBHOOK_RETRY_MAX_S",
        non_negative_float,
        "3600",
        "Longest wait between two webhook tries.",
    )
    webhook_retry_window_s: float = setting(
        "VOCALCAST_WEBHOOK_RETRY_WINDOW_S",
        non_negative_float,
        "86400",
        "How long a webhook event is retried before it is given up.",
    )
    webhook_concurrency: int = setting(
        "VOCALCAST_WEBHOOK_CONCURRENCY", positive_int, "20", "Webhook deliveries in flight at once, at most."
    )
    webhook_log_days: int = setting(
        "VOCALCAST_WEBHOOK_LOG_DAYS",
        positive_int,
        "30",
        "Days a finished webhook event (it holds phone numbers) and its tries are kept in the delivery log.",
    )
    webhook_poll_s: float = setting(
        "VOCALCAST_WEBHOOK_POLL_S", non_negative_float, "1", "How often the outbox is read for due events."
    )

    def _check_webhooks(self) -> None:
        if not 0 < self.webhook_timeout_s <= 60:
            raise SettingsError("VOCALCAST_WEBHOOK_TIMEOUT_S: expected seconds in (0, 60]")
        if not 0 < self.webhook_retry_base_s <= self.webhook_retry_max_s:
            raise SettingsError(
                "VOCALCAST_WEBHOOK_RETRY_BASE_S: must be positive and at most VOCALCAST_WEBHOOK_RETRY_MAX_S"
            )
        if self.webhook_poll_s <= 0:
            raise SettingsError("VOCALCAST_WEBHOOK_POLL_S: must be positive")
