"""Trunk rows on the real PostgreSQL, and their rendering into PJSIP config."""

from __future__ import annotations

import pytest

from engine.domain.trunks import Trunk
from engine.errors import InvalidInput, NotFound
from engine.store import Database
from engine.store.trunks import list_trunks, remove_trunk, upsert_trunk


async def test_trunks_round_trip_and_update(db: Database) -> None:
    await upsert_trunk(db, Trunk(name="opa", host="192.0.2.10", priority=10))
    await upsert_trunk(
        db,
        Trunk(
            name="opb",
            host="sip.example.net",
            auth="digest",
            username="u",
            password="p",
            number_format="national",
            max_cps=2.5,
            priority=20,
        ),
    )
    await upsert_trunk(db, Trunk(name="opa", host="192.0.2.11", priority=10))  # update, not a second row
    trunks = await list_trunks(db)
    assert [t.name for t in trunks] == ["opa", "opb"]
    assert trunks[0].host == "192.0.2.11"
    assert trunks[1] == Trunk(
        name="opb",
        host="sip.example.net",
        auth="digest",
        username="u",
        password="p",
        number_format="national",
        max_cps=2.5,
        priority=20,
    )


async def test_bad_trunk_is_refused_and_nothing_is_written(db: Database) -> None:
    with pytest.raises(InvalidInput) as err:
        await upsert_trunk(db, Trunk(name="bad", host="host;evil=1"))
    assert err.value.code == "trunk_host"
    with pytest.raises(InvalidInput):
        await upsert_trunk(db, Trunk(name="x", host="192.0.2.1", auth="register"))
    assert await list_trunks(db) == []


async def test_remove_unknown_trunk(db: Database) -> None:
    with pytest.raises(NotFound):
        await remove_trunk(db, "nope")
