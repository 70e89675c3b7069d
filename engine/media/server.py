"""The engine's media listener (issue 19, VOCALCAST_MEDIA_TRANSPORT=http): media servers fetch message audio
here, by signed URL (engine.media.signing), and Asterisk keeps it in its media cache.

Its own listener (VOCALCAST_MEDIA_HTTP_BIND:PORT), never the public site. Only a correctly signed URL of
an existing file *at that version* is served; anything else is 403 (bad or missing signature) or 404 (the
file is gone, or was replaced: an old URL never serves the new audio, nor the new URL the old). A version
never changes content, so the answer is cacheable for good: ``Cache-Control: max-age=<a year>, immutable``
(Asterisk then plays it from its cache without asking again) with an ``ETag``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import structlog
from aiohttp import web

from engine.media import signing
from engine.media.paths import host_dir
from engine.settings import Settings

log = structlog.get_logger(__name__)

CACHE_CONTROL: Final = "private, max-age=31536000, immutable"
MAX_BYTES: Final = 64 * 1024 * 1024  # far above any message (300 s of 8 kHz 16-bit WAV is 4.8 MB)


class _Gone(Exception):
    """The file does not exist at the URL's version."""


def _read_version(path: Path, version: str) -> bytes:
    """The file's bytes if it still is at ``version`` (checked on the open file: a replacement racing the
    read cannot slip its content under the old version's URL)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise _Gone from exc
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if signing.file_version(info) != version or info.st_size > MAX_BYTES:
            raise _Gone
        return file.read()


def build_app(media_dir: Path, key: bytes) -> web.Application:
    async def media(request: web.Request) -> web.StreamResponse:
        version = request.match_info["version"]
        rel = request.match_info["rel"]
        if signing.safe_rel(rel) is None or not signing.verify(key, rel, version, request.match_info["sig"]):
            log.warning("media.refused", reason="signature", remote=request.remote)
            raise web.HTTPForbidden
        etag = f'"{version}"'
        try:
            body = await asyncio.to_thread(_read_version, media_dir / rel, version)
        except _Gone:
            log.info("media.gone", rel=rel, version=version)
            raise web.HTTPNotFound from None
        headers = {"Cache-Control": CACHE_CONTROL, "ETag": etag}
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        content_type = signing.CONTENT_TYPES[Path(rel).suffix]
        return web.Response(body=body, headers=headers, content_type=content_type)

    async def refused(request: web.Request) -> web.StreamResponse:
        log.warning("media.refused", reason="path", remote=request.remote)
        raise web.HTTPForbidden

    app = web.Application()
    app.router.add_get(signing.PREFIX + "/{version}/{sig}/{rel:.+}", media)
    app.router.add_route("*", "/{tail:.*}", refused)
    return app


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[int]:
    """The media listener until the context exits; yields its bound port."""
    key = signing.media_key(settings.require("secret_key"))
    runner = web.AppRunner(build_app(settings.media_dir, key), handle_signals=False, access_log=None)
    await runner.setup()
    try:
        # reuse_port: several engine processes of one host serve the same media port.
        site = web.TCPSite(runner, settings.media_http_bind, settings.media_http_port, reuse_port=True)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        port = int(sockets[0].getsockname()[1]) if sockets else settings.media_http_port
        log.info("media.listening", host=settings.media_http_bind, port=port)
        yield port
    finally:
        await runner.cleanup()


# --- the media cache of this node's Asterisk ------------------------------------------------------------
CACHE_PRUNE_EVERY_S: Final = 300.0


def prune_cache(cache_dir: Path, older_than_s: float, now_s: float) -> int:
    """Remove the files Asterisk's media cache fetched longer than ``older_than_s`` ago; returns how many.
    Asterisk fetches a URL again when its file is gone (a playing channel keeps its open file): a deleted
    message's audio does not stay on a media server for good (the cache never evicts). Blocking."""
    removed = 0
    for path in cache_dir.glob("bucket-*"):
        try:
            if now_s - path.stat().st_mtime >= older_than_s:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


async def housekeeping(settings: Settings) -> None:
    """Every few minutes: prune this node's Asterisk media cache (http transport)."""
    cache_dir = host_dir(settings) / "cache"
    while True:
        try:
            removed = await asyncio.to_thread(
                prune_cache, cache_dir, settings.media_cache_keep_s, time.time()
            )
            if removed:
                log.info("media.cache_pruned", files=removed)
        except OSError as exc:
            log.warning("media.cache_prune_failed", error=str(exc))
        await asyncio.sleep(min(CACHE_PRUNE_EVERY_S, max(settings.media_cache_keep_s, 1.0)))
