"""Pasted lists of numbers (the send pages and the API): at most VOCALCAST_PASTE_MAX_LINES lines, parsed
off the event loop in a small pool of its own, so that one large paste neither holds the loop nor,
several at once, every core."""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from engine.domain.recipients import PasteReport, parse_paste
from engine.errors import InvalidInput
from engine.settings import Settings

# One paste at a time per engine process; the others wait their turn (each takes well under a second).
_POOL: Final = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paste")


def too_many_lines(max_lines: int) -> InvalidInput:
    count = f"{max_lines:,}".replace(",", "\u00a0")
    return InvalidInput(
        "too_many_lines",
        f"more than {max_lines} lines in the pasted list",
        message_fr=f"Liste trop longue : collez au plus {count} lignes.",
    )


async def parse_pasted(text: str, settings: Settings, *, allow_international: bool) -> PasteReport:
    """``parse_paste`` of ``text`` with the limits of ``settings``; InvalidInput ``too_many_lines``
    before any parsing when the list is longer than allowed (counting lines is one fast C call)."""
    if text.count("\n") + 1 > settings.paste_max_lines:
        raise too_many_lines(settings.paste_max_lines)
    work = functools.partial(
        parse_paste, text, max_numbers=settings.max_recipients, allow_international=allow_international
    )
    return await asyncio.get_running_loop().run_in_executor(_POOL, work)
