"""The trunk pool: what the dialer knows of each trunk right now — whether Asterisk loaded it and its
OPTIONS pings answer, its circuit breaker and call quality, its legs in progress (our calls, their transfer
legs, and inbound calls to the recording number) and its pace (token buckets, and the engine-wide one) —
and, through engine.domain.routing, which trunk takes which call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.domain.breaker import Breaker, BreakerSettings, BreakerState
from engine.domain.pacing import TokenBucket
from engine.domain.quality import CallQuality, QualityRules, Verdict, judge
from engine.domain.routing import RouteClass, TrunkLoad, accepting, pick_trunk, plan
from engine.domain.trunks import Trunk

BURST_S = 0.1  # how much unused pacing a trunk may save up, in seconds of its rate (at least 2 calls)


def bucket(rate: float, now: float) -> TokenBucket:
    """A token bucket that saves up at most BURST_S worth of calls (at least two, so a cycle that comes a
    little late loses no pace): in any second a trunk limited to N calls per second places at most
    N + max(2, N x BURST_S) (a bucket of N allowed 2N)."""
    return TokenBucket(rate, max(2.0, rate * BURST_S), now=now)


@dataclass
class TrunkState:
    trunk: Trunk
    bucket: TokenBucket
    breaker: Breaker
    quality: CallQuality = field(default_factory=CallQuality)
    active: int = 0  # our legs on it: calls and their transfer legs
    inbound: set[str] = field(default_factory=set)  # channels of calls coming in on it
    loaded: bool = True  # Asterisk has its endpoint
    reachable: bool = True  # its OPTIONS pings answer (always true with qualify off)
    configured: bool = True  # still in the database (a removed trunk is kept while its calls run)
    verdict: Verdict = Verdict.ok
    verdict_reason: str = ""

    @property
    def legs(self) -> int:
        return self.active + len(self.inbound)

    def unhealthy_reason(self, now: float) -> str:
        """Why it may take no call now ('' when it may)."""
        if not self.configured:
            return "removed"
        if not self.trunk.enabled:
            return "disabled"
        if not self.loaded:
            return "not loaded by Asterisk"
        if not self.reachable:
            return "unreachable (OPTIONS)"
        if self.verdict is Verdict.cut:
            return f"out of routing: {self.verdict_reason}"
        if not self.breaker.allows(now):
            state = self.breaker.state(now)
            if state is BreakerState.open:
                return f"breaker open for {self.breaker.open_for_s(now):.0f} s: {self.breaker.reason}"
            return "breaker half-open: probe call in progress"
        return ""

    def load(self, now: float) -> TrunkLoad:
        t = self.trunk
        tokens = self.bucket.available(now)
        if self.breaker.state(now) is BreakerState.half_open:
            tokens = min(tokens, 1)  # exactly one probe
        return TrunkLoad(
            t.name,
            t.priority,
            self.legs,
            t.max_channels,
            tokens,
            healthy=not self.unhealthy_reason(now),
            failover_only=t.failover_only,
            prefixes=t.prefixes,
            presented=t.presented,
            demo=t.demo,
        )


class TrunkPool:
    def __init__(
        self,
        *,
        max_channels: int,
        max_cps: float,
        now: float,
        breaker: BreakerSettings | None = None,
        quality: QualityRules | None = None,
    ) -> None:
        self.trunks: dict[str, TrunkState] = {}
        self.max_channels = max_channels  # engine-wide
        self._global = bucket(max_cps, now) if max_cps > 0 else None
        self._breaker_settings = breaker or BreakerSettings()
        self._quality_rules = quality or QualityRules()

    @property
    def active(self) -> int:
        """Our calls in progress, all trunks together (the engine-wide channel limit)."""
        return sum(t.active for t in self.trunks.values())

    # --- what the trunks are -----------------------------------------------------------------------------
    def refresh(self, trunks: Iterable[Trunk], now: float) -> None:
        """The trunks as configured now; each keeps its counts, pace and breaker across refreshes. A trunk
        no longer configured stays (unroutable) while calls still run on it."""
        current = self.trunks
        fresh: dict[str, TrunkState] = {}
        for trunk in trunks:
            state = current.get(trunk.name)
            if state is None:
                state = TrunkState(trunk, bucket(trunk.max_cps, now), Breaker(self._breaker_settings))
            else:
                state.trunk = trunk
                state.configured = True
                if state.bucket.rate != trunk.max_cps:
                    state.bucket = bucket(trunk.max_cps, now)
            fresh[trunk.name] = state
        for name, state in current.items():
            if name not in fresh and state.legs:
                state.configured = False
                fresh[name] = state
        self.trunks = fresh

    def set_presence(self, name: str, *, loaded: bool | None = None, reachable: bool | None = None) -> bool:
        """What Asterisk says of the trunk now; True when it changes what the pool knew."""
        state = self.trunks.get(name)
        if state is None:
            return False
        before = (state.loaded, state.reachable)
        if loaded is not None:
            state.loaded = loaded
        if reachable is not None:
            state.reachable = reachable or not state.trunk.qualify
        return (state.loaded, state.reachable) != before

    # --- routing -------------------------------------------------------------------------------------------
    def loads(self, now: float) -> list[TrunkLoad]:
        return [t.load(now) for t in self.trunks.values()]

    def set_engine_rate(self, rate: float, now: float) -> None:
        """The engine's pace (its adaptive pace, under VOCALCAST_MAX_CPS)."""
        if self._global is not None and rate > 0 and rate != self._global.rate:
            self._global.set_rate(rate, now)

    def free_slots(self, now: float) -> int:
        """New calls the engine may place right now, all trunks together."""
        free = self.max_channels - self.active
        if self._global is not None:
            free = min(free, self._global.available(now))
        return max(0, free)

    def plan(self, now: float, *, presented: str | None = None) -> list[RouteClass]:
        """The route classes for calls presenting ``presented`` now (None: hidden)."""
        return plan(accepting(self.loads(now), presented))

    def pick(
        self, e164: str, now: float, exclude: frozenset[str] = frozenset(), *, presented: str | None = None
    ) -> str | None:
        """A trunk for one more call to ``e164`` presenting ``presented`` right now (a failover), ignoring
        pace: the caller waits for the trunk's token (``wait_for_token``)."""
        loads = [dataclasses.replace(load, tokens=1) for load in accepting(self.loads(now), presented)]
        return pick_trunk(loads, e164, exclude)

    def routable_prefixes(self, now: float) -> list[tuple[str, ...]] | None:
        """The prefixes the healthy trunks carry (None: some healthy trunk carries every number)."""
        healthy = [t.trunk.prefixes for t in self.trunks.values() if not t.unhealthy_reason(now)]
        if any(not p for p in healthy):
            return None
        return healthy

    def token_wait_s(self, now: float) -> float | None:
        """How long until the next token of a healthy trunk with a free channel (or of the engine)."""
        waits = [
            t.bucket.wait_s(now)
            for t in self.trunks.values()
            if t.legs < t.trunk.max_channels and not t.unhealthy_reason(now)
        ]
        if self._global is not None:
            waits.append(self._global.wait_s(now))
        positive = [w for w in waits if w > 0]
        return min(positive) if positive else None

    # --- legs ----------------------------------------------------------------------------------------------
    def take(self, name: str, now: float) -> bool:
        """A call claimed for ``name``: its channel, and its tokens (the trunk's and the engine's) when both
        are there. False: a failover took them since the plan; the call waits for them (wait_for_token)."""
        state = self.trunks[name]
        state.active += 1
        if self._token_wait_s(state, now) > 0:
            return False
        self._take_tokens(state, now)
        return True

    def take_slot(self, name: str) -> None:
        """A call already in progress on ``name`` (adopted after a restart): its channel only."""
        state = self.trunks.get(name)
        if state is not None:
            state.active += 1

    def release_slot(self, name: str) -> None:
        state = self.trunks.get(name)
        if state is not None and state.active > 0:
            state.active -= 1

    def take_leg(self, name: str, now: float) -> bool:
        """A second leg of a call in progress (the transfer to the call centre) through ``name``: a channel
        and a token when it has both, else False (the leg is not placed)."""
        state = self.trunks.get(name)
        if state is None or state.legs >= state.trunk.max_channels or not state.bucket.take(now):
            return False
        state.active += 1
        return True

    def inbound_started(self, name: str, channel_id: str) -> None:
        state = self.trunks.get(name)
        if state is not None:
            state.inbound.add(channel_id)

    def inbound_ended(self, channel_id: str) -> None:
        for state in self.trunks.values():
            state.inbound.discard(channel_id)

    async def wait_for_token(self, name: str) -> None:
        """Wait until ``name`` may place a call, then take its tokens: a failover (or a call whose tokens a
        failover took) keeps the trunk's pace and the engine's."""
        state = self.trunks[name]
        # Tokens come back with time, not with an event: sleep until the next one (at least a millisecond,
        # so a wait rounded down to nothing never spins).
        while (wait_s := self._token_wait_s(state, time.monotonic())) > 0:  # noqa: ASYNC110
            await asyncio.sleep(max(wait_s, 0.001))
        self._take_tokens(state, time.monotonic())

    def _token_wait_s(self, state: TrunkState, now: float) -> float:
        engine_wait_s = self._global.wait_s(now) if self._global is not None else 0.0
        return max(state.bucket.wait_s(now), engine_wait_s)

    def _take_tokens(self, state: TrunkState, now: float) -> None:
        state.bucket.take(now)
        if self._global is not None:
            self._global.take(now)
        state.breaker.on_call(now)

    # --- results -------------------------------------------------------------------------------------------
    def trunk_failed(self, name: str, now: float, reason: str, *, retry_after_s: float | None = None) -> None:
        state = self.trunks.get(name)
        if state is not None:
            state.breaker.on_failure(now, reason, retry_after_s=retry_after_s)

    def callee_reached(self, name: str, now: float, *, answered: bool, talk_s: float) -> None:
        """The call reached the callee's side, whatever they did: the trunk works."""
        state = self.trunks.get(name)
        if state is None:
            return
        state.breaker.on_success(now)
        state.quality.record(now, answered=answered, talk_s=talk_s)

    def judge_quality(self, now: float) -> list[tuple[str, Verdict, str]]:
        """Re-judge every trunk's call quality; the verdicts that changed (name, verdict, reason)."""
        recent = {name: t.quality.recent(now) for name, t in self.trunks.items()}
        history = {name: t.quality.history for name, t in self.trunks.items()}
        changed = []
        for name, (verdict, reason) in judge(recent, history, self._quality_rules).items():
            state = self.trunks[name]
            if verdict is not state.verdict:
                changed.append((name, verdict, reason))
            state.verdict, state.verdict_reason = verdict, reason
        return changed

    def stats(self, now: float) -> dict[str, dict[str, object]]:
        out: dict[str, dict[str, object]] = {}
        for name, t in self.trunks.items():
            recent = t.quality.recent(now)
            reason = t.unhealthy_reason(now)
            out[name] = {
                "active": t.active,
                "inbound": len(t.inbound),
                "max_channels": t.trunk.max_channels,
                "max_cps": t.trunk.max_cps,
                "usable": not reason,
                "unusable_reason": reason or None,
                "loaded": t.loaded,
                "reachable": t.reachable,
                "breaker": t.breaker.state(now).value,
                "breaker_reason": t.breaker.reason or None,
                "quality": t.verdict.value,
                "quality_reason": t.verdict_reason or None,
                "answer_rate": round(recent.asr, 3) if recent.calls else None,
                "answered_call_s": round(recent.acl_s, 1) if recent.answered else None,
            }
        return out
