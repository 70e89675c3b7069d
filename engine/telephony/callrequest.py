"""What the dialer asks of the telephony adapter for one call: the request, the caller ID it presents,
and the one error that forbids resending it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from engine.domain.callplan import CallPlan
from engine.domain.trunks import DEFAULT_CODECS
from engine.telephony.ari import AriUnavailable


class OriginateUncertain(AriUnavailable):
    """The originate request may or may not have reached Asterisk: reconcile, never resend."""


class OriginateWithheld(Exception):
    """The caller's last check before the request failed (a node whose lease ran out): nothing was sent."""


@dataclass(frozen=True)
class CallerId:
    """What the INVITE presents. Hidden: presentation prohibited (Privacy: id), with the identity
    the trunk operator vouches for in P-Asserted-Identity.

    ``asserted``: the number P-Asserted-Identity carries whatever From presents (the trunk's --pai,
    issue 18), written by us (the trunk then has send_pai = no: chan_pjsip would copy From); ``host`` its
    URI's host. ``diverted_from``: a Diversion header naming that number (the transfer leg: the callee).
    """

    number: str | None
    hidden: bool
    asserted: str | None = None
    host: str = ""
    diverted_from: str | None = None

    def ari_caller_id(self) -> str | None:
        return f'"" <{self.number}>' if self.number else None

    def variables(self) -> dict[str, str]:
        # chan_pjsip builds From, P-Asserted-Identity and Privacy from the channel's *connected line*
        # (which the originate's callerId fills, like the caller ID): CALLERID(pres) alone leaves the
        # number in From (lab, issue 6). `i`: set it without sending a connected-line update.
        # Hidden, the INVITE then says From: "Anonymous" <sip:anonymous@anonymous.invalid>,
        # Privacy: id, and P-Asserted-Identity: <sip:number@…> (trust_id_outbound=yes on the trunk).
        pres = "prohib" if self.hidden else "allowed_passed_screen"
        out = {"CALLERID(pres)": pres, "CONNECTEDLINE(pres,i)": pres}
        if self.asserted:
            out["PJSIP_HEADER(add,P-Asserted-Identity)"] = f"<sip:{self.asserted}@{self.host}>"
            if self.hidden:
                out["PJSIP_HEADER(add,Privacy)"] = "id"
        if self.diverted_from:
            out["PJSIP_HEADER(add,Diversion)"] = (
                f"<sip:{self.diverted_from}@{self.host}>;reason=unknown;counter=1"
            )
        return out


class LegSlots(Protocol):
    """The trunk's channels and pace, for the second leg of a call (the transfer to the call centre)."""

    async def acquire(self) -> bool:
        """Take a channel and a token of the trunk for the leg (and the account's place, when it has a cap
        on simultaneous transfers); False when there is none to spare now."""
        ...

    def release(self) -> None:
        """The leg is gone: its channel is free again."""
        ...


@dataclass(frozen=True)
class CallRequest:
    attempt_id: str  # a UUID: becomes the channel id (ids that prefix each other collide)
    endpoint: str  # PJSIP/<number as the trunk wants it>@<trunk>
    trunk: str
    plan: CallPlan
    caller_id: CallerId
    ring_timeout_s: float
    callee_number: str = ""  # E.164, for logs (masked) and the transfer leg's caller ID
    # Endpoint and caller ID of the transfer leg, from the transfer number.
    transfer_endpoint: Callable[[str], str] | None = None
    transfer_caller_id: CallerId | None = None
    variables: dict[str, str] = field(default_factory=dict)
    codecs: tuple[str, ...] = DEFAULT_CODECS  # the trunk's, offered in its order
    transfer_slots: LegSlots | None = None  # None: the transfer leg is not counted (tests)
