"""A send (envoi): what a customer asked for, its states and the rules that hold whatever the channel
it came through (web, http.php, e-mail, API, CLI)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final, Literal
from uuid import UUID

from engine.domain.accounts import PARIS
from engine.domain.areas import METROPOLE
from engine.domain.callhours import Postponed, Postponement, postponement
from engine.domain.commercial import Excluded, Purpose
from engine.domain.numbers import Number
from engine.domain.outcomes import Outcome
from engine.domain.retries import RetryPolicy
from engine.errors import InvalidInput, VocalcastError

Origin = Literal["web", "http", "email", "api", "cli"]
ORIGINS: Final = ("web", "http", "email", "api", "cli")
MAX_COMMENT = 500


class SendStatus(StrEnum):
    scheduled = "scheduled"
    running = "running"
    paused = "paused"
    completed = "completed"
    cancelled = "cancelled"


# Which states each operator action may start from (issue: cancel before start; pause, resume or
# cancel while running; calls in progress always finish).
TRANSITIONS: Final[dict[str, tuple[frozenset[SendStatus], SendStatus]]] = {
    "pause": (frozenset({SendStatus.running}), SendStatus.paused),
    "resume": (frozenset({SendStatus.paused}), SendStatus.running),
    "cancel": (
        frozenset({SendStatus.scheduled, SendStatus.running, SendStatus.paused}),
        SendStatus.cancelled,
    ),
}

LABELS_FR: Final = {
    SendStatus.scheduled: "Programmé",
    SendStatus.running: "En cours",
    SendStatus.paused: "En pause",
    SendStatus.completed: "Terminé",
    SendStatus.cancelled: "Annulé",
}


def transition(action: str, current: SendStatus) -> SendStatus:
    """The state after ``action``, or InvalidInput ``send_state`` with a French reason."""
    allowed, target = TRANSITIONS[action]
    if current not in allowed:
        raise InvalidInput(
            "send_state",
            f"cannot {action} a send that is {current.value}",
            message_fr=f"Impossible : cet envoi est « {LABELS_FR[current].lower()} ».",
        )
    return target


@dataclass(frozen=True, slots=True)
class Target:
    """One number to call, with the contact it came from when there is one."""

    number: Number
    contact_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SendSpec:
    """A validated send, ready to be stored; the use case (engine/sends.py) builds it."""

    account_id: UUID
    message_id: UUID
    targets: tuple[Target, ...]
    origin: Origin
    greeting_message_id: UUID | None = None
    transfer_number: str | None = None
    sender_e164: str | None = None
    comment: str = ""
    start_at: datetime | None = None  # None: now
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    voicemail_drop: bool = False
    idempotency_key: str | None = None
    demo: bool = False
    purpose: Purpose = "information"
    stop_listed_skipped: int = 0  # numbers of the request left out: on a stop list

    def __post_init__(self) -> None:
        if not self.targets:
            raise InvalidInput(
                "no_recipient",
                "a send needs at least one number",
                message_fr="Indiquez au moins un numéro à appeler.",
            )
        if len({t.number.e164 for t in self.targets}) != len(self.targets):
            raise ValueError("targets must be distinct numbers")
        if self.origin not in ORIGINS:
            raise ValueError(f"unknown origin {self.origin!r}")
        if len(self.comment) > MAX_COMMENT:
            raise InvalidInput(
                "comment_too_long",
                f"comment longer than {MAX_COMMENT} characters",
                message_fr=f"La référence ne doit pas dépasser {MAX_COMMENT} caractères.",
            )
        if self.voicemail_drop:
            not_mobile = [t.number.e164 for t in self.targets if not t.number.is_mobile]
            if not_mobile:
                raise InvalidInput(
                    "drop_not_mobile",
                    f"voicemail drop asked for {len(not_mobile)} number(s) that are not mobiles",
                    message_fr="Le dépôt sur messagerie n'est possible que vers des mobiles.",
                )


def unique_targets(targets: Sequence[Target]) -> tuple[Target, ...]:
    """Each number once, at its first occurrence (a number in two chosen groups is called once)."""
    seen: set[str] = set()
    out = []
    for target in targets:
        if target.number.e164 not in seen:
            seen.add(target.number.e164)
            out.append(target)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a send is: per-outcome counts and what remains."""

    total: int
    done: int
    calling: int
    pending: int
    cancelled: int
    attempts: int
    credits_used: int
    outcomes: dict[str, int]

    @property
    def remaining(self) -> int:
        return self.pending + self.calling

    def estimated_end_s(self, elapsed_s: float) -> float | None:
        """Seconds until the end at the pace seen so far (None before the first result)."""
        if self.done == 0 or elapsed_s <= 0:
            return None
        return self.remaining * elapsed_s / self.done


# Idempotency keys are per account (UNIQUE (account_id, idempotency_key) in sql/0005).
IDEMPOTENCY_KEY_MAX_LENGTH: Final = 200

# The states in which a send may still call someone (a page keeps refreshing its progress).
UNFINISHED: Final = frozenset({SendStatus.scheduled, SendStatus.running, SendStatus.paused})


@dataclass(frozen=True, slots=True)
class Send:
    """A stored send, as every interface shows it."""

    id: UUID
    account_id: UUID
    message_id: UUID
    greeting_message_id: UUID | None
    transfer_number: str | None
    sender_e164: str | None
    comment: str
    origin: str
    status: SendStatus
    start_at: datetime
    deferred: bool
    retry: RetryPolicy
    voicemail_drop: bool
    demo: bool
    recipients_total: int
    credits_held: int
    credits_used: int
    code: str | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    purpose: Purpose = "information"
    stop_listed_skipped: int = 0  # numbers of the request left out: on a stop list ("liste d'opposition")


class IdempotencyKeyUsed(VocalcastError):
    """Another request with the same idempotency key stored its send first: that send is the answer."""

    code = "idempotency_key_used"
    message_fr = "Un envoi a déjà été créé avec cette clé d'idempotence."

    def __init__(self, send: Send) -> None:
        super().__init__(f"idempotency key already used by send {send.id}")
        self.send = send


@dataclass(frozen=True, slots=True)
class SendCounters:
    """How far a send is, from its own row: every recipient holds one credit until its final outcome
    (consumed or released), so what a running send still holds is what it has left to call."""

    id: UUID
    status: SendStatus
    total: int
    held: int
    used: int

    @property
    def done(self) -> int:
        if self.status is SendStatus.scheduled:
            return 0
        return self.total - self.held

    @property
    def percent(self) -> int:
        return 100 if self.status is SendStatus.completed else (100 * self.done) // max(self.total, 1)


WAIT_REASONS_FR: Final = {
    "no_route": "aucune ligne ne peut appeler ce numéro pour l'instant",
    "trunk_failure": "incident chez l'opérateur, l'appel sera repassé par une autre ligne",
    "daily_cap": "plafond de dépenses quotidien du compte atteint, appels repris le lendemain",
}


# Why the law keeps a recipient of a commercial send waiting, or left it out (engine/domain/commercial.py).
LAW_REASONS_FR: Final = {
    **{reason.value: reason.label_fr for reason in Postponed},
    **{reason.value: reason.label_fr for reason in Excluded},
}


def window_wait(purpose: Purpose, status: SendStatus, pending: int, now: datetime) -> Postponement | None:
    """A running commercial send with numbers still to call, at an instant outside the legal calling
    hours of metropolitan numbers (article D223-9): why its calls wait and until when — what its estimate
    says (issue 18). Overseas numbers follow their own time, told per recipient."""
    if purpose != "commercial" or status is not SendStatus.running or pending <= 0:
        return None
    return postponement(METROPOLE, now)


def window_wait_fr(wait: Postponement, now: datetime) -> str:
    """The customer's sentence for a send whose calls wait for the next window."""
    why = f"{wait.label_fr} — {wait.holiday_fr}" if wait.holiday_fr else wait.label_fr
    if wait.until is None:
        return f"Appels commerciaux en attente ({why})."
    local = wait.until.astimezone(PARIS)
    day = "aujourd'hui" if local.date() == now.astimezone(PARIS).date() else f"le {local:%d/%m/%Y}"
    return (
        f"Appels commerciaux en attente de la prochaine plage horaire légale ({why}) : reprise {day} à "
        f"{local:%H}h{local:%M} (heure de Paris ; les numéros d'outre-mer suivent leur propre heure)."
    )


def recipient_note_fr(
    *,
    state: str,
    outcome: str | None,
    attempts: int,
    wait_reason: str | None,
    next_attempt_at: datetime | None,
    last_outcome: str | None,
    now: datetime,
) -> str:
    """Why a recipient is where it is, in the customer's words: what it waits for and until when, or why
    it ended without being called (an incident, not the callee)."""

    def when(at: datetime) -> str:
        local = at.astimezone(PARIS)
        return f"{local:%H}h{local:%M}" if at.date() == now.date() else f"{local:%d/%m à %H}h{local:%M}"

    if state == "cancelled" and wait_reason == "no_international":
        return "Non appelé : les appels vers l'étranger ne sont plus autorisés sur le compte."
    law = LAW_REASONS_FR.get(wait_reason or "")
    if law is not None and state == "cancelled":
        return f"Non appelé : {law}."
    if law is not None and state == "pending" and next_attempt_at is not None and next_attempt_at > now:
        return f"En attente : {law}, appel possible à partir de {when(next_attempt_at)}."
    waiting = WAIT_REASONS_FR.get(wait_reason or "")
    if state == "pending" and waiting:
        return f"En attente : {waiting}."
    if state == "pending" and attempts > 0 and next_attempt_at is not None and next_attempt_at > now:
        known = last_outcome is not None and last_outcome in Outcome.__members__
        cause = Outcome(last_outcome).label_fr.lower() if known and last_outcome else "non joint"
        return f"Nouvel essai prévu à {when(next_attempt_at)} ({cause})."
    if state == "done" and waiting and outcome == Outcome.congestion.value and attempts == 0:
        return "Non appelé : " + waiting.split(",")[0] + " pendant trop longtemps."
    return ""
