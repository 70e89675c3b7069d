"""Issue 19, pure parts: cdr_pgsql follows VOCALCAST_DATABASE_URL; a trunk's shared counters grant no
more than its channels, pace and fair share allow; a dispatch's wants fit its free slots."""

from __future__ import annotations

from pathlib import Path

from engine.domain.trunkshare import burst, grant
from engine.services.dialing.trunkshare import keep, within
from engine.settings import Settings
from engine.stack.asterisk import cdr_database


def test_cdr_pgsql_writes_to_the_database_the_engine_uses(tmp_path: Path) -> None:
    local = Settings.from_env({"VOCALCAST_STATE_DIR": str(tmp_path), "VOCALCAST_PG_PORT": "25432"})
    assert cdr_database(local) == ("127.0.0.1", 25432, "vocalcast")
    remote = Settings.from_env({"VOCALCAST_DATABASE_URL": "postgresql://vc:pw@db.internal:6432/calls"})
    assert cdr_database(remote) == ("db.internal", 6432, "calls")
    default_port = Settings.from_env({"VOCALCAST_DATABASE_URL": "postgresql://vc@10.0.0.7/vocalcast"})
    assert cdr_database(default_port) == ("10.0.0.7", 5432, "vocalcast")
    socket = Settings.from_env({"VOCALCAST_DATABASE_URL": "postgresql:///vc?host=/run/postgresql&port=5433"})
    assert cdr_database(socket) == ("/run/postgresql", 5433, "vc")


def test_a_grant_never_exceeds_channels_pace_or_pause() -> None:
    common = {"rate": 10.0, "elapsed_s": 0.0, "paused": False}
    assert grant(5, max_channels=6, legs_in_use=4, tokens=9.0, **common).calls == 2  # channels
    assert grant(5, max_channels=60, legs_in_use=0, tokens=1.5, **common).calls == 1  # tokens
    refilled = grant(5, max_channels=60, legs_in_use=0, tokens=0.0, rate=10.0, elapsed_s=10.0, paused=False)
    assert refilled.calls == 2 and refilled.tokens == burst(10.0) - 2  # saves up no more than its burst
    assert (
        grant(5, max_channels=60, legs_in_use=0, tokens=9.0, rate=10.0, elapsed_s=0, paused=True).calls == 0
    )
    assert grant(5, max_channels=6, legs_in_use=9, tokens=9.0, **common).calls == 0  # never negative


def test_while_another_node_waits_a_node_holds_its_fair_share_at_most() -> None:
    common = {"tokens": 50.0, "rate": 0.0, "elapsed_s": 0.0, "paused": False}
    assert grant(6, max_channels=6, legs_in_use=2, mine=2, wanting=1, **common).calls == 1  # 3 of 6
    assert grant(6, max_channels=6, legs_in_use=2, mine=2, wanting=0, **common).calls == 4
    assert grant(6, max_channels=7, legs_in_use=0, mine=0, wanting=2, **common).calls == 3  # ceil(7/3)


def test_a_dispatch_asks_for_its_free_slots_best_class_first_and_keeps_what_it_got() -> None:
    rooms = [["a", "a", "b"], ["c", "c"]]
    assert within(rooms, 4) == {"a": 2, "b": 1, "c": 1}
    assert keep(rooms, {"a": 1, "c": 2}) == [["a"], ["c", "c"]]
