"""The account's cap on simultaneous transfers (issue 17), around the trunk's own transfer leg."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from engine.services.dialing.attempt import AccountTransferLeg, AccountTransfers

ACCOUNT, OTHER = uuid.uuid4(), uuid.uuid4()


@dataclass
class FakeLeg:
    free: int = 10
    taken: list[bool] = field(default_factory=list)

    def acquire(self) -> bool:
        ok = self.free > 0
        self.free -= ok
        self.taken.append(ok)
        return ok

    def release(self) -> None:
        self.free += 1


def legs(transfers: AccountTransfers, trunk: FakeLeg, account: uuid.UUID, cap: int) -> AccountTransferLeg:
    return AccountTransferLeg(trunk, transfers, account, cap)  # type: ignore[arg-type]


def test_the_cap_holds_per_account_and_frees_on_release() -> None:
    transfers, trunk = AccountTransfers(), FakeLeg()
    first, second, third = (legs(transfers, trunk, ACCOUNT, 2) for _ in range(3))
    assert first.acquire() and second.acquire()
    assert not third.acquire()  # the third simultaneous transfer of the account is refused ...
    assert trunk.taken == [True, True]  # ... without taking a trunk channel
    assert legs(transfers, trunk, OTHER, 2).acquire()  # another account is not affected
    first.release()
    assert third.acquire()
    assert transfers.held(ACCOUNT) == 2


def test_a_full_trunk_gives_the_account_its_place_back() -> None:
    transfers, trunk = AccountTransfers(), FakeLeg(free=0)
    assert not legs(transfers, trunk, ACCOUNT, 1).acquire()
    assert transfers.held(ACCOUNT) == 0
    assert not legs(transfers, FakeLeg(), ACCOUNT, 0).acquire()  # cap 0: no transfer at all
