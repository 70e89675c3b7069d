"""Trunk routing (engine/domain/routing.py): healthy trunks only, priority then load, pooling, failover-only
trunks, routes by destination — and the route classes the dialer claims with."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.domain.routing import RouteClass, TrunkLoad, pick_trunk, plan, route_prefixes
from engine.errors import InvalidInput

MOBILE = "+33612345678"
FIXED = "+33172360170"
REUNION = "+262692123456"


def trunk(name: str, priority: int = 100, **kw: object) -> TrunkLoad:
    values: dict[str, object] = {"active": 0, "max_channels": 10, "tokens": 5, **kw}
    return TrunkLoad(name, priority, **values)  # type: ignore[arg-type]


def matches(cls: RouteClass, e164: str) -> bool:
    # The pattern is for PostgreSQL's regex engine; the subset we write (^, (?!…), (?:…|…), \+) reads
    # the same in Python's (the claim's test reads it in PostgreSQL).
    return cls.pattern == "" or re.match(cls.pattern, e164) is not None


def first_class(classes: list[RouteClass], e164: str) -> RouteClass | None:
    return next((c for c in classes if matches(c, e164)), None)


def test_route_keywords_and_prefixes() -> None:
    assert route_prefixes(["mobile"]) == ("+336", "+337")
    assert route_prefixes(["+3369", "mobile", "+3369"]) == ("+3369", "+336", "+337")
    assert route_prefixes([]) == ()
    for bad in ["mobiles", "0612", "+0", "+33 6", "+33\n6", "+336;x"]:
        with pytest.raises(InvalidInput):
            route_prefixes([bad])


def test_priority_then_load_and_pooling() -> None:
    assert pick_trunk([trunk("b", 20), trunk("a", 10)], MOBILE) == "a"
    assert pick_trunk([trunk("a", 10, active=10), trunk("b", 20)], MOBILE) == "b"  # full: pooling
    assert pick_trunk([trunk("a", 10, tokens=0), trunk("b", 20)], MOBILE) == "b"  # no token: pooling
    assert pick_trunk([trunk("a", 10, active=4), trunk("b", 10, active=2)], MOBILE) == "b"  # share
    assert pick_trunk([trunk("a", 10)], MOBILE, exclude=frozenset({"a"})) is None


def test_unhealthy_trunks_never_take_a_call() -> None:
    assert pick_trunk([trunk("a", 10, healthy=False), trunk("b", 20)], MOBILE) == "b"
    assert pick_trunk([trunk("a", 10, healthy=False)], MOBILE) is None  # wait rather than fail


def test_failover_only_trunk_waits_for_every_higher_trunk_to_be_unhealthy() -> None:
    main = trunk("main", 10, active=10)  # healthy but full
    spare = trunk("spare", 20, failover_only=True)
    assert pick_trunk([main, spare], MOBILE) is None  # full is not unhealthy: wait
    assert pick_trunk([trunk("main", 10, healthy=False), spare], MOBILE) == "spare"
    # A healthy higher trunk that cannot carry the number does not hold the spare back.
    fixed_only = trunk("main", 10, prefixes=("+331",))
    assert pick_trunk([fixed_only, spare], MOBILE) == "spare"


def test_routes_by_destination() -> None:
    mobiles = trunk("mob", 10, prefixes=route_prefixes(["mobile"]))
    fixed = trunk("fix", 10, prefixes=route_prefixes(["fixed"]))
    overseas = trunk("dom", 10, prefixes=route_prefixes(["overseas"]))
    trunks = [mobiles, fixed, overseas]
    assert pick_trunk(trunks, MOBILE) == "mob"
    assert pick_trunk(trunks, FIXED) == "fix"
    assert pick_trunk(trunks, REUNION) == "dom"
    assert pick_trunk([mobiles, fixed], REUNION) is None  # no trunk may carry it: it waits


def test_plan_classes_pool_and_exclude() -> None:
    mob = trunk("mob", 10, prefixes=("+336", "+337"), tokens=2)
    everything = trunk("all", 20, tokens=3)
    classes = plan([everything, mob])
    assert [c.trunks for c in classes] == [("mob", "mob"), ("all", "all", "all")]
    assert first_class(classes, MOBILE) == classes[0]
    assert first_class(classes, FIXED) == classes[1]
    # The mobile trunk is out of tokens: the lower level takes mobiles too (pooling).
    pooled = plan([everything, trunk("mob", 10, prefixes=("+336", "+337"), tokens=0)])
    assert [c.trunks for c in pooled] == [("all", "all", "all")]
    assert first_class(pooled, MOBILE) == pooled[0]


def test_plan_overflows_to_the_next_level_with_the_same_routes_within_a_cycle() -> None:
    # The preferred trunk has one token left this cycle: the next level's slots follow it in the same
    # class, so one cycle never waits on the slowest trunk (and the preferred one still fills first).
    preferred, backup = trunk("pref", 10, tokens=1), trunk("backup", 20, tokens=3)
    [cls] = plan([backup, preferred])
    assert cls.trunks == ("pref", "backup", "backup", "backup")
    # A level with other routes in between keeps its rank: mobiles go pref, then all, then mob2.
    mob, mob2 = trunk("mob", 10, prefixes=("+336",), tokens=1), trunk("mob2", 30, prefixes=("+336",))
    classes = plan([mob, trunk("all", 20, tokens=2), mob2])
    assert [c.trunks for c in classes] == [("mob",), ("all", "all")]
    assert first_class(classes, MOBILE) == classes[0]


def test_plan_shares_equal_priority_by_load() -> None:
    [cls] = plan([trunk("a", 10, active=6, tokens=3), trunk("b", 10, active=0, tokens=3)])
    assert cls.trunks[:3] == ("b", "b", "b") or cls.trunks.count("b") == 3
    assert sorted(cls.trunks) == ["a", "a", "a", "b", "b", "b"]


def test_plan_keeps_failover_only_trunks_for_what_healthy_trunks_cannot_carry() -> None:
    spare = trunk("spare", 30, failover_only=True)
    full = trunk("main", 10, prefixes=("+331",), active=10)  # healthy, full, fixed lines only
    classes = plan([full, spare])
    assert [c.trunks[0] for c in classes] == ["spare"]
    assert first_class(classes, FIXED) is None  # the main trunk is only full: fixed lines wait
    assert first_class(classes, MOBILE) == classes[0]


loads = st.builds(
    TrunkLoad,
    name=st.sampled_from(["a", "b", "c", "d", "e"]),
    priority=st.sampled_from([10, 20, 30]),
    active=st.integers(0, 5),
    max_channels=st.integers(1, 5),
    tokens=st.integers(0, 3),
    healthy=st.booleans(),
    failover_only=st.booleans(),
    prefixes=st.sampled_from([(), ("+336", "+337"), ("+331",), ("+262",), ("+3361",)]),
)
numbers = st.sampled_from([MOBILE, FIXED, REUNION, "+33611111111", "+33712345678", "+33912345678"])


def unique(trunks: list[TrunkLoad]) -> list[TrunkLoad]:
    return list({t.name: t for t in trunks}.values())


@given(st.lists(loads, max_size=5).map(unique), numbers)
def test_plan_and_pick_agree_and_never_use_an_unhealthy_trunk(trunks: list[TrunkLoad], e164: str) -> None:
    by_name = {t.name: t for t in trunks}
    classes = plan(trunks)
    used: dict[str, int] = {}
    for cls in classes:
        for name in cls.trunks:
            used[name] = used.get(name, 0) + 1
    for name, count in used.items():
        assert by_name[name].healthy and count <= by_name[name].room
    matching = [c for c in classes if matches(c, e164)]
    assert len(matching) <= 1  # classes never compete for a number
    picked = pick_trunk(trunks, e164)
    if matching:
        # Every trunk of the class carries the number and is allowed to take it.
        for name in set(matching[0].trunks):
            t = by_name[name]
            assert t.carries(e164)
            if t.failover_only:
                assert not any(
                    o.healthy and not o.failover_only and o.priority < t.priority and o.carries(e164)
                    for o in trunks
                )
        assert picked is not None
        assert by_name[picked].priority <= min(by_name[n].priority for n in matching[0].trunks)
        # Slots in priority order, and no trunk that may take the number now is ranked below a worse one.
        ranks = [by_name[n].priority for n in matching[0].trunks]
        assert ranks == sorted(ranks)
        for t in trunks:
            may_take = t.room > 0 and t.carries(e164) and t.healthy and not t.failover_only
            if may_take and t.name not in matching[0].trunks:
                assert t.priority >= max(ranks), (t, matching[0])
    if picked is not None:
        assert by_name[picked].healthy and by_name[picked].room > 0 and by_name[picked].carries(e164)
