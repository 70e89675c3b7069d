"""How an outbound call ended: the one outcome enum and the one table of rules attached to it.

Also the mapping from what Asterisk reports for an unanswered call (dial status, Q.850 cause, SIP code)
to an outcome, and the rule deciding whether a refused call may move to the next trunk. Calls that ended
while no engine followed them get theirs from their last stage: engine/domain/unobserved.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class Outcome(StrEnum):
    """The single final result of one attempt (one call to one number)."""

    listened = "listened"
    partial = "partial"
    not_confirmed = "not_confirmed"
    transferred = "transferred"
    voicemail = "voicemail"
    busy = "busy"
    no_answer = "no_answer"
    rejected = "rejected"
    unreachable = "unreachable"
    congestion = "congestion"
    failed = "failed"

    @property
    def rule(self) -> OutcomeRule:
        return OUTCOMES[self]

    @property
    def label_fr(self) -> str:
        return OUTCOMES[self].label_fr

    @property
    def retryable(self) -> bool:
        return OUTCOMES[self].retryable

    @property
    def consumes_credit(self) -> bool:
        return OUTCOMES[self].consumes_credit

    @property
    def success(self) -> bool:
        return OUTCOMES[self].success


@dataclass(frozen=True, slots=True)
class OutcomeRule:
    """What one outcome means for the customer, the dialer and the credits."""

    label_fr: str
    retryable: bool  # the dialer may call this number again, under the send's retry policy
    consumes_credit: bool  # the reserved credit is spent (else released at the end of the send)
    success: bool  # the message reached its target: counts as delivered in progress reports
    answered: bool  # the call was answered (answer-rate metrics per trunk)


# THE outcome table (the only one in the project). Credit is spent once the message started playing to a
# listener or a machine; retries are allowed only where calling again may reach someone who was not
# reached, never where the person heard (part of) the message or refused the call, nor for numbers that
# do not exist.
OUTCOMES: Mapping[Outcome, OutcomeRule] = MappingProxyType(
    {
        Outcome.listened: OutcomeRule(
            "Message écouté", retryable=False, consumes_credit=True, success=True, answered=True
        ),
        Outcome.partial: OutcomeRule(
            "Raccroché pendant le message",
            retryable=False,
            consumes_credit=True,
            success=False,
            answered=True,
        ),
        Outcome.not_confirmed: OutcomeRule(
            "Écoute non confirmée", retryable=True, consumes_credit=False, success=False, answered=True
        ),
        Outcome.transferred: OutcomeRule(
            "Transféré", retryable=False, consumes_credit=True, success=True, answered=True
        ),
        Outcome.voicemail: OutcomeRule(
            "Déposé sur répondeur", retryable=False, consumes_credit=True, success=True, answered=True
        ),
        Outcome.busy: OutcomeRule(
            "Occupé", retryable=True, consumes_credit=False, success=False, answered=False
        ),
        Outcome.no_answer: OutcomeRule(
            "Pas de réponse", retryable=True, consumes_credit=False, success=False, answered=False
        ),
        Outcome.rejected: OutcomeRule(
            "Appel refusé", retryable=False, consumes_credit=False, success=False, answered=False
        ),
        Outcome.unreachable: OutcomeRule(
            "Numéro inexistant ou invalide",
            retryable=False,
            consumes_credit=False,
            success=False,
            answered=False,
        ),
        Outcome.congestion: OutcomeRule(
            "Réseau saturé", retryable=True, consumes_credit=False, success=False, answered=False
        ),
        Outcome.failed: OutcomeRule(
            "Échec de l'appel", retryable=True, consumes_credit=False, success=False, answered=False
        ),
    }
)


class TransferOutcome(StrEnum):
    """How the second leg (the call centre reached with `9`) ended."""

    answered = "answered"
    busy = "busy"
    no_answer = "no_answer"
    failed = "failed"

    @property
    def label_fr(self) -> str:
        return TRANSFER_LABELS_FR[self]


TRANSFER_LABELS_FR: Mapping[TransferOutcome, str] = MappingProxyType(
    {
        TransferOutcome.answered: "Mis en relation",
        TransferOutcome.busy: "Ligne de transfert occupée",
        TransferOutcome.no_answer: "Pas de réponse au transfert",
        TransferOutcome.failed: "Échec du transfert",
    }
)


# --- Unanswered calls: SIP code, then Q.850 cause, then dial status -------------------------------------
#
# Precedence, and why: the SIP final response (ARI's `tech_cause`) is the most precise fact when we have
# it; Asterisk folds several SIP codes into one cause (401/403/407/603 all become cause 21). The Q.850
# cause comes next; the dial status last, because it is the coarsest (603 arrives as dialstatus NOANSWER
# in the lab, a 486 as BUSY). Generic causes (0 unknown, 16 normal clearing, 31 normal unspecified,
# 127 interworking, anything unmapped) say nothing about the callee, so they defer to the dial status.

_BY_SIP_CODE: Mapping[int, Outcome] = MappingProxyType(
    {
        486: Outcome.busy,  # Busy Here
        600: Outcome.busy,  # Busy Everywhere
        603: Outcome.rejected,  # Decline: the callee (or their phone) refused this call
        404: Outcome.unreachable,  # Not Found: no such subscriber
        604: Outcome.unreachable,  # Does Not Exist Anywhere
        410: Outcome.unreachable,  # Gone: the number was given up
        484: Outcome.unreachable,  # Address Incomplete: the number is malformed
        485: Outcome.unreachable,  # Ambiguous
        480: Outcome.no_answer,  # Temporarily Unavailable: phone off or not answered (lab: 480 after ringing)
        503: Outcome.congestion,  # Service Unavailable: the trunk or the network is overloaded
        429: Outcome.congestion,  # Too Many Requests: the carrier's rate limit
        # The trunk refused *us* (credentials, rights): Asterisk maps these to cause 21 "call rejected",
        # which would wrongly read as "the callee declined" and would never be retried.
        401: Outcome.failed,
        403: Outcome.failed,
        407: Outcome.failed,
        # Codec negotiation failed: our configuration, not the callee.
        488: Outcome.failed,
        606: Outcome.failed,
    }
)

_BY_CAUSE: Mapping[int, Outcome] = MappingProxyType(
    {
        17: Outcome.busy,  # user busy (486, 600)
        18: Outcome.no_answer,  # no user responding (408 after ringing)
        19: Outcome.no_answer,  # no answer: ring timeout on some paths, 480, 483
        # Subscriber absent: a mobile switched off or out of coverage. A temporary state, worth a retry,
        # and from the customer's point of view the person did not answer.
        20: Outcome.no_answer,
        # Call rejected. In the lab a SIP 603 arrives as cause 21 with dialstatus NOANSWER: we trust the
        # cause (finer) over the dial status and report `rejected`, which is not retried, so a person who
        # declines is not called again. Without a SIP code we cannot tell a 603 from a trunk's 401/403/407
        # (also cause 21); when the adapter passes ARI's tech_cause, _BY_SIP_CODE settles it first.
        21: Outcome.rejected,
        1: Outcome.unreachable,  # unallocated number (404, 485, 604)
        3: Outcome.unreachable,  # no route to destination (420): the network knows no way to this number
        22: Outcome.unreachable,  # number changed (410)
        28: Outcome.unreachable,  # invalid number format (484)
        34: Outcome.congestion,  # no circuit/channel available (503)
        38: Outcome.congestion,  # network out of order (500)
        41: Outcome.congestion,  # temporary failure (409)
        42: Outcome.congestion,  # switching equipment congestion
        44: Outcome.congestion,  # requested circuit/channel not available
    }
)

_BY_DIALSTATUS: Mapping[str, Outcome] = MappingProxyType(
    {
        "BUSY": Outcome.busy,
        "NOANSWER": Outcome.no_answer,  # includes the originate's own ring timeout (cause 0 or 19)
        "CONGESTION": Outcome.congestion,
        # Endpoint unavailable (trunk unqualified, transport or DNS error): an engine-side failure that a
        # later retry, or another trunk, may not hit.
        "CHANUNAVAIL": Outcome.failed,
    }
)


def classify_failed_dial(
    dialstatus: str | None, cause: int | None, sip_code: int | None, *, rang: bool = False
) -> Outcome:
    """Outcome of a call that was never answered.

    `rang` is true when a 180 or 183 was seen: a cause 0 after ringing is the ring timeout on the path
    where Asterisk reports no cause (lab: "a ring timeout arrives as cause 0 or 19 depending on the path").
    """
    if sip_code is not None:
        if sip_code == 408:
            # Request Timeout: after ringing, nobody answered; before any ringing, nothing answered our
            # INVITE at all (pjsip's own transaction timeout), which is a trunk failure.
            return Outcome.no_answer if rang else Outcome.failed
        by_sip = _BY_SIP_CODE.get(sip_code)
        if by_sip is not None:
            return by_sip
    if cause is not None:
        by_cause = _BY_CAUSE.get(cause)
        if by_cause is not None:
            return by_cause
    if dialstatus is not None:
        by_status = _BY_DIALSTATUS.get(dialstatus.strip().upper())
        if by_status is not None:
            return by_status
    if rang:
        # Ringing then a generic cause (0, 16, 127 after our CANCEL) with no usable dial status: the phone
        # rang and nobody picked up.
        return Outcome.no_answer
    # Nothing tells us the callee was reached: an engine or network failure, retryable.
    return Outcome.failed


def classify_transfer_failure(
    dialstatus: str | None, cause: int | None, sip_code: int | None
) -> TransferOutcome:
    """How a transfer leg that was never answered ended (busy, no answer, or any other failure)."""
    outcome = classify_failed_dial(dialstatus, cause, sip_code)
    if outcome is Outcome.busy:
        return TransferOutcome.busy
    if outcome is Outcome.no_answer:
        return TransferOutcome.no_answer
    return TransferOutcome.failed


# --- Trunk failover ---------------------------------------------------------------------------------------

# Causes meaning "this trunk or its network could not carry the call", as opposed to an answer about the
# callee (busy, unallocated, declined), which another trunk would only repeat.
_FAILOVER_CAUSES = frozenset({34, 38, 41, 42, 44})
# 5xx: the trunk or a gateway behind it failed; 408: nothing answered our INVITE; 401/403/407: this trunk
# refused our credentials or rights, another one may accept the call.
_FAILOVER_SIP_CODES = frozenset({401, 403, 407, 408, 429, 500, 502, 503, 504})
# CHANUNAVAIL: the endpoint could not be reached at all (unqualified, transport or DNS failure).
_FAILOVER_DIALSTATUSES = frozenset({"CONGESTION", "CHANUNAVAIL"})


def allows_failover(dialstatus: str | None, cause: int | None, sip_code: int | None, *, rang: bool) -> bool:
    """True when a refused call may be placed again at once through the next trunk.

    Only a refusal before any 180/183 qualifies: once the callee's phone may have rung, calling again
    through another trunk would ring them twice.
    """
    if rang:
        return False
    if dialstatus is not None and dialstatus.strip().upper() == "ANSWER":
        return False
    if sip_code is not None:
        # The SIP code, when known, is authoritative: a 486 folded into a generic cause must not fail over.
        return sip_code in _FAILOVER_SIP_CODES
    if cause is not None and cause in _FAILOVER_CAUSES:
        return True
    return dialstatus is not None and dialstatus.strip().upper() in _FAILOVER_DIALSTATUSES


def trunk_failure_reason(
    *,
    may_fail_over: bool,
    answered: bool,
    rang: bool,
    sip_code: int | None,
    cause: int | None,
    trunk_answered_at_all: bool | None,
) -> str | None:
    """Why a call failed through its trunk's fault rather than the callee's (None: the callee's side was
    reached, or nothing says otherwise). Trunk-side: a refusal before any ringing that another trunk may
    take (5xx, 408, 429, 401/403/407, a refused originate), or an INVITE the trunk never answered at all
    (``trunk_answered_at_all`` False: not even a 100 Trying came back). Callee-side results (486, 603, 404,
    480, ringing without an answer) never are."""
    if answered or rang:
        return None
    if may_fail_over:
        if sip_code is not None:
            return f"SIP {sip_code}"
        return f"cause {cause}" if cause else "refused before ringing"
    # Nothing came back (HEP saw no response at all) and Asterisk ended the call as unanswered (18/19, or no
    # cause): a busy or rejected end (17, 21...) proves an answer came, however late its HEP copy arrives.
    if trunk_answered_at_all is False and cause in NO_RESPONSE_CAUSES:
        return "no response to the INVITE"
    return None


NO_RESPONSE_CAUSES = frozenset({None, 18, 19})  # no user responding, no answer (Q.850)
