"""Reading a command's input file (or standard input for '-')."""

from __future__ import annotations

import sys
from pathlib import Path

from engine.errors import InvalidInput


def read_input(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise InvalidInput(
            "unreadable",
            f"cannot read {name}: {exc.strerror or exc}",
            message_fr=f"Impossible de lire le fichier {name}.",
        ) from exc
