"""The zip archive of a personal-data export: each query of the store as CSV (PostgreSQL's COPY) and as
JSON (an array, one object per line, read through a server-side cursor), the audio files, and a
manifest with the row count of every file. Compression runs in a worker thread, chunk by chunk, so a
large export never holds the event loop nor the whole table in memory.
"""

from __future__ import annotations

import asyncio
import json
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Final

import asyncpg

from engine.store import privacy as store

_CHUNK: Final = 256 * 1024  # bytes of JSON gathered before one write


class Archive:
    """A zip file being written; ``async with`` closes it (or removes it on error)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.counts: dict[str, int] = {}
        self._zip: zipfile.ZipFile | None = None

    async def __aenter__(self) -> Archive:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._zip = await asyncio.to_thread(
            zipfile.ZipFile, self.path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1
        )
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        z, self._zip = self._zip, None
        if z is not None:
            await asyncio.to_thread(z.close)
        if exc is not None:
            self.path.unlink(missing_ok=True)

    @property
    def _z(self) -> zipfile.ZipFile:
        if self._zip is None:
            raise RuntimeError("the archive is not open")
        return self._zip

    def _open(self, name: str) -> IO[bytes]:
        return self._z.open(name, "w", force_zip64=True)

    async def tables(
        self, conn: asyncpg.Connection, queries: Mapping[str, str], args: tuple[object, ...]
    ) -> None:
        """Every query as ``<name>.csv`` and ``<name>.json``, in the caller's repeatable-read transaction."""
        for name, query in queries.items():
            self.counts[f"{name}.csv"] = await self._csv(conn, f"{name}.csv", query, args)
            self.counts[f"{name}.json"] = await self._json(conn, f"{name}.json", query, args)

    async def _csv(self, conn: asyncpg.Connection, name: str, query: str, args: tuple[object, ...]) -> int:
        out = await asyncio.to_thread(self._open, name)
        try:

            async def sink(chunk: bytes) -> None:
                await asyncio.to_thread(out.write, chunk)

            return await store.copy_csv(conn, query, args, sink)
        finally:
            await asyncio.to_thread(out.close)

    async def _json(self, conn: asyncpg.Connection, name: str, query: str, args: tuple[object, ...]) -> int:
        out = await asyncio.to_thread(self._open, name)
        try:
            count, parts, size = 0, ["["], 1
            async for row in store.json_rows(conn, query, args):
                parts.append(("\n" if count == 0 else ",\n") + row)
                size += len(row) + 2
                count += 1
                if size >= _CHUNK:
                    await asyncio.to_thread(out.write, "".join(parts).encode())
                    parts, size = [], 0
            parts.append("\n]\n")
            await asyncio.to_thread(out.write, "".join(parts).encode())
            return count
        finally:
            await asyncio.to_thread(out.close)

    async def file(self, source: Path, name: str) -> bool:
        """A file of the media directory into the archive; False when it is missing."""
        if not await asyncio.to_thread(source.is_file):
            return False
        await asyncio.to_thread(self._z.write, source, name)
        self.counts[name] = 1
        return True

    async def manifest(self, about: Mapping[str, object]) -> None:
        """manifest.json: what the archive is about, when it was made, and every file's row count."""
        body = {
            **about,
            "made_at": datetime.now(UTC).isoformat(),
            "files": dict(self.counts),
            "formats": "CSV (UTF-8, header line) and JSON (an array of objects) hold the same rows.",
        }
        data = json.dumps(body, ensure_ascii=False, indent=2, default=str).encode()
        await asyncio.to_thread(self._z.writestr, "manifest.json", data)
