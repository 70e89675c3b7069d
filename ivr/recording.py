"""The recording IVR's conversation (FastAGI route "record"): personal code and #, main menu, record
after the beep, listen / validate / record again, then the reference said in French.

Nothing is saved before the caller validates, and then only through the message library (the same
conversion, normalisation and limits as an upload). The raw recording in Asterisk's spool is removed
whatever happens, hang-ups included, so a call that ends early leaves neither a row nor a file.

Where the raw recording is read from is the ``RawRecordings`` given: Asterisk's spool on this host
(``Spool``), or the ARI of the media server that recorded it (ivr.remote, issue 19), whose prompts and
spool directory the dialplan then tells (VC_SOUNDS, VC_RECORDINGS).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final, Literal, Protocol
from uuid import UUID

import structlog

from engine.domain.accounts import CODE_DIGITS, Message, is_code
from engine.domain.recordings import caller_key, masked_caller
from engine.domain.saynumber import MAX_SAYABLE, number_prompts
from engine.errors import ConfigurationError, InvalidInput, VocalcastError
from engine.settings import Settings
from ivr.fastagi import AGIError, AGIHangup, AGISession

log = structlog.get_logger(__name__)

# Prompt names (sounds/prompts.toml).
WELCOME: Final = "ivr_welcome"
BAD_CODE: Final = "ivr_bad_code"
GOODBYE: Final = "ivr_goodbye"
BLOCKED: Final = "ivr_blocked"
BUSY: Final = "ivr_busy"  # every place for unknown callers is held while the guess budget is spent
MAIN_MENU: Final = "ivr_main_menu"
RECORD: Final = "ivr_record"
REVIEW_MENU: Final = "ivr_menu"
SAVED_PREFIX: Final = "ivr_saved_prefix"
GREETING_SAVED: Final = "ivr_greeting_saved"
NOTHING_HEARD: Final = "ivr_nothing_heard"
INVALID_CHOICE: Final = "ivr_invalid_choice"

RECORD_FORMAT: Final = "wav"  # 8 kHz slin: what the message library converts best
# A recording shorter than this (samples at 8 kHz) is "nothing heard" at once: # pressed at the beep.
MIN_RECORDED_SAMPLES: Final = 1600
# The code is 8 digits then #: room for the 8 digits and the #, so that # ends GET DATA and is not left
# over to answer the next menu. More digits than that is a wrong code.
CODE_MAX_DIGITS: Final = CODE_DIGITS + 1

Step = Literal["blocked", "busy", "code", "main_menu", "record", "review", "save", "announce", "goodbye"]
Review = Literal["validate", "again"]


class Backend(Protocol):
    """What the conversation needs from the engine: the lockout, the accounts and the library."""

    async def is_blocked(self, caller: str) -> bool: ...

    async def record_failure(self, caller: str) -> bool:
        """Count a wrong code; True when this one blocked the caller."""
        ...

    async def throttle_delay_s(self, caller: str) -> float:
        """How long this caller's next code check waits (0 unless the line's guess budget is spent)."""
        ...

    async def admit(self, caller: str, call: str) -> bool:
        """Whether this call may check a code now (False: the line is busy for this unknown caller while
        the guess budget is spent); holds or renews the call's place when it needs one."""
        ...

    async def release(self, call: str) -> None:
        """The call checks no more codes: free its place, if it held one."""
        ...

    async def record_success(self, caller: str) -> None:
        """The caller typed a right code: remember its number."""
        ...

    async def find_account(self, code: str) -> UUID | None: ...

    async def save(self, account_id: UUID, recording: Path, *, is_greeting: bool) -> Message:
        """Add the recording to the account's library; InvalidInput when the audio is refused."""
        ...


@dataclass(frozen=True, slots=True)
class IvrOptions:
    """Timings and limits of the conversation, and where Asterisk reads our prompts (None: where the
    calling Asterisk's dialplan says, in VC_SOUNDS)."""

    prompts_dir: PurePosixPath | None
    code_tries: int = 3
    digit_timeout_s: float = 6.0
    record_max_s: float = 300.0
    greeting_max_s: float = 30.0  # a greeting's recording stops there: it can never be refused as too long
    silence_s: float = 5.0
    menu_rounds: int = 3  # a menu left unanswered (or answered wrongly) this many times in a row ends
    refused_recordings: int = 3  # recordings refused in a row ("nothing heard") before goodbye

    @classmethod
    def from_settings(cls, settings: Settings, prompts_dir: PurePosixPath | None) -> IvrOptions:
        return cls(
            prompts_dir=prompts_dir,
            code_tries=settings.ivr_code_tries,
            digit_timeout_s=settings.ivr_digit_timeout_s,
            record_max_s=settings.ivr_record_max_s,
            greeting_max_s=settings.greeting_max_s,
            silence_s=settings.ivr_silence_s,
        )

    @property
    def digit_timeout_ms(self) -> int:
        return max(1, round(self.digit_timeout_s * 1000))

    @property
    def record_max_ms(self) -> int:
        return max(1, round(self.record_max_s * 1000))

    @property
    def greeting_max_ms(self) -> int:
        return max(1, round(min(self.record_max_s, self.greeting_max_s) * 1000))

    @property
    def silence_whole_s(self) -> int | None:
        """RECORD FILE takes whole seconds of silence; 0 turns silence detection off."""
        return max(1, round(self.silence_s)) if self.silence_s > 0 else None


@dataclass(frozen=True, slots=True)
class Recording:
    """One raw recording: the path Asterisk writes (no extension) and the same file on our side (for a
    remote media server: where it is downloaded to); ``server`` is the media server that records it."""

    agi_path: str
    host_file: Path
    server: str = ""

    @property
    def name(self) -> str:
        return PurePosixPath(self.agi_path).name


def new_name() -> str:
    return f"ivr-{uuid.uuid4()}"


class RawRecordings(Protocol):
    """Where the raw recordings of a call are made and read back."""

    def serves(self, session: AGISession) -> bool:
        """Whether this call's recordings can be read back at all (its media server is known)."""
        ...

    async def new(self, session: AGISession) -> Recording:
        """Where the next recording of this call goes; VocalcastError when that cannot be known."""
        ...

    async def fetch(self, recording: Recording) -> Path | None:
        """The recording as a local file, or None when Asterisk wrote none."""
        ...

    async def discard(self, recording: Recording) -> None:
        """Remove the recording wherever it is (never raises)."""
        ...


class Spool:
    """Asterisk's recording spool, seen from Asterisk (``agi_dir``) and from the engine (``host_dir``)."""

    def __init__(self, agi_dir: PurePosixPath, host_dir: Path) -> None:
        self.agi_dir = agi_dir
        self.host_dir = host_dir

    def serves(self, session: AGISession) -> bool:
        return True

    def make(self) -> Recording:
        name = new_name()
        return Recording(str(self.agi_dir / name), self.host_dir / f"{name}.{RECORD_FORMAT}")

    async def new(self, session: AGISession) -> Recording:
        return self.make()

    async def fetch(self, recording: Recording) -> Path | None:
        return recording.host_file if recording.host_file.is_file() else None

    async def discard(self, recording: Recording) -> None:
        try:
            recording.host_file.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("ivr.recording_not_removed", path=str(recording.host_file), error=str(exc))

    def purge(self, older_than_s: float, now_s: float) -> int:
        """Remove raw recordings older than ``older_than_s`` (a call cut off by an engine stop leaves
        the file Asterisk kept writing); returns how many were removed. Blocking: run it in a thread."""
        removed = 0
        for path in self.host_dir.glob(f"ivr-*.{RECORD_FORMAT}"):
            try:
                if now_s - path.stat().st_mtime > older_than_s:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


Sleep = Callable[[float], Awaitable[None]]


class RecordingIVR:
    """The FastAGI handler: one ``_Call`` per connection."""

    def __init__(
        self, options: IvrOptions, backend: Backend, spool: RawRecordings, *, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.options = options
        self.backend = backend
        self.spool = spool
        self.sleep = sleep

    async def __call__(self, session: AGISession) -> None:
        await _Call(self, session).run()


class _Call:
    def __init__(self, ivr: RecordingIVR, session: AGISession) -> None:
        self.ivr = ivr
        self.options = ivr.options
        self.backend = ivr.backend
        self.session = session
        self.caller = caller_key(session.caller_id)
        self.call_id = uuid.uuid4().hex  # names the call's place for unknown callers, across engines
        self.step: Step = "code"
        self.prompts_dir = ivr.options.prompts_dir
        self.log = log.bind(
            channel=session.channel,
            uniqueid=session.env.get("agi_uniqueid"),
            caller=masked_caller(self.caller),
        )

    # --- the conversation ---------------------------------------------------------------------------

    async def run(self) -> None:
        self.log.info("ivr.call_started")
        if not self.ivr.spool.serves(self.session):
            # Nothing this call records could be read back: end it before the caller types anything.
            self.log.error("ivr.unknown_media_server", media=self.session.query.get("media", "")[:64])
            await self._hangup()
            return
        try:
            if self.prompts_dir is None:
                self.prompts_dir = PurePosixPath(await dialplan_dir(self.session, "VC_SOUNDS"))
            account_id = await self._identify()
            if account_id is None:
                return
            self.log = self.log.bind(account_id=str(account_id))
            is_greeting = await self._main_menu()
            if is_greeting is None:
                await self._goodbye()
                return
            await self._record_and_save(account_id, is_greeting=is_greeting)
        except AGIHangup:
            self.log.info("ivr.hung_up", step=self.step)
            raise
        except VocalcastError as exc:  # the database is away: say goodbye rather than nothing
            self.log.error("ivr.failed", step=self.step, code=exc.code, error=str(exc))
            with contextlib.suppress(AGIError):
                if self.prompts_dir is None:  # no prompt can be played: hang up
                    await self._hangup()
                else:
                    await self._goodbye()

    async def _identify(self) -> UUID | None:
        """The account whose personal code the caller types, or None once the call is to end."""
        try:
            return await self._check_codes()
        finally:
            # The lease frees the place anyway if this fails (the database away, the engine stopping).
            with contextlib.suppress(VocalcastError):
                await self.backend.release(self.call_id)

    async def _check_codes(self) -> UUID | None:
        for attempt in range(1, self.options.code_tries + 1):
            if await self.backend.is_blocked(self.caller):
                self.step = "blocked"
                self.log.warning("ivr.refused_blocked_caller", attempt=attempt)
                await self._play(BLOCKED)
                await self._hangup()
                return None
            if not await self._admitted(attempt):  # asked before the caller types for nothing
                return None
            self.step = "code"
            typed = await self.session.get_data(
                self._prompt(WELCOME), self.options.digit_timeout_ms, CODE_MAX_DIGITS
            )
            if not typed.digits:
                self.log.info("ivr.no_code_typed", attempt=attempt)
                continue
            if not await self._admitted(attempt):  # the budget may have been spent while it typed
                return None
            # Every check waits the same, right or wrong code: the delay tells nothing.
            delay_s = await self.backend.throttle_delay_s(self.caller)
            if delay_s > 0:
                await self.ivr.sleep(delay_s)
            account_id = await self.backend.find_account(typed.digits) if is_code(typed.digits) else None
            if account_id is not None:
                self.log.info("ivr.code_accepted", attempt=attempt)
                await self.backend.record_success(self.caller)
                return account_id
            blocked = await self.backend.record_failure(self.caller)
            self.log.warning("ivr.code_refused", attempt=attempt, digits=len(typed.digits), blocked=blocked)
            if blocked:
                self.step = "blocked"
                await self._play(BLOCKED)
                await self._hangup()
                return None
            await self._play(BAD_CODE)
        await self._goodbye()
        return None

    async def _admitted(self, attempt: int) -> bool:
        """Whether the call may go on checking codes; if not, the caller hears the line is busy."""
        if await self.backend.admit(self.caller, self.call_id):
            return True
        self.step = "busy"
        self.log.warning("ivr.refused_busy", attempt=attempt)
        await self._play(BUSY)
        await self._hangup()
        return False

    async def _main_menu(self) -> bool | None:
        """True to record the greeting, False for a message, None when no choice came."""
        self.step = "main_menu"
        for _ in range(self.options.menu_rounds):
            choice = await self.session.get_data(self._prompt(MAIN_MENU), self.options.digit_timeout_ms, 1)
            if choice.digits == "1":
                return False
            if choice.digits == "2":
                return True
            if choice.digits or not choice.timed_out:  # a wrong key, or # alone
                await self._play(INVALID_CHOICE)
        self.log.info("ivr.no_choice", menu="main")
        return None

    async def _record_and_save(self, account_id: UUID, *, is_greeting: bool) -> None:
        refused = 0
        while refused < self.options.refused_recordings:
            recording = await self.ivr.spool.new(self.session)
            local: Path | None = None
            try:
                self.step = "record"
                local = await self._record(recording, is_greeting=is_greeting)
                if local is None:
                    refused += 1
                    await self._play(NOTHING_HEARD)
                    continue
                self.step = "review"
                review = await self._review(recording)
                if review is None:
                    await self._goodbye()
                    return
                if review == "again":
                    continue
                self.step = "save"
                try:
                    message = await self.backend.save(account_id, local, is_greeting=is_greeting)
                except InvalidInput as exc:
                    refused += 1
                    self.log.info("ivr.recording_refused", code=exc.code, detail=str(exc))
                    await self._play(NOTHING_HEARD)
                    continue
            finally:
                await self.ivr.spool.discard(recording)
            self.log.info(
                "ivr.message_saved", ref=message.ref, greeting=is_greeting, duration_s=message.duration_s
            )
            await self._announce(message)
            await self._goodbye()
            return
        self.log.info("ivr.gave_up", refused=refused)
        await self._goodbye()

    async def _record(self, recording: Recording, *, is_greeting: bool) -> Path | None:
        """Record after the beep; the recording as a local file, None when nothing was recorded at all."""
        await self._play(RECORD)
        result = await self.session.record_file(
            recording.agi_path,
            RECORD_FORMAT,
            "#",
            self.options.greeting_max_ms if is_greeting else self.options.record_max_ms,
            beep=True,
            silence_s=self.options.silence_whole_s,
        )
        if result.endpos < MIN_RECORDED_SAMPLES:
            self.log.info("ivr.recorded", reason=result.reason, samples=result.endpos, file=None)
            return None
        local = await self.ivr.spool.fetch(recording)
        self.log.info("ivr.recorded", reason=result.reason, samples=result.endpos, file=local is not None)
        return local

    async def _review(self, recording: Recording) -> Review | None:
        """Listen (1), validate (2), record again (3); None after ``menu_rounds`` misses in a row."""
        misses = 0
        key = ""
        while misses < self.options.menu_rounds:
            if not key:
                typed = await self.session.get_data(
                    self._prompt(REVIEW_MENU), self.options.digit_timeout_ms, 1
                )
                key = typed.digits
                if not key and typed.timed_out:
                    misses += 1
                    continue
            if key == "1":
                misses = 0
                # A key pressed while listening answers the menu at once.
                key, _ = await self.session.stream_file(recording.agi_path, "123")
                continue
            if key == "2":
                return "validate"
            if key == "3":
                return "again"
            misses += 1
            key = ""
            await self._play(INVALID_CHOICE)
        self.log.info("ivr.no_choice", menu="review")
        return None

    async def _announce(self, message: Message) -> None:
        self.step = "announce"
        if message.is_greeting:
            await self._play(GREETING_SAVED)
            return
        await self._play(SAVED_PREFIX)
        for name in reference_prompts(message.ref):
            await self._play(name)

    # --- helpers -----------------------------------------------------------------------------------

    def _prompt(self, name: str) -> str:
        if self.prompts_dir is None:
            raise RuntimeError("prompts directory not known yet")
        return str(self.prompts_dir / name)

    async def _play(self, name: str) -> None:
        await self.session.stream_file(self._prompt(name))

    async def _goodbye(self) -> None:
        self.step = "goodbye"
        await self._play(GOODBYE)
        await self._hangup()

    async def _hangup(self) -> None:
        await self.session.hangup()
        self.log.info("ivr.call_ended", step=self.step)


def reference_prompts(ref: int) -> list[str]:
    """A message reference in words; beyond what words cover, digit by digit (one voice either way)."""
    if 0 <= ref <= MAX_SAYABLE:
        return number_prompts(ref)
    return [f"num_{digit}" for digit in str(ref) if digit.isdigit()]


async def dialplan_dir(session: AGISession, variable: str) -> str:
    """A directory the calling Asterisk's dialplan names (a global of extensions.conf): an absolute path,
    else ConfigurationError (the call then hears goodbye, if it can)."""
    value = await session.get_variable(variable)
    if not value or not value.startswith("/") or any(c in value for c in "\n\r\0"):
        raise ConfigurationError(f"the dialplan gives no {variable}")
    return value.rstrip("/")
