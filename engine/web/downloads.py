"""A personal-data archive sent as a download (pages and API): written to a private file first (the
export streams from PostgreSQL into it), streamed to the client, then removed — nothing is kept."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Final

from aiohttp import web

from engine.services.privacy import Export
from engine.settings import Settings

_CHUNK: Final = 256 * 1024


def export_path(settings: Settings) -> Path:
    """A fresh, unguessable path for one archive."""
    return settings.state_dir / "exports" / f"{secrets.token_hex(16)}.zip"


async def send_archive(request: web.Request, done: Export, filename: str) -> web.StreamResponse:
    """The archive streamed as ``filename``, then removed from the server whatever happened."""
    try:
        size = (await asyncio.to_thread(done.path.stat)).st_size
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/zip",
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
                "Content-Length": str(size),
            }
        )
        await response.prepare(request)
        with done.path.open("rb") as f:
            while chunk := await asyncio.to_thread(f.read, _CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        await asyncio.to_thread(done.path.unlink, True)
