"""ffprobe opened uploads with every demuxer (issue 17): a "message.mp3" that is really an HLS playlist
made ffmpeg open whatever local file (or URL) the playlist names. Uploads are now read by the WAV and MP3
demuxers only, from local files only. Proven with a FIFO as the named file: a FIFO opened for reading is
seen from the writing side, so the test knows whether ffmpeg ever opened it — no timing involved."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import threading
from pathlib import Path

import pytest

from engine.errors import InvalidInput
from engine.media.audio import AudioLimits, convert


def watch_fifo(fifo: Path, stop: threading.Event, opened: list[bool]) -> None:
    """Until ``stop``: whether a reader ever opened the FIFO (O_NONBLOCK write-open fails with ENXIO
    while nobody reads it)."""
    while not stop.is_set():
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            stop.wait(0.005)
            continue
        opened.append(True)
        os.close(fd)  # the reader sees the end of the file at once: nothing hangs
        return


async def test_an_hls_playlist_disguised_as_mp3_opens_no_other_file(tmp_path: Path) -> None:
    fifo = tmp_path / "segment.ts"
    os.mkfifo(fifo)
    playlist = tmp_path / "message.mp3"
    playlist.write_text(f"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1.0,\nfile://{fifo}\n#EXT-X-ENDLIST\n")
    stop, opened = threading.Event(), []
    watcher = threading.Thread(target=watch_fifo, args=(fifo, stop, opened), daemon=True)
    watcher.start()
    try:
        with pytest.raises(InvalidInput) as refused:
            await convert(playlist, tmp_path / "out", "m", AudioLimits(run_timeout_s=10))
    finally:
        stop.set()
        with contextlib.suppress(RuntimeError):
            await asyncio.to_thread(watcher.join, 5)
    assert refused.value.code == "unsupported_format"
    assert opened == []  # ffmpeg never opened the file the playlist named
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
