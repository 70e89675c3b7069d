"""Presented numbers per trunk (issue 18): a call presenting a number goes only through trunks whose
carrier accepts it; hidden calls through any; the demo trunk accepts all. And `trunk add` needs --pai."""

from __future__ import annotations

import argparse

import pytest

from engine.commands import trunk as trunk_command
from engine.domain.routing import TrunkLoad, accepting, pick_trunk, plan
from engine.domain.trunks import Trunk
from engine.errors import InvalidInput
from engine.services.dialing.trunkpool import TrunkPool

SENDER = "+33162000001"
OTHER = "+33162000002"
CALLEE = "+33612345678"


def load(name: str, priority: int = 100, **kw: object) -> TrunkLoad:
    values: dict[str, object] = {"active": 0, "max_channels": 10, "tokens": 5, **kw}
    return TrunkLoad(name, priority, **values)  # type: ignore[arg-type]


def test_only_trunks_listing_the_presented_number_carry_it() -> None:
    best = load("best", 1)  # the preferred trunk, whose carrier does not accept SENDER
    listed = load("listed", 5, presented=(SENDER, OTHER))
    demo = load("demo", 9, demo=True)
    trunks = [best, listed, demo]
    assert [t.name for t in accepting(trunks, SENDER)] == ["listed", "demo"]
    assert [t.name for t in accepting(trunks, "+33162000009")] == ["demo"]
    assert accepting(trunks, None) == trunks  # hidden: any trunk
    assert pick_trunk(accepting(trunks, SENDER), CALLEE) == "listed"
    assert pick_trunk(trunks, CALLEE) == "best"
    classes = plan(accepting(trunks, SENDER))
    assert classes[0].trunks[:5] == ("listed",) * 5  # then the demo trunk's slots (pooling)
    assert all("best" not in c.trunks for c in classes)


def test_the_pool_plans_and_fails_over_by_presented_number() -> None:
    pool = TrunkPool(max_channels=100, max_cps=0, now=0.0)
    pool.refresh(
        [
            Trunk(name="best", host="127.0.0.1", priority=1, qualify=False),
            Trunk(name="listed", host="127.0.0.2", priority=5, qualify=False, presented=(SENDER,)),
        ],
        0.0,
    )
    for name in ("best", "listed"):
        pool.trunks[name].configured = True
    assert pool.plan(1.0)[0].trunks[0] == "best"  # hidden calls: "best" first
    assert {t for c in pool.plan(1.0, presented=SENDER) for t in c.trunks} == {"listed"}
    assert pool.plan(1.0, presented=OTHER) == []
    assert pool.pick(CALLEE, 1.0, presented=SENDER) == "listed"
    assert pool.pick(CALLEE, 1.0, exclude=frozenset({"listed"}), presented=SENDER) is None


def test_a_presented_number_must_be_e164() -> None:
    Trunk(name="ok", host="192.0.2.1", presented=(SENDER,)).validate()
    with pytest.raises(InvalidInput) as bad:
        Trunk(name="ok", host="192.0.2.1", presented=("0162000001",)).validate()
    assert bad.value.code == "trunk_presented"


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    trunk_command.register(parser.add_subparsers())
    return parser.parse_args(["trunk", *argv])


def test_trunk_add_needs_a_pai_and_reads_presented_numbers(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = _args("add", "opera", "--host", "192.0.2.1")
    assert args.func(args) == 2
    assert "trunk add needs --pai NUMBER" in capsys.readouterr().err
    args = _args("add", "opera", "--host", "192.0.2.1", "--pai", "01 62 00 00 00", "--presented", "12")
    assert args.func(args) == 2
    assert "--presented '12' is not a phone number" in capsys.readouterr().err
    saved: list[Trunk] = []
    monkeypatch.setattr(trunk_command, "run_with_services", lambda run: saved.append(run) or None)
    args = _args(
        "add", "opera", "--host", "192.0.2.1", "--pai", "0162000000",
        "--presented", "01 62 00 00 01", "--presented", "+33162000002", "--presented", "0162000001",
    )  # fmt: skip
    identity = trunk_command._identity(args)
    assert identity == ("0162000000", (SENDER, OTHER))
