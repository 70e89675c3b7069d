"""Caller identity of each call (issue 18, engine/services/dialing/identity.py): PAI always the trunk's
--pai, the presented number in From, Privacy: id when hidden; the transfer leg presents the platform's
number with the callee in Diversion."""

from __future__ import annotations

from engine.domain.trunks import Trunk
from engine.services.dialing.identity import caller_ids

CARRIER = Trunk(name="op", host="sbc.example.net", pai_number="0162000000", number_format="national")
PAI = "PJSIP_HEADER(add,P-Asserted-Identity)"


def test_presented_number_in_from_and_the_carriers_number_in_pai() -> None:
    caller, _ = caller_ids(CARRIER, "+33948000001", "+33612345678")
    assert (caller.number, caller.hidden) == ("0948000001", False)  # From, as the trunk writes numbers
    headers = caller.variables()
    assert headers[PAI] == "<sip:0162000000@sbc.example.net>"
    assert "PJSIP_HEADER(add,Privacy)" not in headers
    assert headers["CONNECTEDLINE(pres,i)"] == "allowed_passed_screen"


def test_hidden_calls_carry_privacy_id_with_the_pai() -> None:
    caller, _ = caller_ids(CARRIER, None, "+33612345678")
    headers = caller.variables()
    assert caller.hidden and headers["CALLERID(pres)"] == "prohib"
    assert headers[PAI] == "<sip:0162000000@sbc.example.net>"
    assert headers["PJSIP_HEADER(add,Privacy)"] == "id"


def test_transfer_leg_presents_the_platform_and_names_the_callee_in_diversion() -> None:
    _, transfer = caller_ids(CARRIER, "+33948000001", "+33612345678")
    headers = transfer.variables()
    assert (transfer.number, transfer.hidden) == ("0162000000", False)
    assert headers[PAI] == "<sip:0162000000@sbc.example.net>"
    assert (
        headers["PJSIP_HEADER(add,Diversion)"] == "<sip:0612345678@sbc.example.net>;reason=unknown;counter=1"
    )


def test_from_domain_is_the_identity_host_and_a_trunk_without_pai_keeps_chan_pjsips_headers() -> None:
    signed = Trunk(name="op", host="192.0.2.1", pai_number="0162000000", from_domain="voice.example.fr")
    assert caller_ids(signed, None, "+33612345678")[0].variables()[PAI].endswith("@voice.example.fr>")
    bare = Trunk(name="demo", host="127.0.0.1")
    caller, transfer = caller_ids(bare, "+33948000001", "+33612345678")
    assert PAI not in caller.variables() and caller.number == "+33948000001"
    assert transfer.number == "+33612345678" and "PJSIP_HEADER(add,Diversion)" not in transfer.variables()
