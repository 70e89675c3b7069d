"""Prometheus metrics of one engine process (its own registry, so tests can run several engines)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls_in_progress = Gauge(
            "vocalcast_calls_in_progress", "Calls owned by this engine.", ["trunk"], registry=r
        )
        self.originates = Counter(
            "vocalcast_originates_total", "Originate requests sent to ARI.", ["trunk", "result"], registry=r
        )
        self.outcomes = Counter(
            "vocalcast_call_outcomes_total", "Ended attempts by outcome.", ["trunk", "outcome"], registry=r
        )
        self.sip_codes = Counter(
            "vocalcast_sip_responses_total",
            "Final SIP responses of failed originates.",
            ["trunk", "code"],
            registry=r,
        )
        self.answered = Counter(
            "vocalcast_calls_answered_total", "Attempts the callee answered.", ["trunk"], registry=r
        )
        self.ari_connected = Gauge(
            "vocalcast_ari_connected",
            "1 while the ARI events websocket is up and our Stasis app registered.",
            registry=r,
        )
        self.ari_reconnects = Counter("vocalcast_ari_reconnects_total", "ARI websocket losses.", registry=r)
        self.ari_events = Counter("vocalcast_ari_events_total", "ARI events received.", registry=r)
        self.loop_lag = Gauge(
            "vocalcast_event_loop_lag_seconds",
            "Largest event-loop lag over the last sampling window.",
            registry=r,
        )
        self.loop_lag_hist = Histogram(
            "vocalcast_event_loop_lag_sample_seconds",
            "Event-loop lag samples.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
            registry=r,
        )
        self.db_pool_size = Gauge(
            "vocalcast_db_pool_connections", "Database pool connections.", ["state"], registry=r
        )
        self.database_up = Gauge("vocalcast_database_up", "1 when PostgreSQL answers.", registry=r)
        self.trunk_usable = Gauge(
            "vocalcast_trunk_usable",
            "1 while the trunk may take calls (loaded, reachable, breaker closed, quality not cut).",
            ["trunk"],
            registry=r,
        )
        self.trunk_legs = Gauge(
            "vocalcast_trunk_legs",
            "Channels in use on the trunk (calls, transfers, inbound).",
            ["trunk"],
            registry=r,
        )
        self.trunk_failures = Counter(
            "vocalcast_trunk_failures_total",
            "Calls the trunk failed (never counted as a recipient's attempt).",
            ["trunk"],
            registry=r,
        )
        self.ivr_guess_budget_spent = Gauge(
            "vocalcast_ivr_guess_budget_spent",
            "1 while every caller's wrong personal codes in the last minute reach "
            "VOCALCAST_IVR_GLOBAL_FAILURES_PER_MIN (alert: codes are guessed; unknown callers slow down).",
            registry=r,
        )
        self.ivr_wrong_codes = Counter(
            "vocalcast_ivr_wrong_codes_total", "Wrong personal codes typed on the recording line.", registry=r
        )
        self.ivr_slowed_checks = Counter(
            "vocalcast_ivr_slowed_checks_total",
            "Code checks of unknown callers slowed down while the guess budget was spent.",
            registry=r,
        )
        self.ivr_busy_unknown_calls = Counter(
            "vocalcast_ivr_busy_unknown_calls_total",
            "Calls of unknown callers told the line is busy (every place of "
            "VOCALCAST_IVR_UNKNOWN_CALLS_WHEN_SPENT held while the guess budget was spent).",
            registry=r,
        )
        self.pace = Gauge(
            "vocalcast_dialer_pace_calls_per_second",
            "The engine's current pace (lowered while Asterisk answers slowly or refuses).",
            registry=r,
        )
