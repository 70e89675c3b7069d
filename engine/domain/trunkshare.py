"""A trunk's limits held for the whole cluster (issue 19): how many of the calls a node asks for it may
place now, given the channels every node uses on the trunk, the trunk's shared token bucket and the
pause its carrier asked for. Pure: the store reads and writes the counters (engine/store/trunkshare.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def burst(rate: float) -> float:
    """What a trunk's shared bucket saves up at most: as each node's own (trunkpool.bucket)."""
    return max(2.0, rate * 0.1)


@dataclass(frozen=True, slots=True)
class Grant:
    calls: int  # the node may place this many calls on the trunk now
    tokens: float  # the bucket's tokens once they are taken


def grant(
    wanted: int,
    *,
    max_channels: int,
    legs_in_use: int,
    tokens: float,
    rate: float,
    elapsed_s: float,
    paused: bool,
    mine: int = 0,
    wanting: int = 0,
) -> Grant:
    """``legs_in_use``: every node's legs on the trunk (this node's included, ``mine``); ``tokens`` as
    last written, ``elapsed_s`` ago; ``rate`` calls per second (0: no pace); ``wanting``: how many other
    nodes asked for more than they got a moment ago — then this one holds at most its fair share of
    the channels (max_channels / the nodes that want, rounded up)."""
    if rate > 0:
        tokens = min(burst(rate), tokens + max(0.0, elapsed_s) * rate)
        by_pace = math.floor(tokens + 1e-9)
    else:
        by_pace = wanted
    room = max_channels - legs_in_use
    if wanting:
        room = min(room, -(-max_channels // (wanting + 1)) - mine)
    calls = 0 if paused else max(0, min(wanted, room, by_pace))
    return Grant(calls, tokens - calls if rate > 0 else tokens)
