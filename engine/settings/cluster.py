"""Several engines on one PostgreSQL (issue 19): heartbeats, takeover of a dead node, shared trunk limits."""

from __future__ import annotations

from dataclasses import dataclass

from engine.settings.fields import boolean, non_negative_float, setting, text


@dataclass(frozen=True)
class ClusterSettings:
    """Several engines on one PostgreSQL: heartbeats, takeover of a dead node, shared trunk limits."""

    # --- several engines on one PostgreSQL -------------------------------------------------------------
    node_heartbeat_s: float = setting(
        "VOCALCAST_NODE_HEARTBEAT_S",
        non_negative_float,
        "2",
        "How often each engine (node) writes its heartbeat into PostgreSQL and looks for dead nodes.",
    )
    node_dead_after_s: float = setting(
        "VOCALCAST_NODE_DEAD_AFTER_S",
        non_negative_float,
        "20",
        "A node silent for longer is declared dead by another, which fences it (raises its epoch) and "
        "takes its calls over; a node places no call once half of it has passed since its last heartbeat.",
    )
    cluster: bool = setting(
        "VOCALCAST_CLUSTER",
        boolean,
        "0",
        "Several engines share the trunks: each trunk's channels, calls per second and carrier pauses "
        "are taken from counters in PostgreSQL (off: each engine keeps them in its own memory).",
    )
    # --- the Kamailio edge (issue 19) --------------------------------------------------------------------
    sip_edge: str = setting(
        "VOCALCAST_SIP_EDGE",
        text,
        "",
        "host:port of the Kamailio edge's internal socket (empty: none, the trunks are this Asterisk's own). "
        "Set: every trunk's calls leave this node's Asterisk toward Kamailio, which relays them to the "
        "trunk's carrier (credentials and limits there), and inbound calls come from Kamailio only.",
    )
