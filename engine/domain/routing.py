"""Which trunk carries a call.

- Only a healthy trunk takes calls: loaded by Asterisk, reachable by its OPTIONS pings (or with qualify off),
  and its circuit breaker closed (or half-open with no probe in flight: then it takes exactly one call).
- A trunk limited to routes carries only numbers of those routes: number types (``mobile``, ``fixed``,
  ``overseas``) or E.164 prefixes (``+3369``). A trunk without routes carries every number.
- Among the trunks that may carry a number: the lowest priority number first, then the least loaded
  (trunks of equal priority share the calls); a lower priority level takes calls when the higher ones are
  full or out of tokens (pooling) — except a failover-only trunk, which takes a number only while every
  higher-priority trunk that could carry it is unhealthy.

- A call presenting a number goes only through a trunk whose carrier accepts that number (the trunk's
  ``presented`` list, issue 18: L221-17 and the carrier's own rules); a hidden call through any trunk.
  The demo trunk calls nobody: it accepts every number.

The dialer claims recipients per *route class*: the slots of trunks that carry the same numbers, each class
with the numbers no earlier class of this cycle takes (a regular expression on E.164, for the claim).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from engine.errors import InvalidInput

# French numbering (ARCEP): mobiles 06 and 07, geographic 01–05, non-geographic 09; the overseas
# departments and collectivities have country codes of their own in E.164.
ROUTE_KEYWORDS: Final = {
    "mobile": ("+336", "+337"),
    "fixed": ("+331", "+332", "+333", "+334", "+335", "+339"),
    "overseas": ("+262", "+269", "+508", "+590", "+594", "+596", "+681", "+687", "+689"),
}
_PREFIX: Final = re.compile(r"\+[1-9][0-9]{0,14}")


def route_prefixes(routes: Iterable[str]) -> tuple[str, ...]:
    """A trunk's routes as E.164 prefixes (keywords expanded, duplicates dropped); () carries every number.
    InvalidInput names the first route that is neither a keyword nor a prefix."""
    prefixes: list[str] = []
    for route in routes:
        expanded = ROUTE_KEYWORDS.get(route)
        if expanded is None:
            if not _PREFIX.fullmatch(route):
                raise InvalidInput(
                    "trunk_route",
                    f"trunk route {route!r}: expected mobile, fixed, overseas or an E.164 prefix like +3369",
                )
            expanded = (route,)
        prefixes += [p for p in expanded if p not in prefixes]
    return tuple(prefixes)


def carries(prefixes: Sequence[str], e164: str) -> bool:
    return not prefixes or e164.startswith(tuple(prefixes))


@dataclass(frozen=True, slots=True)
class TrunkLoad:
    """What routing knows of a trunk at one instant."""

    name: str
    priority: int
    active: int
    max_channels: int
    tokens: int  # new calls its pace allows right now
    healthy: bool = True  # loaded, reachable (or qualify off), breaker allows
    failover_only: bool = False
    prefixes: tuple[str, ...] = ()
    presented: tuple[str, ...] = ()  # E.164 numbers its carrier accepts in From (issue 18)
    demo: bool = False

    @property
    def room(self) -> int:
        """New calls it may take right now."""
        if not self.healthy:
            return 0
        return max(0, min(self.max_channels - self.active, self.tokens))

    def carries(self, e164: str) -> bool:
        return carries(self.prefixes, e164)

    def accepts(self, presented: str | None) -> bool:
        """May a call presenting ``presented`` (None: hidden) go through this trunk?"""
        return presented is None or self.demo or presented in self.presented


def accepting(trunks: Iterable[TrunkLoad], presented: str | None) -> list[TrunkLoad]:
    """The trunks a call presenting ``presented`` (None: hidden) may go through."""
    return [t for t in trunks if t.accepts(presented)]


def _usable_for(trunk: TrunkLoad, e164: str, trunks: Sequence[TrunkLoad]) -> bool:
    """May ``trunk`` take ``e164`` by the failover-only rule (health and room aside)?"""
    if not trunk.failover_only:
        return True
    return not any(
        t.healthy and not t.failover_only and t.priority < trunk.priority and t.carries(e164) for t in trunks
    )


def pick_trunk(trunks: Sequence[TrunkLoad], e164: str, exclude: frozenset[str] = frozenset()) -> str | None:
    """The trunk for one call to ``e164``, or None when no healthy trunk may take it right now."""
    candidates = [
        t
        for t in trunks
        if t.name not in exclude and t.room > 0 and t.carries(e164) and _usable_for(t, e164, trunks)
    ]
    if not candidates:
        return None
    best = min(candidates, key=lambda t: (t.priority, t.active / t.max_channels, t.active, t.name))
    return best.name


@dataclass(frozen=True, slots=True)
class RouteClass:
    """Slots of one claim: the numbers they may take (``pattern``, a PostgreSQL regex on E.164; '' for
    any) and one trunk per slot, in the order the claimed recipients get them."""

    pattern: str
    trunks: tuple[str, ...]


def plan(trunks: Sequence[TrunkLoad]) -> list[RouteClass]:
    """This cycle's route classes, best first: the slots of every healthy trunk with room, grouped by the
    numbers they may carry; each class excludes what an earlier class takes (pooling: a full trunk is not
    in the plan, so the next level takes its numbers)."""
    with_room = [t for t in trunks if t.room > 0]
    # Groups of trunks that share the calls: same priority, same routes, same failover rule.
    groups: dict[tuple[int, bool, tuple[str, ...]], list[TrunkLoad]] = {}
    for t in with_room:
        groups.setdefault((t.priority, t.failover_only, t.prefixes), []).append(t)
    classes: list[RouteClass] = []
    taken: list[tuple[str, ...]] = []  # prefixes of earlier classes (() = everything)
    # Regular trunks first, then the failover-only ones; each by priority.
    ordered = sorted(groups.items(), key=lambda group: (group[0][1], group[0][0]))
    pooled: set[tuple[int, bool, tuple[str, ...]]] = set()
    for key, members in ordered:
        priority, failover_only, prefixes = key
        if key in pooled:
            continue
        overflow = [] if failover_only else _overflow(key, [k for k, _ in ordered])
        pooled.update(overflow)
        excluded = list(taken)
        if failover_only:
            # Not for numbers a healthy higher-priority trunk carries, even when it is full.
            excluded += [
                t.prefixes for t in trunks if t.healthy and not t.failover_only and t.priority < priority
            ]
        if any(not p for p in excluded):
            continue  # an earlier class takes every number
        slots = _slots(members) + tuple(t for k in overflow for t in _slots(groups[k]))
        classes.append(RouteClass(_pattern(prefixes, [p for e in excluded for p in e]), slots))
        taken.append(prefixes)
        if not prefixes:
            break  # this class takes every number left: nothing below it gets one
    return classes


def _overflow(
    key: tuple[int, bool, tuple[str, ...]], ordered: list[tuple[int, bool, tuple[str, ...]]]
) -> list[tuple[int, bool, tuple[str, ...]]]:
    """The regular groups of lower priority with the same routes as ``key``, up to the first one with
    other routes (which must keep its rank): their slots follow this class's own. The n-th claimed
    number takes the n-th slot, so the preferred trunks fill first, and a cycle where they have one
    token left still gives the next level its own (one cycle never waits on the slowest trunk)."""
    priority, _, prefixes = key
    overflow = []
    for other in ordered:
        lower, failover_only, routes = other
        if failover_only or lower <= priority:
            continue
        if routes != prefixes:
            break
        overflow.append(other)
    return overflow


def _slots(members: list[TrunkLoad]) -> tuple[str, ...]:
    """Each member's room, interleaved least loaded first: trunks of one level share the calls."""
    active = {t.name: t.active for t in members}
    room = {t.name: t.room for t in members}
    capacity = {t.name: t.max_channels for t in members}
    slots: list[str] = []
    while any(room.values()):
        name = min((n for n in room if room[n]), key=lambda n: (active[n] / capacity[n], active[n], n))
        slots.append(name)
        room[name] -= 1
        active[name] += 1
    return tuple(slots)


def _pattern(prefixes: Sequence[str], excluded: Sequence[str]) -> str:
    """A regex on E.164 numbers: one of ``prefixes`` (any when empty) and none of ``excluded``."""

    def alternatives(values: Sequence[str]) -> str:
        return "|".join(re.escape(v) for v in sorted(set(values)))

    parts = ["^"]
    if excluded:
        parts.append(f"(?!{alternatives(excluded)})")
    if prefixes:
        parts.append(f"(?:{alternatives(prefixes)})")
    pattern = "".join(parts)
    return "" if pattern == "^" else pattern
