"""Who a call says it is from (issue 18): P-Asserted-Identity is always a number the trunk's carrier
vouches for (its --pai), the presented number goes in From, a hidden call carries Privacy: id with that
PAI; the transfer leg (key 9) presents the platform's number and names the callee in a Diversion header.
A trunk without --pai keeps chan_pjsip's own identity headers (PAI copied from From)."""

from __future__ import annotations

from engine.domain.numbers import format_for_trunk
from engine.domain.trunks import Trunk
from engine.telephony.callrequest import CallerId


def caller_ids(trunk: Trunk, presented_e164: str | None, callee_e164: str) -> tuple[CallerId, CallerId]:
    """(the call's caller ID, its transfer leg's) on this trunk; ``presented_e164`` None: hidden."""

    def wire(e164: str) -> str:
        return format_for_trunk(e164, trunk.number_format)

    pai, host = trunk.pai_number, trunk.from_domain or trunk.host
    if presented_e164:
        caller = CallerId(wire(presented_e164), hidden=False, asserted=pai, host=host)
    else:
        caller = CallerId(pai, hidden=True, asserted=pai, host=host)
    if pai:
        transfer = CallerId(pai, hidden=False, asserted=pai, host=host, diverted_from=wire(callee_e164))
    else:
        transfer = CallerId(wire(callee_e164), hidden=False)  # no platform number: the callee's own
    return caller, transfer
