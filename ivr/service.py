"""The recording IVR as a part of the engine: its FastAGI route wired to the recordings service, and
``serve()``, which runs the FastAGI server on <agi bind>:<agi port>; ``housekeeping()`` is the engine's
periodic clean-up of the spool and the lockout counts.

With VOCALCAST_MEDIA_TRANSPORT=http the IVR serves calls of any media server: prompts and spool are the
calling Asterisk's (its dialplan says where), recordings are fetched through its ARI (ivr.remote).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import structlog

from engine.errors import VocalcastError
from engine.media.paths import media_server_aris, prompts_dir, recording_spool
from engine.services.recordings import Recordings
from engine.settings import Settings
from ivr.callback import NO_CALLBACKS, CallbackIVR
from ivr.callback import ROUTE as CALLBACK_ROUTE
from ivr.callback import Backend as CallbackBackend
from ivr.fastagi import FastAGIServer, Handler
from ivr.recording import IvrOptions, RawRecordings, RecordingIVR, Spool
from ivr.remote import AriRecordings

log = structlog.get_logger(__name__)

# dialplan: AGI(agi://<agi host>:<agi port>/record?secret=<VOCALCAST_AGI_SECRET>&media=<node>)
ROUTE: Final = "record"
HOUSEKEEPING_EVERY_S: Final = 600.0
# A raw recording this much older than the longest recording belongs to no live call any more.
ORPHAN_MARGIN_S: Final = 3600.0


def spool(settings: Settings) -> Spool:
    """Asterisk's recording spool of this instance, from inside the Asterisk root and from the host."""
    return Spool(*recording_spool(settings))


def remote(settings: Settings) -> bool:
    """Whether the IVR serves media servers of other hosts (their own prompts, recordings through ARI)."""
    return settings.media_transport == "http"


def raw_recordings(settings: Settings) -> RawRecordings:
    if not remote(settings):
        return spool(settings)
    return AriRecordings(
        media_server_aris(settings),
        settings.ari_user,
        settings.require("ari_password"),
        download_dir(settings),
    )


def download_dir(settings: Settings) -> Path:
    """Below the engine's own run dir (engine.stack.service_user.engine_dir: the service user's, 0700):
    <state dir>/run itself is root's, so the engine, running as its service user, could not create a
    directory there (issue 19: every recording call of the local cluster failed on it)."""
    return settings.state_dir / "run" / "engine" / "ivr-recordings"


def options(settings: Settings) -> IvrOptions:
    return IvrOptions.from_settings(settings, None if remote(settings) else prompts_dir(settings))


def routes(
    settings: Settings, recordings: Recordings, callbacks: CallbackBackend | None = None
) -> dict[str, Handler]:
    return {
        ROUTE: RecordingIVR(options(settings), recordings, raw_recordings(settings)),
        CALLBACK_ROUTE: CallbackIVR(callbacks or NO_CALLBACKS),
    }


@asynccontextmanager
async def serve(
    settings: Settings, recordings: Recordings, callbacks: CallbackBackend | None = None
) -> AsyncIterator[FastAGIServer]:
    """The FastAGI server on ``settings.agi_bind``:``settings.agi_port`` until the context exits
    (call-backs of our presented numbers too, given their backend)."""
    # A reply never takes longer than the longest recording (and the listening back of one).
    command_timeout_s = max(600.0, 2 * settings.ivr_record_max_s + 60.0)
    server = FastAGIServer(
        routes(settings, recordings, callbacks),
        host=settings.agi_bind,
        port=settings.agi_port,
        command_timeout_s=command_timeout_s,
        secret=settings.require("agi_secret"),
    )
    async with server:
        yield server


async def housekeeping(settings: Settings, recordings: Recordings) -> None:
    """Now and every few minutes: drop orphaned raw recordings and lockout rows no rule needs."""
    orphans = [spool(settings)]
    if remote(settings):  # downloads left by an engine stopped mid-call
        orphans.append(Spool(recording_spool(settings)[0], download_dir(settings)))
    orphan_age_s = settings.ivr_record_max_s + ORPHAN_MARGIN_S
    while True:
        try:
            removed = 0
            for place in orphans:
                removed += await asyncio.to_thread(place.purge, orphan_age_s, time.time())
            purged = await recordings.purge()
            if removed or purged:
                log.info("ivr.housekeeping", orphan_recordings=removed, lockout_rows=purged)
        except (OSError, VocalcastError) as exc:
            log.warning("ivr.housekeeping_failed", error=str(exc))
        await asyncio.sleep(HOUSEKEEPING_EVERY_S)
