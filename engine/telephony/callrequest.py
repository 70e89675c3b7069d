"""What the dialer asks of the telephony adapter for one call: the request, the caller ID it presents,
and the one error that forbids resending it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.domain.callplan import CallPlan
from engine.domain.trunks import DEFAULT_CODECS
from engine.telephony.ari import AriUnavailable


class OriginateUncertain(AriUnavailable):
    """The originate request may or may not have reached Asterisk: reconcile, never resend."""


@dataclass(frozen=True)
class CallerId:
    """What the INVITE presents. Hidden: presentation prohibited (Privacy: id), with the identity
    the trunk operator vouches for in P-Asserted-Identity."""

    number: str | None
    hidden: bool

    def ari_caller_id(self) -> str | None:
        return f'"" <{self.number}>' if self.number else None

    def variables(self) -> dict[str, str]:
        # chan_pjsip builds From, P-Asserted-Identity and Privacy from the channel's *connected line*
        # (which the originate's callerId fills, like the caller ID): CALLERID(pres) alone leaves the
        # number in From (lab, issue 6). `i`: set it without sending a connected-line update.
        # Hidden, the INVITE then says From: "Anonymous" <sip:anonymous@anonymous.invalid>,
        # Privacy: id, and P-Asserted-Identity: <sip:number@…> (trust_id_outbound=yes on the trunk).
        pres = "prohib" if self.hidden else "allowed_passed_screen"
        return {"CALLERID(pres)": pres, "CONNECTEDLINE(pres,i)": pres}


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
