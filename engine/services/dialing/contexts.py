"""Each send's call plan as this engine dials it (its SendContext): made once per send and engine, from the
send's row and the settings — the message and greeting as Asterisk plays them, the transfer number checked
again at dial time, the account's transfer caps, and for a commercial send the spoken preamble and opt-out
key (issue 18)."""

from __future__ import annotations

import dataclasses
from uuid import UUID

import structlog

from engine.domain.callplan import CallPlan, DropMode
from engine.domain.numbers import Refusal, normalize
from engine.domain.preamble import opt_out_text, preamble_text
from engine.errors import InvalidInput
from engine.media.paths import prompt_uri, sound_uri
from engine.media.spoken import spoken
from engine.services.dialing.attempt import SendContext
from engine.settings import Settings
from engine.store import Database
from engine.store import attempts as attempts_store

log = structlog.get_logger(__name__)


class SendContexts:
    """The call plans of the sends this engine dials, kept until the send completes (``forget``)."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._contexts: dict[UUID, SendContext] = {}

    def forget(self, send_id: UUID) -> None:
        self._contexts.pop(send_id, None)

    async def get(self, send_id: UUID) -> SendContext:
        context = self._contexts.get(send_id)
        if context is not None:
            return context
        row = await attempts_store.dial_context(self.db, send_id)
        if row is None:
            raise RuntimeError(f"send {send_id} vanished")
        media = self.settings.media_dir
        message = sound_uri(self.settings, media / row.audio_stem)
        greeting = sound_uri(self.settings, media / row.greeting_stem) if row.greeting_stem else None
        transfer_max_s = self.settings.transfer_max_s
        if row.account_transfer_max_s is not None:
            transfer_max_s = min(transfer_max_s, row.account_transfer_max_s)
        plan = CallPlan(
            message=message,
            greeting=greeting,
            transfer_number=transfer_number(row),
            drop_mode=DropMode.amd if row.voicemail_drop else DropMode.none,
            transfer_wait_media=prompt_uri(self.settings, "transfer_wait"),
            transfer_apology_media=prompt_uri(self.settings, "transfer_failed"),
            star_wait_s=self.settings.star_wait_s,
            transfer_ring_timeout_s=self.settings.transfer_ring_timeout_s,
            transfer_max_s=transfer_max_s,
            # A lost event is caught by the deadline of the stage it left the call in (ringing: the ring
            # timeout; a playback: its medium's length; plus a margin), rather than by a cap on the call.
            ring_timeout_s=self.settings.ring_timeout_s,
            message_s=row.message_duration_s or None,
            greeting_s=row.greeting_duration_s or None,
        )
        if row.purpose == "commercial":
            plan = await self._commercial(plan, row.company_name)
        cap = row.account_max_transfers
        context = SendContext(
            send_id,
            row.account_id,
            plan,
            row.sender_e164,
            row.retry,
            row.demo,
            transfer_cap=self.settings.account_max_transfers if cap is None else cap,
        )
        self._contexts[send_id] = context
        return context

    async def preamble_ready(self, send_id: UUID) -> bool:
        """A commercial call never starts without its preamble: it is made before any claim (the
        context is kept), and a send whose preamble cannot be made waits, its recipients untouched."""
        try:
            await self.get(send_id)
        except (OSError, RuntimeError, InvalidInput) as exc:
            log.error("send.preamble_failed", send_id=str(send_id), error=str(exc))
            return False
        return True

    async def _commercial(self, plan: CallPlan, company: str | None) -> CallPlan:
        """A commercial call opens with who calls and the opt-out key (issue 18), spoken by our voice."""
        key = self.settings.opt_out_key
        media = self.settings.media_dir
        preamble = await spoken(media, preamble_text(company, key))
        thanks = await spoken(media, opt_out_text(company))
        return dataclasses.replace(
            plan,
            preamble=sound_uri(self.settings, preamble.path),
            preamble_s=preamble.duration_s,
            opt_out_key=key,
            opt_out_media=sound_uri(self.settings, thanks.path),
            opt_out_s=thanks.duration_s,
        )


def transfer_number(context: attempts_store.DialContext) -> str | None:
    """The send's transfer number, checked again at dial time: an account that lost the international
    option since the send was created transfers to French numbers only (touche 9 stays silent)."""
    number = context.transfer_number
    if number is None or context.allow_international:
        return number
    checked = normalize(number, allow_international=False)
    if isinstance(checked, Refusal):
        log.warning("dialer.transfer_dropped", reason=checked.code, send_account=str(context.account_id))
        return None
    return number
