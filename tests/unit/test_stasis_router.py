"""The Stasis router: each event goes to the call that owns it, in order, once."""

from __future__ import annotations

import asyncio

from engine.telephony.ari import Event
from engine.telephony.stasis import StasisRouter, event_keys


class Recorder:
    def __init__(self, fail_on: str | None = None) -> None:
        self.events: list[str] = []
        self.failed: Exception | None = None
        self.fail_on = fail_on

    async def on_event(self, event: Event) -> None:
        await asyncio.sleep(0)  # yield: ordering must hold across awaits
        if event["type"] == self.fail_on:
            raise RuntimeError("boom")
        self.events.append(event["type"])

    async def on_failure(self, exc: Exception) -> None:
        self.failed = exc


def test_event_keys_cover_channels_playbacks_bridges_and_dial_peers() -> None:
    assert event_keys({"type": "StasisStart", "channel": {"id": "c1"}}) == ["c1"]
    assert event_keys({"type": "Dial", "peer": {"id": "c2"}}) == ["c2"]
    assert event_keys({"type": "PlaybackFinished", "playback": {"target_uri": "channel:c3"}}) == ["c3"]
    assert event_keys({"type": "PlaybackStarted", "playback": {"target_uri": "bridge:b1"}}) == ["bridge:b1"]
    assert event_keys({"type": "ChannelEnteredBridge", "channel": {"id": "c4"}, "bridge": {"id": "b2"}}) == [
        "c4",
        "bridge:b2",
    ]


async def test_events_reach_their_call_in_order_and_aliases_share_the_queue() -> None:
    router = StasisRouter()
    orphans: list[Event] = []
    router.orphan_handler = orphans.append
    a, b = Recorder(), Recorder()
    route_a = router.attach("a", a)
    router.attach("b", b)
    router.alias(route_a, "a-transfer")
    for i in range(20):
        router.dispatch({"type": f"E{i}", "channel": {"id": "a" if i % 2 else "a-transfer"}})
    router.dispatch({"type": "B", "channel": {"id": "b"}})
    # An event naming both legs of one call reaches that call once.
    router.dispatch({"type": "Both", "channel": {"id": "a"}, "peer": {"id": "a-transfer"}})
    router.dispatch({"type": "StasisStart", "channel": {"id": "stranger"}})
    await router.close()
    assert a.events == [f"E{i}" for i in range(20)] + ["Both"]
    assert b.events == ["B"]
    assert [e["channel"]["id"] for e in orphans] == ["stranger"]
    assert router.active_calls == 0


async def test_a_failing_handler_ends_only_its_own_call() -> None:
    router = StasisRouter()
    bad, good = Recorder(fail_on="E1"), Recorder()
    router.attach("bad", bad)
    router.attach("good", good)
    for i in range(3):
        router.dispatch({"type": f"E{i}", "channel": {"id": "bad"}})
        router.dispatch({"type": f"E{i}", "channel": {"id": "good"}})
    await router.close()
    assert isinstance(bad.failed, RuntimeError)
    assert bad.events == ["E0"]
    assert good.events == ["E0", "E1", "E2"]
