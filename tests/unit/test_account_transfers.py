"""The account's cap on simultaneous transfers (issue 17), around the trunk's own transfer leg. The places
themselves are counted in PostgreSQL (tests/store/test_cluster_caps.py); here, in memory."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from engine.services.dialing.attempt import AccountTransferLeg

ACCOUNT, OTHER = uuid.uuid4(), uuid.uuid4()


@dataclass
class FakeLeg:
    free: int = 10
    taken: list[bool] = field(default_factory=list)

    async def acquire(self) -> bool:
        ok = self.free > 0
        self.free -= ok
        self.taken.append(ok)
        return ok

    def release(self) -> None:
        self.free += 1


@dataclass
class Places:
    """transfers_store.hold/release in memory: attempt → account."""

    held: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)

    async def take(self, attempt_id: uuid.UUID, account_id: uuid.UUID, cap: int) -> bool:
        others = [a for at, a in self.held.items() if a == account_id and at != attempt_id]
        if len(others) >= cap:
            return False
        self.held[attempt_id] = account_id
        return True

    def give_back(self, attempt_id: uuid.UUID) -> None:
        self.held.pop(attempt_id, None)

    def of(self, account_id: uuid.UUID) -> int:
        return sum(a == account_id for a in self.held.values())


def legs(places: Places, trunk: FakeLeg, account: uuid.UUID, cap: int) -> AccountTransferLeg:
    return AccountTransferLeg(trunk, places, uuid.uuid4(), account, cap)  # type: ignore[arg-type]


async def test_the_cap_holds_per_account_and_frees_on_release() -> None:
    places, trunk = Places(), FakeLeg()
    first, second, third = (legs(places, trunk, ACCOUNT, 2) for _ in range(3))
    assert await first.acquire() and await second.acquire()
    assert not await third.acquire()  # the third simultaneous transfer of the account is refused ...
    assert trunk.taken == [True, True]  # ... without taking a trunk channel
    assert await legs(places, trunk, OTHER, 2).acquire()  # another account is not affected
    first.release()
    assert await third.acquire()
    assert places.of(ACCOUNT) == 2


async def test_a_full_trunk_gives_the_account_its_place_back() -> None:
    places = Places()
    assert not await legs(places, FakeLeg(free=0), ACCOUNT, 1).acquire()
    assert places.of(ACCOUNT) == 0
