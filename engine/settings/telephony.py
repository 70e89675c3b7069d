"""Asterisk, SIP and RTP, and the engine's call limits and timings."""

from __future__ import annotations

from dataclasses import dataclass

from engine.domain.preamble import opt_out_key as opt_out_key_name
from engine.settings.fields import non_negative_float, port, positive_int, setting, text


@dataclass(frozen=True)
class TelephonySettings:
    """Asterisk, SIP and RTP, and the engine's call limits and timings."""

    # --- Asterisk --------------------------------------------------------------------------------
    ari_port: int = setting("VOCALCAST_ARI_PORT", port, "18088", "Asterisk HTTP/ARI port (127.0.0.1).")
    # Issue 19: the IVR of another host fetches recordings through this Asterisk's ARI.
    ari_bind: str = setting(
        "VOCALCAST_ARI_BIND",
        text,
        "127.0.0.1",
        "Asterisk HTTP/ARI bind address (another host's IVR fetches recordings there; keep it private).",
    )
    ari_user: str = setting("VOCALCAST_ARI_USER", text, "vocalcast", "ARI user name.")
    ari_password: str = setting(
        "VOCALCAST_ARI_PASSWORD",
        text,
        None,
        "ARI password (generated into the state dir on first stack up).",
        secret=True,
    )
    ari_pool_size: int = setting(
        "VOCALCAST_ARI_POOL_SIZE", positive_int, "50", "Concurrent HTTP connections to ARI."
    )
    ari_reconnect_max_s: float = setting(
        "VOCALCAST_ARI_RECONNECT_MAX_S",
        non_negative_float,
        "5",
        "Longest wait between two ARI websocket reconnect attempts.",
    )
    sip_bind: str = setting("VOCALCAST_SIP_BIND", text, "127.0.0.1", "PJSIP UDP transport bind address.")
    sip_port: int = setting("VOCALCAST_SIP_PORT", port, "5060", "PJSIP UDP transport port.")
    sip_external_address: str = setting(
        "VOCALCAST_SIP_EXTERNAL_ADDRESS", text, "", "Public signalling address behind NAT (empty: none)."
    )
    sip_external_media_address: str = setting(
        "VOCALCAST_SIP_EXTERNAL_MEDIA_ADDRESS", text, "", "Public media address behind NAT (empty: none)."
    )
    sip_t1_ms: int = setting(
        "VOCALCAST_SIP_T1_MS",
        positive_int,
        "500",
        "SIP timer T1 in ms: a request without any answer (a refresh to a dead phone, its BYE) fails after "
        "64 x T1 (tests shorten it).",
    )
    rtp_start: int = setting("VOCALCAST_RTP_START", port, "20000", "First RTP port.")
    rtp_end_override: str = setting(
        "VOCALCAST_RTP_END",
        text,
        "",
        "Last RTP port (default: twice the maximum channels and the recording line's calls, two ports each).",
    )
    agi_port: int = setting("VOCALCAST_AGI_PORT", port, "4573", "FastAGI server port.")
    # FastAGI across hosts (issue 19): where the engine listens, and where the dialplan reaches it.
    agi_bind: str = setting(
        "VOCALCAST_AGI_BIND", text, "127.0.0.1", "FastAGI server bind address (0.0.0.0: every interface)."
    )
    agi_host: str = setting(
        "VOCALCAST_AGI_HOST",
        text,
        "127.0.0.1",
        "Host the dialplan's AGI URL names: where Asterisk reaches the engine's FastAGI server.",
    )
    max_channels: int = setting(
        "VOCALCAST_MAX_CHANNELS", positive_int, "200", "Engine-wide maximum of simultaneous calls."
    )
    max_cps: float = setting(
        "VOCALCAST_MAX_CPS", non_negative_float, "50", "Engine-wide maximum of new calls per second."
    )
    max_recipients: int = setting(
        "VOCALCAST_MAX_RECIPIENTS", positive_int, "10000", "Most numbers in one send."
    )
    star_wait_s: float = setting(
        "VOCALCAST_STAR_WAIT_S", non_negative_float, "6", "How long the greeting waits for * after playing."
    )
    transfer_ring_timeout_s: float = setting(
        "VOCALCAST_TRANSFER_RING_TIMEOUT_S",
        non_negative_float,
        "30",
        "How long the call centre's line may ring on a transfer (touche 9).",
    )
    transfer_max_s: float = setting(
        "VOCALCAST_TRANSFER_MAX_S", non_negative_float, "1800", "Longest transferred conversation."
    )
    ring_timeout_s: float = setting(
        "VOCALCAST_RING_TIMEOUT_S", non_negative_float, "30", "How long an outbound call may ring."
    )
    # French law (issue 18): the opt-out key of commercial calls.
    opt_out_key: str = setting(
        "VOCALCAST_OPT_OUT_KEY",
        opt_out_key_name,
        "0",
        "The key a commercial call announces in its preamble: pressing it puts the number on the account's "
        "stop list, thanks the callee and ends the call (one of 0-8 or #).",
    )
