"""Recordings by phone: what the recording IVR (ivr/) needs from the engine — the personal-code check
under its lockout, and saving a recording into the account's library (a greeting waits for the
customer's confirmation on the site, and an e-mail tells the customer).

Personal-code guessing defence: a caller number that types ``ivr_lockout_failures`` wrong codes within
``ivr_lockout_window_s`` is blocked for ``ivr_lockout_s`` (the failure that reaches the limit blocks, not
the one before). When all callers together fail more than ``ivr_global_failures_per_min`` times a
minute (the line's guess budget is spent), the code checks of unknown callers wait longer, in proportion;
a caller number that typed a right code before (``ivr_known_callers``) keeps its pace, and a hidden number
is never known. While the budget is spent, at most ``ivr_unknown_calls_when_spent`` calls of unknown
callers may be checking codes at once, every engine together (a place each, a lease in PostgreSQL): the
next unknown caller hears that the line is busy before any code check; a known caller is never refused.
Nobody is locked out. The counts live in PostgreSQL, shared by every engine process and
kept across restarts. ``vocalcast_ivr_guess_budget_spent`` on /metrics is the alert.
"""

from __future__ import annotations

import time
from pathlib import Path
from uuid import UUID

import structlog

from engine import mailer
from engine.domain.accounts import CODE_DIGITS, PARIS, Message
from engine.domain.recordings import (
    ANONYMOUS,
    GLOBAL_WINDOW_S,
    budget_spent,
    can_be_locked_out,
    masked_caller,
    needs_a_place,
    place_lease_s,
    throttle_delay_s,
)
from engine.errors import NotFound
from engine.metrics import Metrics
from engine.services.background import Background
from engine.services.messages import Messages
from engine.settings import Settings
from engine.store import accounts as accounts_store
from engine.store import ivr as store
from engine.store.db import Database

log = structlog.get_logger(__name__)


class Recordings:
    """The recording IVR's backend (ivr.recording.Backend)."""

    def __init__(self, db: Database, settings: Settings, messages: Messages) -> None:
        self._db = db
        self._settings = settings
        self._messages = messages
        self._background = Background()
        self._secret_key = settings.require("secret_key")
        self._window_s = settings.ivr_lockout_window_s
        self._max_failures = settings.ivr_lockout_failures
        self._lockout_s = settings.ivr_lockout_s
        self._global_per_min = settings.ivr_global_failures_per_min
        self._throttle_max_s = settings.ivr_throttle_max_s
        self._known_s = settings.ivr_known_caller_days * 86400.0
        self._places = settings.ivr_unknown_calls_when_spent
        self._lease_s = place_lease_s(
            settings.ivr_digit_timeout_s, CODE_DIGITS + 1, settings.ivr_throttle_max_s
        )
        self._metrics: Metrics | None = None
        # The last count of every caller's wrong codes in the last minute, and when it was taken.
        self._recent_failures = 0
        self._measured_at = float("-inf")

    def watch(self, metrics: Metrics) -> None:
        """Report the guess budget and the wrong codes on the engine's /metrics."""
        self._metrics = metrics
        metrics.ivr_guess_budget_spent.set_function(lambda: 1.0 if self.budget_spent() else 0.0)

    def budget_spent(self) -> bool:
        """Whether every caller's wrong codes in the last minute reach the budget. A count older than the
        window tells nothing any more: no code was checked since, so no wrong code was typed either."""
        if time.monotonic() - self._measured_at > GLOBAL_WINDOW_S:
            return False
        return self._recent_failures >= self._global_per_min

    # --- the lockout ----------------------------------------------------------------------------------
    async def is_blocked(self, caller: str) -> bool:
        if not can_be_locked_out(caller):
            return False
        return await store.blocked_until(self._db, caller) is not None

    async def record_failure(self, caller: str) -> bool:
        """Count a wrong code (the global budget counts every caller's); True when this one blocked the
        caller, which a hidden number never is."""
        count = await store.record_failure(
            self._db,
            caller,
            window_s=self._window_s,
            max_failures=self._max_failures if can_be_locked_out(caller) else None,
            lockout_s=self._lockout_s,
        )
        self._recent_failures += 1
        if self._metrics is not None:
            self._metrics.ivr_wrong_codes.inc()
        if count.blocked:
            log.warning(
                "ivr.caller_blocked",
                caller=masked_caller(caller),
                failures=count.failures,
                until=count.blocked_until.isoformat() if count.blocked_until else None,
            )
        return count.blocked

    async def throttle_delay_s(self, caller: str) -> float:
        """How long the caller's next code check waits: 0 while the budget holds, or for a known caller."""
        recent = await store.recent_failures(self._db, window_s=GLOBAL_WINDOW_S)
        self._recent_failures, self._measured_at = recent, time.monotonic()
        delay = throttle_delay_s(recent, self._global_per_min, self._throttle_max_s)
        if not delay:
            return 0.0
        if caller != ANONYMOUS and await store.is_known_caller(self._db, caller, within_s=self._known_s):
            log.info("ivr.known_caller_keeps_pace", caller=masked_caller(caller), failures_last_min=recent)
            return 0.0
        if self._metrics is not None:
            self._metrics.ivr_slowed_checks.inc()
        log.warning(
            "ivr.global_throttle", caller=masked_caller(caller), failures_last_min=recent, delay_s=delay
        )
        return delay

    async def admit(self, caller: str, call: str) -> bool:
        """Whether the call may check a code now: always while the budget holds and for a known caller;
        otherwise only holding (or renewing) one of the places for unknown callers. False: the line is
        busy for this caller, who is to be told so and hung up before any check."""
        recent = await store.recent_failures(self._db, window_s=GLOBAL_WINDOW_S)
        self._recent_failures, self._measured_at = recent, time.monotonic()
        if not budget_spent(recent, self._global_per_min):
            return True
        known = caller != ANONYMOUS and await store.is_known_caller(self._db, caller, within_s=self._known_s)
        if not needs_a_place(recent, self._global_per_min, caller=caller, known=known):
            return True
        if await store.claim_place(self._db, call, places=self._places, lease_s=self._lease_s):
            return True
        if self._metrics is not None:
            self._metrics.ivr_busy_unknown_calls.inc()
        log.warning(
            "ivr.busy_for_unknown_caller",
            caller=masked_caller(caller),
            failures_last_min=recent,
            places=self._places,
        )
        return False

    async def release(self, call: str) -> None:
        """The call checks no more codes: its place, if it held one, is free for the next caller."""
        await store.release_place(self._db, call)

    async def record_success(self, caller: str) -> None:
        """The caller typed a right code: its number keeps its pace from now on (a hidden one never does)."""
        if caller != ANONYMOUS:
            await store.remember_caller(self._db, caller)

    async def purge(self) -> int:
        """Forget what no rule looks at any more (failures out of every window, ended blocks)."""
        return await store.purge(
            self._db, keep_s=max(self._window_s, GLOBAL_WINDOW_S), known_keep_s=self._known_s
        )

    # --- the account and its library --------------------------------------------------------------------
    async def find_account(self, code: str) -> UUID | None:
        account = await accounts_store.find_by_code(self._db, code, secret_key=self._secret_key)
        return account.id if account is not None else None

    async def save(self, account_id: UUID, recording: Path, *, is_greeting: bool) -> Message:
        """Add the recording to the account's library. A greeting waits for the customer's confirmation on
        the site before it becomes the default greeting (a personal code may have been guessed or
        overheard: whoever typed it must not choose what the account's sends play first), and the
        customer is told by e-mail at once."""
        message = await self._messages.add(
            account_id, recording, origin="phone", is_greeting=is_greeting, greeting_pending=is_greeting
        )
        if is_greeting:
            self._background.start(self._mail_pending_greeting(account_id, message))
        return message

    async def settled(self) -> None:
        """Wait for the e-mails started so far."""
        await self._background.settled()

    async def _mail_pending_greeting(self, account_id: UUID, message: Message) -> None:
        try:
            account = await accounts_store.get_account(self._db, account_id)
        except NotFound:  # deleted meanwhile: nobody to tell
            return
        when = message.created_at.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")
        mail = mailer.compose(
            self._settings,
            to=account.email,
            subject="Un message d'accueil a été enregistré par téléphone",
            body=(
                "Bonjour,\n\n"
                f"Un message d'accueil (n° {message.ref}, « {message.title} ») a été enregistré le {when} "
                "par téléphone, avec le code personnel de votre compte.\n\n"
                "Il ne remplacera votre message d'accueil par défaut qu'après votre confirmation : "
                "écoutez-le dans votre espace privé, page « Messages enregistrés », puis confirmez-le ou "
                "ignorez-le. D'ici là, vos envois gardent leur message d'accueil actuel.\n\n"
                "Si vous n'êtes pas à l'origine de cet enregistrement, ne le confirmez pas, supprimez-le, "
                "et demandez un nouveau code personnel dans « Paramètres » : l'ancien ne servira plus.\n"
            ),
        )
        if await mailer.send(self._settings, mail):
            log.info("ivr.pending_greeting_mail_sent", account_id=str(account_id), ref=message.ref)
