"""A SIPp carrier for the tests, and what its message trace says (issue 19): the one way the tests build a
traced carrier (tests/sipp/dialer_callees.xml by default, OPTIONS answered) and the one check of its view
of a send — never more dialogs open at once than its channels, nor more new calls in any second than its
pace allows, and, behind the Kamailio edge, every call from the edge's external socket and from the
media servers expected."""

from __future__ import annotations

from pathlib import Path

from engine.domain.trunkshare import burst
from engine.telephony.edge import Cluster
from lab.sipp import SippProcess
from tests.integration.dialing import SIPP_DIR
from tests.integration.test_carrier import _seconds, open_dialogs_at_most

CALLEES = SIPP_DIR / "dialer_callees.xml"
_RR_ANCHOR = "[last_CSeq:]\n      Contact:"


def traced_carrier(
    sip_port: int,
    media_port: int,
    workdir: Path,
    *,
    name: str,
    scenario: Path = CALLEES,
    trace: bool = True,
    record_route: bool = False,
) -> SippProcess:
    """The carrier (not started: `async with`), answering OPTIONS (a trunk's qualify), its messages
    traced. ``record_route``: its 180 and 200 copy the Record-Route, as a real carrier does behind a
    proxy (SIPp's scenario does not), so BYEs pass through Kamailio too."""
    if record_route:
        text = scenario.read_text()
        assert text.count(_RR_ANCHOR) == 2, scenario
        scenario = workdir / f"{scenario.stem}_rr.xml"
        scenario.write_text(
            text.replace(_RR_ANCHOR, "[last_CSeq:]\n      [last_Record-Route:]\n      Contact:")
        )
    return SippProcess(
        scenario,
        local_port=sip_port,
        media_port=media_port,
        workdir=workdir,
        trace_messages=trace,
        extra_args=["-aa"],
        name=name,
    )


def invites_in_a_second_at_most(sipp: SippProcess) -> int:
    """The most new calls (first INVITE of a Call-ID) the carrier received within any 1-second window."""
    seen: set[str] = set()
    times: list[float] = []
    for message in sipp.messages():
        if message.direction == "received" and message.method == "INVITE" and message.call_id not in seen:
            seen.add(message.call_id or "")
            times.append(_seconds(message.time))
    times.sort()
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def via_ports(sipp: SippProcess) -> tuple[set[str], set[int]]:
    """Of every new call the carrier received: the top Via's address (who sent it to the carrier) and
    the port in the second Via (the media server behind it)."""
    tops: set[str] = set()
    behind: set[int] = set()
    for m in sipp.messages():
        if m.direction == "received" and m.method == "INVITE":
            vias = [v for value in m.header_values("Via") for v in value.split(",")]
            tops.add(vias[0].split()[1].split(";")[0])
            behind.add(int(vias[1].split()[1].split(";")[0].rsplit(":", 1)[1]))
    return tops, behind


def check_the_carriers_view(
    sipp: SippProcess, *, channels: int, cps: float, edge: Cluster | None = None, every_node: bool = True
) -> None:
    """At most ``channels`` dialogs at once and ``cps`` (plus its burst) new calls in any second. Behind
    the edge (``edge``): every call came from Kamailio's external socket, and (``every_node``) from every
    media server of the cluster."""
    most_dialogs, most_invites = open_dialogs_at_most(sipp), invites_in_a_second_at_most(sipp)
    print(f"carrier saw at most {most_dialogs} dialogs and {most_invites} INVITEs in a second")
    assert most_dialogs <= channels
    assert most_invites <= cps + burst(cps)
    if edge is None:
        return
    tops, behind = via_ports(sipp)
    assert tops == {edge.edge.external}, tops
    if every_node:
        assert behind == {int(n.overrides["VOCALCAST_SIP_PORT"]) for n in edge.nodes}, behind
