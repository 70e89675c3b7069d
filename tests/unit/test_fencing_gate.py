"""A node woken fenced touches Asterisk no more (issue 19): before an ARI request a node whose lease ran out
beats first (engine/services/dialing/membership.py confirm), and once fenced its ARI client refuses every
request (engine/telephony/ari.py) and its calls are dropped (on_fenced)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest

from engine.services.dialing import membership as membership_module
from engine.services.dialing.adoption import CDR_CLOCK_SLACK_S, Adoption, AdoptionHost, Cdr
from engine.services.dialing.membership import Membership
from engine.settings import Settings
from engine.store import Database
from engine.store.nodes import Beat
from engine.telephony.ari import AriClient, AriFenced
from engine.telephony.calls import CallService


def _membership(beats: list[Beat | None], dropped: list[str]) -> Membership:
    settings = cast(Settings, SimpleNamespace(node_dead_after_s=2.0, node_heartbeat_s=0.3))

    async def on_fenced() -> None:
        dropped.append("calls")

    m = Membership(settings, cast(Database, None), node="alpha", app="vocalcast-alpha", on_fenced=on_fenced)
    m.epoch = 1
    return m


@pytest.fixture
def beats(monkeypatch: pytest.MonkeyPatch) -> list[Beat | None]:
    answers: list[Beat | None] = []

    async def beat(_db: Any, _node: str, _epoch: int) -> Beat | None:
        return answers.pop(0)

    monkeypatch.setattr(membership_module.nodes_store, "beat", beat)
    return answers


async def test_a_current_lease_lets_a_request_through_without_a_heartbeat(beats: list[Beat | None]) -> None:
    m = _membership(beats, [])
    m.lease_until = time.monotonic() + 1
    await m.confirm()  # no beat queued: a heartbeat here would fail the test
    assert not m.fenced


async def test_a_node_woken_with_its_lease_run_out_beats_and_learns_it_was_fenced(
    beats: list[Beat | None],
) -> None:
    dropped: list[str] = []
    m = _membership(beats, dropped)
    m.lease_until = time.monotonic() - 5  # frozen past its lease
    beats.append(None)  # its epoch was raised meanwhile
    with pytest.raises(AriFenced):
        await m.confirm()
    assert m.fenced and m.state == "fenced"
    assert dropped == ["calls"]  # its calls dropped before the request was refused
    with pytest.raises(AriFenced):
        await m.confirm()  # and every later request refused, without a heartbeat
    assert dropped == ["calls"]


async def test_a_node_woken_still_holding_its_epoch_goes_on(beats: list[Beat | None]) -> None:
    m = _membership(beats, [])
    m.lease_until = time.monotonic() - 5
    beats.append(Beat(draining=False))
    await m.confirm()
    assert not m.fenced and m.may_call()


async def test_a_fenced_ari_client_refuses_every_request_and_connection() -> None:
    ari = AriClient(host="127.0.0.1", port=1, user="u", password="p", app="vocalcast-alpha")
    await ari.fence()
    # No session was opened: any network use would raise something else than AriFenced.
    with pytest.raises(AriFenced):
        await ari.hangup("some-channel")
    with pytest.raises(AriFenced):
        await ari._listen(lambda _event: None)


async def test_the_gate_runs_before_every_request() -> None:
    ari = AriClient(host="127.0.0.1", port=1, user="u", password="p", app="vocalcast-alpha")

    async def gate() -> None:
        raise AriFenced("fenced")

    ari.gate = gate
    with pytest.raises(AriFenced):
        await ari.play("some-channel", "p1", "sound:x")


async def test_every_channel_a_node_creates_carries_its_name_and_epoch_for_the_edge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What Kamailio checks before relaying an INVITE (docker/kamailio/kamailio.cfg, route[FENCE]): the
    originate's SIP headers name the node and its current epoch; none before the node joined (the edge
    then refuses the call)."""
    m = _membership([], [])
    ari = AriClient(host="127.0.0.1", port=1, user="u", password="p", app="vocalcast-alpha")
    ari.originate_headers = m.edge_headers
    sent: list[dict[str, Any]] = []

    async def request(method: str, path: str, **kwargs: Any) -> dict[str, str]:
        sent.append({"method": method, "path": path, **kwargs})
        return {}

    monkeypatch.setattr(ari, "request", request)
    await ari.originate(endpoint="PJSIP/1@t", channel_id="c1", variables={"VC_APP": "vocalcast-alpha"})
    m.epoch = 7  # it rejoined (a restart): the next channel carries the new epoch
    await ari.originate(endpoint="PJSIP/2@t", channel_id="c2", context="ctx", originator="c1")
    m.epoch = None
    await ari.originate(endpoint="PJSIP/3@t", channel_id="c3")
    assert [s["body"] for s in sent] == [
        {
            "variables": {
                "VC_APP": "vocalcast-alpha",
                "PJSIP_HEADER(add,X-VC-Node)": "alpha",
                "PJSIP_HEADER(add,X-VC-Epoch)": "1",
            }
        },
        {"variables": {"PJSIP_HEADER(add,X-VC-Node)": "alpha", "PJSIP_HEADER(add,X-VC-Epoch)": "7"}},
        None,
    ]


def test_a_foster_takes_as_never_placed_only_a_channel_surely_created_after_the_takeover() -> None:
    """A channel of the taken-over node created after its epoch was raised dialled the edge with the old
    epoch: refused, never placed. Both times on PostgreSQL's clock; a channel that may be older than the
    takeover (within the CDR's slack), or was answered, keeps its CDR's outcome."""
    fenced_at = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
    t = fenced_at.timestamp()
    foster = Adoption(
        cast(Settings, None),
        cast(Database, None),
        cast(AriClient, None),
        cast(CallService, None),
        cast(AdoptionHost, None),
        node="beta",
        app="vocalcast-alpha",
        fenced_at=fenced_at,
    )
    refused = foster._refused_at_the_edge
    assert refused(Cdr("NO ANSWER", None, t + 3.0, started_at=t + CDR_CLOCK_SLACK_S + 0.1))
    assert not refused(Cdr("NO ANSWER", None, t + 3.0, started_at=t + CDR_CLOCK_SLACK_S - 0.1))
    assert not refused(Cdr("ANSWERED", t + 4.0, t + 9.0, started_at=t + 3.0))
    assert not refused(None)
    dialer = Adoption(
        cast(Settings, None),
        cast(Database, None),
        cast(AriClient, None),
        cast(CallService, None),
        cast(AdoptionHost, None),
        node="beta",
    )
    assert not dialer._refused_at_the_edge(Cdr("NO ANSWER", None, t + 3.0, started_at=t + 9.0))
