"""Call-backs of a presented number (FastAGI route "callback", issue 18): the caller hears who called
them and how to object; the opt-out key puts their number on that account's stop list, thanks them and
hangs up. A number none of our accounts presented sets VC_CALLBACK=unknown: the dialplan then plays the
unallocated-number announcement as before."""

from __future__ import annotations

from typing import Final, Protocol

import structlog

from engine.services.callbacks import CallBack
from ivr.fastagi import AGISession

log = structlog.get_logger(__name__)

ROUTE: Final = "callback"
KEY_WAIT_MS: Final = 5000  # after the announcement, how long the key is waited for


class Backend(Protocol):
    async def identify(self, dialled: list[str], caller_id: str | None) -> CallBack | None: ...

    async def stop(self, call: CallBack) -> None: ...


class _NoCallbacks:
    """No presented number is ours: every call-back hears the unallocated-number announcement."""

    async def identify(self, dialled: list[str], caller_id: str | None) -> CallBack | None:
        return None

    async def stop(self, call: CallBack) -> None:
        raise AssertionError("no call-back is ever identified")


NO_CALLBACKS: Final = _NoCallbacks()


class CallbackIVR:
    def __init__(self, backend: Backend, *, key_wait_ms: int = KEY_WAIT_MS) -> None:
        self._backend = backend
        self._key_wait_ms = key_wait_ms

    async def __call__(self, session: AGISession) -> None:
        # Arguments: the Request-URI's user part and the To header's, both filtered to digits and `+`.
        call = await self._backend.identify([a for a in session.args if a], session.caller_id)
        if call is None:
            await session.set_variable("VC_CALLBACK", "unknown")
            return
        await session.set_variable("VC_CALLBACK", "known")
        digit, _ = await session.stream_file(str(call.announcement), escape_digits=call.key)
        if not digit:
            digit = await session.wait_for_digit(self._key_wait_ms)
        if digit == call.key:
            await self._backend.stop(call)
            await session.stream_file(str(call.thanks))
        await session.hangup()
