"""Raw recordings of a media server that is not this host (issue 19, VOCALCAST_MEDIA_TRANSPORT=http).

The dialplan of each media server names it in its AGI URL (``record?secret=…&media=<node>``, believed only
once the secret checked out) and tells its spool directory (VC_RECORDINGS). Asterisk records there; the
engine fetches the file through that media server's ARI (``GET /ari/recordings/stored/<name>/file``) and
deletes it there afterwards (``DELETE /ari/recordings/stored/<name>``). Only media servers of
VOCALCAST_MEDIA_SERVERS are ever asked: a name in a URL never becomes an address.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Final
from urllib.parse import quote

import aiohttp
import structlog

from engine.errors import ConfigurationError, TelephonyUnavailable
from ivr.fastagi import AGISession
from ivr.recording import RECORD_FORMAT, Recording, dialplan_dir, new_name

log = structlog.get_logger(__name__)

RECORDINGS_VARIABLE: Final = "VC_RECORDINGS"
TIMEOUT_S: Final = 30.0
MAX_BYTES: Final = 64 * 1024 * 1024


class AriRecordings:
    """``RawRecordings`` through the ARI of the media server each call comes from."""

    def __init__(self, servers: Mapping[str, str], user: str, password: str, download_dir: Path) -> None:
        self._servers = dict(servers)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}  # never in a URL
        self._download_dir = download_dir

    def serves(self, session: AGISession) -> bool:
        return session.query.get("media", "") in self._servers

    async def new(self, session: AGISession) -> Recording:
        name = session.query.get("media", "")
        if name not in self._servers:
            raise ConfigurationError(f"media server {name!r} is not in VOCALCAST_MEDIA_SERVERS")
        spool = await dialplan_dir(session, RECORDINGS_VARIABLE)
        recording = new_name()
        await asyncio.to_thread(self._download_dir.mkdir, mode=0o700, parents=True, exist_ok=True)
        return Recording(
            f"{spool}/{recording}", self._download_dir / f"{recording}.{RECORD_FORMAT}", server=name
        )

    def _url(self, recording: Recording, tail: str = "") -> str:
        return (
            f"{self._servers[recording.server]}/ari/recordings/stored/{quote(recording.name, safe='')}{tail}"
        )

    async def fetch(self, recording: Recording) -> Path | None:
        try:
            body = await self._download(recording)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TelephonyUnavailable(
                f"media server {recording.server}: recording fetch failed: {exc}"
            ) from exc
        if body is None:
            return None
        await asyncio.to_thread(recording.host_file.write_bytes, body)
        log.info("ivr.recording_fetched", server=recording.server, bytes=len(body))
        return recording.host_file

    async def _download(self, recording: Recording) -> bytes | None:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        async with (
            aiohttp.ClientSession(headers=self._headers, timeout=timeout) as http,
            http.get(self._url(recording, "/file")) as response,
        ):
            if response.status == 404:
                return None
            if response.status != 200:
                raise TelephonyUnavailable(
                    f"media server {recording.server}: recording fetch answered {response.status}"
                )
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > MAX_BYTES:
                    raise TelephonyUnavailable(
                        f"media server {recording.server}: recording over {MAX_BYTES} bytes"
                    )
            return bytes(body)

    async def discard(self, recording: Recording) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(recording.host_file.unlink)
        try:
            timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
            async with (
                aiohttp.ClientSession(headers=self._headers, timeout=timeout) as http,
                http.delete(self._url(recording)) as response,
            ):
                if response.status not in (204, 404):
                    log.warning("ivr.recording_not_removed", server=recording.server, status=response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("ivr.recording_not_removed", server=recording.server, error=str(exc))
